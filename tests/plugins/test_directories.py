"""Each environment's directory tree: created by `envfence init`, refused when unsafe, cleaned in scope."""

from __future__ import annotations

import json
import os
import stat
import sys
import time

import pytest

import envfence
from envfence.errors import EnvfenceError, SafetyError

DEV_DIRS = ("csv/incoming", "csv/processing", "csv/processed", "csv/failed", "logs", "backups", "archive")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_creates_the_development_tree_and_says_what_it_created(make_project, run_cli):
    root = make_project()
    result = run_cli("init", cwd=root)
    assert result.exit_code == 0, result.output
    tree = root / "var" / "development"
    for name in DEV_DIRS:
        assert (tree / name).is_dir()
        assert f"created var/development/{name} (0755)" in result.stdout
    assert mode(tree / "csv" / "incoming") == 0o755
    assert mode(tree / "audit") == 0o700  # the audit trail is owner-only in every profile
    assert not (root / "var" / "production").exists()


def test_init_twice_creates_nothing_the_second_time(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    again = run_cli("init", cwd=root)
    assert again.exit_code == 0
    assert "created" not in again.stdout
    assert "already in place" in again.stdout


def test_production_tree_is_owner_only(make_project, run_cli):
    root = make_project()
    result = run_cli("--env", "production", "init", cwd=root)
    assert result.exit_code == 0, result.output
    tree = root / "var" / "production"
    assert all(mode(tree / name) == 0o700 for name in DEV_DIRS)
    assert mode(tree) == 0o700


def test_the_profile_sets_the_mode(make_project, run_cli):
    root = make_project(settings="[environments.development.profile]\ndir_mode = 0o750\n")
    run_cli("init", cwd=root)
    assert mode(root / "var" / "development" / "logs") == 0o750


def test_read_only_commands_create_no_directory(make_project, run_cli):
    root = make_project({".env": "APP=1\n"})
    for args in (("detect",), ("config", "show"), ("--env", "prod", "config", "show", "--explain"), ("audit", "show"), ("audit", "verify")):
        assert run_cli(*args, cwd=root).exit_code == 0, args
    assert not (root / "var").exists()


def test_wrong_permissions_are_reported_and_init_fixes_them(make_project, run_cli):
    root = make_project()
    run_cli("--env", "production", "init", cwd=root)
    logs = root / "var" / "production" / "logs"
    os.chmod(logs, 0o755)
    session = envfence.open_session(root=root, env="production")
    [finding] = [f for f in session.report.findings if f.code == "DIR_PERMISSIONS"]
    assert finding.severity == "error"  # production escalates the warning
    assert finding.key == "var/production/logs" and "0755" in finding.message and "0700" in finding.message
    fixed = run_cli("--env", "production", "init", cwd=root)
    assert "var/production/logs: mode 0755 -> 0700" in fixed.stdout
    assert mode(logs) == 0o700
    assert "DIR_PERMISSIONS" not in envfence.open_session(root=root, env="production").report.codes()


def test_check_shows_a_tree_with_wrong_permissions(make_project, run_cli):
    root = make_project()
    run_cli("--env", "production", "init", cwd=root)
    os.chmod(root / "var" / "production" / "csv" / "failed", 0o775)
    result = run_cli("--env", "production", "check", cwd=root)
    assert result.exit_code == 1
    assert "DIR_PERMISSIONS [var/production/csv/failed]" in result.stdout
    assert "envfence --env production init" in result.stdout
    data = json.loads(run_cli("--env", "production", "--json", "check", cwd=root).stdout)
    assert any(f["code"] == "DIR_PERMISSIONS" and f["severity"] == "error" for f in data["findings"])


def test_a_looser_development_tree_is_a_warning(make_project):
    root = make_project()
    envfence.open_session(root=root).prepare()
    os.chmod(root / "var" / "development" / "logs", 0o777)
    [finding] = [f for f in envfence.open_session(root=root).report.findings if f.code == "DIR_PERMISSIONS"]
    assert finding.severity == "warning"


def test_a_tree_that_is_a_symlink_leading_outside_the_project_is_refused(make_project, run_cli, tmp_path):
    root = make_project()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "var").mkdir()
    (root / "var" / "development").symlink_to(elsewhere)
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3
    assert "var/development leads outside the project" in result.stderr
    assert str(elsewhere) in result.stderr
    assert list(elsewhere.iterdir()) == []  # nothing was created there
    assert "DIR_SYMLINK_OUTSIDE" in envfence.open_session(root=root).report.codes()


