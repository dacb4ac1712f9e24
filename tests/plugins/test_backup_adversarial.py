"""`envfence restore` against hostile archives: links, traversal, a lying manifest, a bomb. Nothing is written for any of them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n'


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    return root


def craft(path, members, manifest=None, env="development"):
    """An archive whose manifest agrees with its (hostile) members, as a forger would make it."""
    files = {m[0]: m[2] for m in members if m[1] == tarfile.REGTYPE}
    manifest = manifest if manifest is not None else {
        "format": 2, "environment": env, "project": "/x", "created_at": "2026-01-01T00:00:00+00:00", "includes_key": False,
        "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()},
    }
    with tarfile.open(path, "w:gz") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for name, kind, data, target in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target or ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


@pytest.mark.parametrize("members", [
    [("../../outside.txt", tarfile.REGTYPE, b"x", None)],
    [("/tmp/absolute.txt", tarfile.REGTYPE, b"x", None)],
    [("state/link", tarfile.SYMTYPE, b"", "/etc/passwd")],
    [("state/hard", tarfile.LNKTYPE, b"", "history.sqlite3")],
    [("state", tarfile.DIRTYPE, b"", None)],
    [("", tarfile.REGTYPE, b"x", None)],
    [(".", tarfile.REGTYPE, b"x", None)],
    [("state/a", tarfile.REGTYPE, b"x", None), ("state/a/b", tarfile.REGTYPE, b"y", None)],
    [("key/development.key", tarfile.REGTYPE, b"k" * 44, None)],  # a key the manifest says is not there
])
def test_a_hostile_archive_is_refused_before_anything_is_written(project, run_cli, tmp_path, members):
    archive = craft(tmp_path / "evil.tar.gz", members)
    (project / "var" / "development").rename(tmp_path / "moved")
    result = run_cli("restore", str(archive), cwd=project)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "nothing was restored" in result.stderr
    assert not (project / "var" / "development").exists() or not any((project / "var" / "development").rglob("*"))
    assert not (tmp_path / "outside.txt").exists() and not (project / ".envfence" / "keys" / "development.key").exists()


@pytest.mark.parametrize("manifest", [
    {"format": 2, "environment": "development", "files": {}},  # no created_at
    {"format": 2, "environment": "development", "created_at": "x", "files": []},
    {"format": 2, "environment": ["development"], "created_at": "x", "files": {}},
    {"format": 2, "environment": "development", "created_at": "x", "files": {"state/x": "not a table"}},
    [],
])
def test_a_manifest_of_the_wrong_shape_is_a_damaged_archive(project, run_cli, tmp_path, manifest):
    members = [("state/x", tarfile.REGTYPE, b"x", None)] if isinstance(manifest, dict) and manifest.get("files") else []
    archive = craft(tmp_path / "odd.tar.gz", members, manifest=manifest)
    (project / "var" / "development").rename(tmp_path / "moved")
    result = run_cli("restore", str(archive), cwd=project)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "manifest.json" in result.stderr and "nothing was restored" in result.stderr


def test_a_member_larger_than_its_manifest_says_is_refused_without_reading_it_all(project, run_cli, tmp_path):
    big = b"\0" * (8 * 1024 * 1024)
    manifest = {"format": 2, "environment": "development", "created_at": "x", "includes_key": False,
                "files": {"history.sqlite3": {"sha256": hashlib.sha256(b"small").hexdigest(), "size": 5}}}
    archive = craft(tmp_path / "bomb.tar.gz", [("history.sqlite3", tarfile.REGTYPE, big, None)], manifest=manifest)
    (project / "var" / "development").rename(tmp_path / "moved")
    result = run_cli("restore", str(archive), cwd=project)
    assert result.exit_code == 1 and "history.sqlite3" in result.stderr and "size" in result.stderr, result.output


def test_an_archive_of_production_renamed_as_developments_is_refused(project, run_cli, tmp_path):
    made = json.loads(run_cli("--env", "production", "backup", "--json", "--output", str(tmp_path / "a"), cwd=project).stdout)
    renamed = tmp_path / "a" / made["archive"].rsplit("/", 1)[1].replace("production", "development")
    (tmp_path / "a" / made["archive"].rsplit("/", 1)[1]).rename(renamed)
    (project / "var" / "development").rename(tmp_path / "moved")
    result = run_cli("restore", str(renamed), cwd=project)
    assert result.exit_code == 3 and "a backup of production" in result.stderr


def test_backup_json_and_progress_never_show_the_key(project, run_cli, tmp_path):
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    key = (project / ".envfence" / "keys" / "development.key").read_bytes().strip()
    made = run_cli("backup", "--json", "--include-key", "--output", str(tmp_path / "k"), cwd=project)
    assert made.exit_code == 0 and key.decode() not in made.output
    listed = run_cli("restore", json.loads(made.stdout)["archive"], "--dry-run", "--json", cwd=project)
    assert key.decode() not in listed.output


def test_accepted_webhook_events_survive_a_backup_and_restore(make_project, run_cli, tmp_path):
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    session = open_session(root=root)
    session.prepare()
    queue = WebhookQueue(session.paths)
    assert queue.accept(route="/hook", event_id="evt-waiting", provider="standard", event_type=None, automation="ok",
                        body=b'{"n": 1}', headers={}, max_attempts=3)
    made = json.loads(run_cli("backup", "--json", "--output", str(tmp_path / "off"), cwd=root).stdout)
    queue.close()
    assert "queue/webhooks.sqlite3" in made["files"]
    (root / "var" / "development").rename(tmp_path / "lost")
    assert run_cli("restore", made["archive"], cwd=root).exit_code == 0
    listed = json.loads(run_cli("queue", "list", "--json", cwd=root).stdout)["events"]
    assert [(e["id"], e["status"]) for e in listed] == [("evt-waiting", "pending")]  # still to run, and still a known id


def test_a_trail_replaced_by_a_link_is_never_archived_through_it(project, run_cli, tmp_path):
    """The trail is read by the plugin that keeps it, through no link: a link planted for it stops the backup."""
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("another environment's records\n")
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    trail.unlink()
    trail.symlink_to(secret)
    result = run_cli("backup", "--output", str(tmp_path / "offsite"), cwd=project)
    assert result.exit_code == 1 and "is a symbolic link; the audit trail is never read or written through one" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "offsite").exists() or list((tmp_path / "offsite").iterdir()) == []


def test_a_plugin_disabled_keeps_its_files_out_of_the_archive_and_verify_says_the_trail_was_not_checked(project, run_cli, tmp_path):
    made = run_cli("-p", "no:audit", "--json", "backup", "--output", str(tmp_path / "offsite"), cwd=project)
    assert made.exit_code == 0, made.output
    names = set(json.loads(made.stdout)["files"])
    assert "history.sqlite3" in names and not any(n.startswith("audit/") for n in names)
    archive = json.loads(made.stdout)["archive"]
    checked = run_cli("-p", "no:audit", "backup", "verify", archive, cwd=project)
    assert checked.exit_code == 0 and "no audit trail checked (the audit plugin is not loaded)" in checked.stdout
    with_trail = run_cli("--json", "backup", "verify", archive, cwd=project)
    assert with_trail.exit_code == 0 and json.loads(with_trail.stdout)["audit_records"] == 0


def test_a_restore_that_fails_takes_back_the_key_and_the_stage(project, run_cli, tmp_path):
    """A file that appears in the tree while a restore runs stops it; the stage and the key it wrote are removed."""
    from envfence import files

    assert run_cli("--env", "development", "secret", "keygen", cwd=project).exit_code == 0
    made = run_cli("--json", "backup", "--include-key", "--output", str(tmp_path / "offsite"), cwd=project)
    archive = json.loads(made.stdout)["archive"]
    key = project / ".envfence" / "keys" / "development.key"
    key.unlink()
    tree = project / "var" / "development"
    tree.rename(tmp_path / "moved")
    real = files.put_in_place

    def late_file(base, stage, name):
        (base / name / "logs").mkdir(parents=True)
        (base / name / "logs" / "late.log").write_text("written meanwhile\n")
        return real(base, stage, name)

    import envfence.files

    envfence.files.put_in_place = late_file
    try:
        result = run_cli("restore", archive, cwd=project)
    finally:
        envfence.files.put_in_place = real
    assert result.exit_code == 1 and "cannot put the restored tree in place" in result.stderr
    assert not key.exists()
    assert sorted(p.name for p in tree.parent.iterdir()) == ["development"]  # no stage left beside it
    assert [p.name for p in tree.rglob("*") if p.is_file()] == ["late.log"]


def test_a_plugin_naming_a_file_outside_the_tree_stops_the_backup(project, run_cli, tmp_path, envfence_plugin):
    """A file a plugin names by a path that leaves the tree (``..``) is never archived under a name that would restore elsewhere."""
    from envfence import hookimpl

    (tmp_path / "outside.txt").write_text("not the environment's\n")

    class Sloppy:
        @hookimpl(optionalhook=True)
        def backup_files(self, session):
            return [(session.paths.base / ".." / ".." / ".." / "outside.txt", lambda: b"not the environment's\n")]

    envfence_plugin(Sloppy(), "sloppy")
    result = run_cli("backup", "--output", str(tmp_path / "offsite"), cwd=project)
    assert result.exit_code == 1 and "is outside the development tree" in result.stderr
    assert not (tmp_path / "offsite").exists() or list((tmp_path / "offsite").iterdir()) == []
