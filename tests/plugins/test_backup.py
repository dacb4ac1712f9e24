"""`envfence backup` / `restore`: a checksummed archive that restores into an empty tree, with the audit chain intact."""

from __future__ import annotations

import json
import sqlite3

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n\ndef bad(ctx):\n    raise RuntimeError('broken')\n"
SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n\n[automations.bad]\nrun = "jobs:bad"\n'


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env.development": "GREETING=hello\n"}, settings=SETTINGS)
    for name in ("ok", "bad", "ok"):
        run_cli("run", name, cwd=root)
    assert run_cli("config", "snapshot", "--note", "before release", cwd=root).exit_code == 0
    assert run_cli("pause", "bad", "--reason", "flaky upstream", cwd=root).exit_code == 0
    return root


def tree(root, env="development"):
    return root / "var" / env


def history_rows(root):
    db = sqlite3.connect(tree(root) / "history.sqlite3")
    try:
        return db.execute("SELECT run_id, automation, status FROM runs ORDER BY started_at").fetchall()
    finally:
        db.close()


def backup(run_cli, root, *args):
    result = run_cli("backup", "--json", *args, cwd=root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_backup_round_trips_into_an_empty_tree_and_the_audit_chain_verifies(project, run_cli, tmp_path):
    rows = history_rows(project)
    manifest = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    names = set(manifest["files"])
    assert {"history.sqlite3", "audit/audit_development.jsonl", "audit/audit_development.head", "state/pauses.json"} <= names
    assert any(n.startswith("backups/config/") for n in names)
    assert manifest["includes_key"] is False and manifest["environment"] == "development"
    (tree(project)).rename(tmp_path / "lost-tree")  # the disk died
    dry = run_cli("restore", manifest["archive"], "--dry-run", cwd=project)
    assert dry.exit_code == 0 and "would restore" in dry.stdout
    assert not tree(project).exists()
    restored = run_cli("restore", manifest["archive"], cwd=project)
    assert restored.exit_code == 0, restored.output
    assert "chain intact" in restored.stdout
    assert history_rows(project) == rows
    verified = run_cli("audit", "verify", cwd=project)
    assert verified.exit_code == 0 and "chain intact" in verified.stdout
    events = [r["event"] for r in json.loads(run_cli("audit", "show", "--json", cwd=project).stdout)]
    # A restore is a security event: its alert's dispatch is recorded right after it.
    assert events[-2:] == ["backup.restored", "alerts.dispatched"] and "automation.paused" in events
    assert run_cli("run", "bad", cwd=project).exit_code == 3  # the pause came back too


def test_restore_refuses_another_environment_and_a_tree_that_is_not_empty(project, run_cli, tmp_path):
    manifest = backup(run_cli, project)
    assert manifest["archive"].startswith(str(tree(project) / "backups" / "archives"))
    crossing = run_cli("--env", "production", "restore", manifest["archive"], cwd=project)
    assert crossing.exit_code == 3 and "refusing to restore across environments" in crossing.stderr
    before = (tree(project) / "audit" / "audit_development.jsonl").read_bytes()
    full = run_cli("restore", manifest["archive"], cwd=project)
    assert full.exit_code == 1 and "restore writes only into an empty tree" in full.stderr
    assert (tree(project) / "audit" / "audit_development.jsonl").read_bytes() == before


@pytest.mark.parametrize("damage, message", [
    ("truncate", "cannot be read"),
    ("tamper", "history.sqlite3: checksum mismatch"),
    ("garbage", "cannot be read"),
])
def test_a_corrupt_archive_is_refused_and_nothing_is_written(project, run_cli, tmp_path, damage, message, rewrite_archive):
    manifest = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    archive = manifest["archive"]
    if damage == "truncate":
        data = open(archive, "rb").read()
        open(archive, "wb").write(data[: len(data) // 2])
    elif damage == "tamper":
        rewrite_archive(archive, lambda name, data: (name, data[:-1] + bytes([data[-1] ^ 1]) if name == "history.sqlite3" else data))
    else:
        open(archive, "wb").write(b"not an archive at all")
    tree(project).rename(tmp_path / "moved")
    result = run_cli("restore", archive, cwd=project)
    assert result.exit_code == 1
    assert message in result.stderr and "nothing was restored" in result.stderr and "Traceback" not in result.output
    assert not tree(project).exists() or not any(p.is_file() for p in tree(project).rglob("*"))


def test_retention_keeps_the_newest_archives(project, run_cli):
    made = [backup(run_cli, project, "--keep", "2")["archive"] for _ in range(3)]
    left = sorted(p.name for p in (tree(project) / "backups" / "archives").iterdir())
    assert left == sorted(a.rsplit("/", 1)[1] for a in made[1:])
    (project / "envfence.toml").write_text(SETTINGS + "\n[backup]\nkeep = 1\n")
    last = backup(run_cli, project)
    assert [p.name for p in (tree(project) / "backups" / "archives").iterdir()] == [last["archive"].rsplit("/", 1)[1]]
    assert len(last["removed"]) == 2


def test_the_key_is_archived_only_when_asked(project, run_cli, tmp_path):
    missing = run_cli("backup", "--include-key", cwd=project)
    assert missing.exit_code == 1 and "has no key file" in missing.stderr
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    key = project / ".envfence" / "keys" / "development.key"
    without = backup(run_cli, project, "--output", str(tmp_path / "a"))
    assert "key/development.key" not in without["files"]
    with_key = backup(run_cli, project, "--output", str(tmp_path / "b"), "--include-key")
    assert with_key["includes_key"] is True and "key/development.key" in with_key["files"]
    tree(project).rename(tmp_path / "moved")
    refused = run_cli("restore", with_key["archive"], cwd=project)
    assert refused.exit_code == 1 and "the archive's key would replace it" in refused.stderr
    original = key.read_bytes()
    key.unlink()
    assert run_cli("restore", with_key["archive"], cwd=project).exit_code == 0
    assert key.read_bytes() == original and (key.stat().st_mode & 0o777) == 0o600


def test_progress_shows_on_a_terminal_only(project, run_cli):
    import os
    import pty
    import subprocess
    import sys

    quiet = run_cli("backup", cwd=project)
    assert quiet.exit_code == 0 and quiet.stderr == ""  # not a terminal: no progress
    primary, secondary = pty.openpty()
    env = {**os.environ, "ENVFENCE_HOSTNAME": "build-box-01"}
    try:
        done = subprocess.run([sys.executable, "-m", "envfence", "backup"], cwd=project, env=env, stdout=subprocess.PIPE,
                              stderr=secondary, timeout=60)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert b"history.sqlite3" in shown and b"audit/audit_development.jsonl" in shown


def test_restore_refuses_a_tree_that_leads_into_another_environment(project, run_cli, tmp_path):
    manifest = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    tree(project).rename(tmp_path / "moved")
    prod = tree(project, "production")
    prod.mkdir(parents=True)
    tree(project).symlink_to(prod, target_is_directory=True)  # development's tree is production's
    result = run_cli("restore", manifest["archive"], cwd=project)
    assert result.exit_code == 3 and "refusing to restore into the development tree" in result.stderr
    assert list(prod.iterdir()) == []