def test_a_tree_linked_into_another_environments_tree_is_refused(make_project, run_cli):
    root = make_project()
    run_cli("--env", "production", "init", cwd=root)
    (root / "var" / "development").symlink_to(root / "var" / "production")
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3
    assert "leads into the production tree" in result.stderr
    assert "DIR_SYMLINK_OTHER_ENV" in envfence.open_session(root=root).report.codes()


def test_a_stage_directory_linked_into_another_environment_is_refused(make_project, run_cli):
    root = make_project()
    run_cli("--env", "production", "init", cwd=root)
    incoming = root / "var" / "development" / "csv"
    incoming.mkdir(parents=True)
    (incoming / "incoming").symlink_to(root / "var" / "production" / "csv" / "incoming")
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3
    assert "var/development/csv/incoming leads into the production tree" in result.stderr


def test_overlapping_trees_are_refused(make_project, run_cli):
    root = make_project(settings='[directories.paths]\nproduction = "var/development/prod"\n')
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3
    assert "overlaps the production tree" in result.stderr
    assert not (root / "var").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_tree_owned_by_another_user_is_refused(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    os.chown(root / "var" / "development" / "logs", 4321, -1)
    result = run_cli("init", cwd=root)
    assert result.exit_code == 3
    assert "var/development/logs is owned by uid 4321" in result.stderr


def test_bad_directory_settings_name_the_key(make_project, run_cli):
    root = make_project(settings='[directories]\nbase = "var/shared"\n')
    result = run_cli("init", cwd=root)
    assert result.exit_code == 4
    assert "directories.base must be a string holding {environment}" in result.stderr


# --- CSV stages ------------------------------------------------------------------


def test_a_csv_moves_through_its_stages_by_rename(make_project):
    session = envfence.open_session(root=make_project())
    session.prepare()
    paths = session.paths
    csv = paths.stage("incoming") / "jobs.csv"
    csv.write_text("id\n1\n")
    inode = csv.stat().st_ino
    processing = paths.move(csv, "processing")
    done = paths.move(processing, "processed")
    assert done == paths.stage("processed") / "jobs.csv"
    assert done.read_text() == "id\n1\n" and done.stat().st_ino == inode
    assert not csv.exists() and not processing.exists()


def test_moving_a_csv_into_another_environments_tree_is_refused(make_project):
    root = make_project()
    envfence.open_session(root=root, env="production").prepare()
    dev = envfence.open_session(root=root)
    dev.prepare()
    csv = dev.paths.stage("incoming") / "jobs.csv"
    csv.write_text("id\n")
    with pytest.raises(SafetyError, match="outside the development tree"):
        dev.paths.move(csv, root / "var" / "production" / "csv" / "processing")
    assert csv.exists()
    prod_csv = root / "var" / "production" / "csv" / "incoming" / "live.csv"
    prod_csv.write_text("id\n")
    with pytest.raises(SafetyError):
        dev.paths.move(prod_csv, "processing")
    assert prod_csv.exists()


def test_a_move_never_replaces_a_staged_file(make_project):
    session = envfence.open_session(root=make_project())
    session.prepare()
    paths = session.paths
    (paths.stage("processed") / "a.csv").write_text("old")
    (paths.stage("incoming") / "a.csv").write_text("new")
    with pytest.raises(EnvfenceError, match="already there"):
        paths.move(paths.stage("incoming") / "a.csv", "processed")
    assert (paths.stage("processed") / "a.csv").read_text() == "old"
    with pytest.raises(envfence.UsageError, match="unknown CSV stage"):
        paths.stage("done")


# --- cleanup ---------------------------------------------------------------------


def _aged(path, days: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_clean_removes_old_files_of_this_environment_only(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    run_cli("--env", "prod", "init", cwd=root)
    dev, prod = root / "var" / "development", root / "var" / "production"
    _aged(dev / "csv" / "processed" / "old.csv", 40)
    _aged(dev / "logs" / "automation_development.log.1.gz", 40)
    _aged(dev / "csv" / "processed" / "new.csv", 1)
    _aged(dev / "csv" / "incoming" / "waiting.csv", 40)
    _aged(prod / "csv" / "processed" / "old.csv", 40)
    preview = run_cli("clean", "--older-than", "30d", "--dry-run", cwd=root)
    assert "would remove var/development/csv/processed/old.csv" in preview.stdout
    assert (dev / "csv" / "processed" / "old.csv").exists()

    result = run_cli("clean", "--older-than", "30d", cwd=root)
    assert result.exit_code == 0, result.output
    assert "removed 2 file(s) older than 30 days from the development tree" in result.stdout
    assert result.output.count("removed 2 file(s)") == 1  # said once, not again by the console log
    assert not (dev / "csv" / "processed" / "old.csv").exists()
    assert not (dev / "logs" / "automation_development.log.1.gz").exists()
    assert (dev / "csv" / "processed" / "new.csv").exists()
    assert (dev / "csv" / "incoming" / "waiting.csv").exists()  # not processed yet
    assert (prod / "csv" / "processed" / "old.csv").exists()  # another environment's
    assert (dev / "audit" / "audit_development.jsonl").exists()


def test_clean_never_follows_a_link_out_of_the_tree(make_project, run_cli, tmp_path):
    root = make_project()
    run_cli("init", cwd=root)
    outside = tmp_path / "precious"
    _aged(outside / "keep.csv", 90)
    (root / "var" / "development" / "archive" / "link").symlink_to(outside)
    run_cli("clean", "--older-than", "1d", cwd=root)
    assert (outside / "keep.csv").exists()


def test_clean_wants_an_age_it_understands(make_project, run_cli):
    result = run_cli("clean", "--older-than", "soon", cwd=make_project())
    assert result.exit_code == 2
    assert "'soon' is not an age" in result.output


# --- a real run stays in its tree -------------------------------------------------

JOB = '''
def import_jobs(ctx):
    incoming = ctx.paths.stage("incoming") / "jobs.csv"
    incoming.write_text("id\\n1\\n")
    working = ctx.paths.move(incoming, "processing")
    ctx.credential("AIRTABLE_API_KEY")
    ctx.logger.info("importing {}", working.name)
    ctx.paths.move(working, "processed")
'''


def test_a_development_run_writes_nothing_outside_the_development_tree(make_project, run_cli, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # Python's own caches are not the run's writing
    root = make_project(
        {"jobs.py": JOB, ".env": "DEV_AIRTABLE_API_KEY=patDevToken000001.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nPROD_AIRTABLE_API_KEY=patProdToken00001.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"},
        settings='[automations.import-jobs]\nrun = "jobs:import_jobs"\n',
    )
    run_cli("--env", "prod", "init", cwd=root)
    from loguru import logger

    logger.remove()  # in one process, init's queued production log line lands now, not during the run
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    result = run_cli("run", "import-jobs", cwd=root)
    assert result.exit_code == 0, result.output
    tree = root / "var" / "development"
    assert (tree / "csv" / "processed" / "jobs.csv").exists()
    changed = [p for p in root.rglob("*") if before.get(p) != p.stat().st_mtime_ns]
    outside = [p for p in changed if not p.is_relative_to(tree) and p != tree.parent]  # var/ gains the entry
    assert changed and outside == []
    assert (tree / "logs" / "automation_development.log").exists()
    assert "import-jobs" in (tree / "audit" / "audit_development.jsonl").read_text()


# --- what clean may touch, locks, modes -------------------------------------------


@pytest.mark.parametrize("entry", [".", "csv", "csv/incoming", "audit", "locks", "backups", "backups/config", "history.sqlite3"])
def test_clean_refuses_a_setting_that_names_what_is_never_cleaned(make_project, run_cli, entry):
    root = make_project(settings=f'[directories]\nclean = ["logs", "{entry}"]\n')
    run_cli("init", cwd=root)
    tree = root / "var" / "development"
    keep = [tree / "csv" / "incoming" / "new.csv", tree / "backups" / "config" / "1" / ".env", tree / "locks" / "job.lock"]
    for path in keep:
        _aged(path, 400)
    _aged(tree / "logs" / "old.log", 400)
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1 and "never cleans" in check.output
    result = run_cli("clean", "--older-than", "1d", cwd=root)
    assert result.exit_code == 4, result.output
    assert f"{entry!r} would clean" in result.output and "envfence.toml" in result.output
    assert all(p.exists() for p in keep) and (tree / "logs" / "old.log").exists()  # refused: nothing removed


def test_clean_by_default_leaves_history_snapshots_locks_and_files_on_their_way(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    tree = root / "var" / "development"
    kept = [tree / "history.sqlite3", tree / "backups" / "config" / "1" / "manifest.json", tree / "locks" / "job.lock",
            tree / "csv" / "incoming" / "a.csv", tree / "csv" / "processing" / "b.csv", tree / "audit" / "x.jsonl"]
    gone = [tree / "csv" / "processed" / "c.csv", tree / "csv" / "failed" / "d.csv", tree / "logs" / "e.log", tree / "archive" / "f.csv"]
    for path in kept + gone:
        _aged(path, 400)
    result = run_cli("clean", "--older-than", "30d", cwd=root)
    assert result.exit_code == 0, result.output
    assert all(p.exists() for p in kept)
    assert not any(p.exists() for p in gone)


def test_an_age_too_large_to_count_is_a_usage_error(make_project, run_cli):
    root = make_project()
    result = run_cli("clean", "--older-than", "99999999999d", cwd=root)
    assert result.exit_code == 2
    assert "longer than any age" in result.output and "Traceback" not in result.output


def test_locks_are_part_of_the_tree_with_the_profiles_mode(make_project, run_cli):
    root = make_project()
    assert run_cli("--env", "production", "init", cwd=root).exit_code == 0
    assert mode(root / "var" / "production" / "locks") == 0o700
    (root / "var" / "production" / "locks").chmod(0o777)
    check = run_cli("--env", "production", "check", cwd=root)
    assert "locks has mode 0777" in check.output


def test_a_link_inside_the_tree_is_refused_even_when_it_stays_inside(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    tree = root / "var" / "development"
    (tree / "locks").rmdir()
    (tree / "locks").symlink_to(tree / "archive")
    result = run_cli("check", cwd=root)
    assert result.exit_code == 1 and "var/development/locks is a symlink" in result.output
    assert run_cli("init", cwd=root).exit_code != 0


def _run_under_umask_000(make_project, run_cli):
    root = make_project({"jobs.py": "def ok(ctx):\n    ctx.say('hi')\n"}, settings='[automations]\nok = "jobs:ok"\n')
    old = os.umask(0)
    try:
        assert run_cli("run", "ok", cwd=root).exit_code == 0
    finally:
        os.umask(old)
    return root / "var" / "development"


def test_files_written_under_umask_000_are_not_world_writable(make_project, run_cli):
    tree = _run_under_umask_000(make_project, run_cli)
    written = [p for p in tree.rglob("*") if p.is_file()]
    assert tree / "history.sqlite3" in written and any(p.suffix == ".log" for p in written)
    assert [p for p in [tree, *tree.rglob("*")] if mode(p) & 0o002 and p.parent.name != "locks"] == []


def test_a_lock_file_written_under_umask_000_is_not_world_writable(make_project, run_cli):
    tree = _run_under_umask_000(make_project, run_cli)
    assert mode(tree / "locks" / "ok.lock") == 0o600


def test_a_read_only_command_does_not_need_the_tree(make_project, run_cli):
    root = make_project(settings='[directories]\nbase = "var/shared"\n')
    detected = run_cli("detect", cwd=root)
    assert detected.exit_code == 0, detected.stderr
    result = run_cli("init", cwd=root)
    assert result.exit_code == 4
    assert "directories.base must be a string holding {environment}" in result.stderr
    assert not (root / "var").exists()


def test_names_that_only_begin_alike_are_neither_nested_trees_nor_the_private_directory(make_project, run_cli):
    """Trees and the owner-only directory are told apart by whole path components: `var/prod` and
    `var/prod-eu` are two trees, and `audit-copies` beside `audit` keeps the profile's mode."""
    root = make_project(settings='[directories]\ndirs = ["logs", "audit-copies"]\n'
                                 '[directories.paths]\ndevelopment = "var/prod-eu"\nproduction = "var/prod"\n')
    result = run_cli("init", cwd=root)
    assert result.exit_code == 0, result.output + result.stderr
    assert mode(root / "var" / "prod-eu" / "audit") == 0o700
    assert mode(root / "var" / "prod-eu" / "audit-copies") == 0o755  # development's profile
    checked = run_cli("check", cwd=root)
    assert "DIR_OVERLAP" not in checked.stdout and "DIR_PERMISSIONS" not in checked.stdout, checked.output
    nested = make_project(settings='[directories.paths]\ndevelopment = "var/prod/eu"\nproduction = "var/prod"\n')
    refused = run_cli("init", cwd=nested)
    assert refused.exit_code == 3 and "overlaps the production tree" in refused.stderr
