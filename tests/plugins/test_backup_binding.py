"""Archives are complete, bound to their project and environment, pruned only among their own, and restored whole or not at all."""

from __future__ import annotations

import json

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n'


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env": "APP=v1\n", ".env.development": "BASE=appOne\n"}, settings=SETTINGS)
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    return root


def tree(root, env="development"):
    return root / "var" / env


def backup(run_cli, root, *args):
    result = run_cli("backup", "--json", *args, cwd=root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def relabel_manifest(environment):
    def change(name, data):
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["environment"] = environment
            return name, json.dumps(manifest, indent=2).encode()
        return name, data
    return change


def test_a_restored_archive_rolls_back_to_every_snapshot(project, run_cli, tmp_path):
    contents = {}
    for version in ("appOne", "appTwo", "appThree"):
        (project / ".env.development").write_text(f"BASE={version}\n")
        (project / ".env").write_text(f"APP={version.lower()}\n")
        snap = json.loads(run_cli("--json", "config", "snapshot", "--note", version, cwd=project).stdout)
        contents[snap["id"]] = ((project / ".env").read_text(), (project / ".env.development").read_text())
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    assert {f"backups/config/{i}/.env.development" for i in contents} <= set(made["files"])
    tree(project).rename(tmp_path / "disk-died")
    restored = run_cli("restore", made["archive"], cwd=project)
    assert restored.exit_code == 0, restored.output
    for snapshot_id, (dotenv, env_file) in contents.items():
        result = run_cli("config", "rollback", snapshot_id, cwd=project)
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        assert (project / ".env").read_text() == dotenv and (project / ".env.development").read_text() == env_file


def test_editing_the_manifests_environment_does_not_restore_development_into_production(project, run_cli, tmp_path, rewrite_archive):
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    made = backup(run_cli, project, "--include-key", "--output", str(tmp_path / "offsite"))
    rewrite_archive(made["archive"], relabel_manifest("production"))
    result = run_cli("--env", "production", "restore", made["archive"], cwd=project)
    assert result.exit_code == 3, result.output
    assert "audit/audit_development.jsonl belongs to 'development'" in result.stderr and "nothing was restored" in result.stderr
    assert not tree(project, "production").exists()
    assert not (project / ".envfence" / "keys" / "production.key").exists()


def test_with_an_audit_key_an_edited_or_stripped_manifest_is_refused(project, run_cli, tmp_path, rewrite_archive):
    assert run_cli("audit", "keygen", cwd=project).exit_code == 0
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    assert made["signed"] is True
    pristine = open(made["archive"], "rb").read()
    tree(project).rename(tmp_path / "lost")

    def add_note(name, data):  # a change no member check would see: only the MAC can
        if name == "manifest.json":
            return name, data.replace(b'"includes_key": false', b'"includes_key": false, "note": "edited"')
        return name, data
    rewrite_archive(made["archive"], add_note)
    edited = run_cli("restore", made["archive"], cwd=project)
    assert edited.exit_code == 3 and "the manifest's MAC does not match" in edited.stderr, edited.output
    open(made["archive"], "wb").write(pristine)
    rewrite_archive(made["archive"], lambda name, data: (None if name == "manifest.mac" else name, data))
    stripped = run_cli("restore", made["archive"], cwd=project)
    assert stripped.exit_code == 3 and "carries no MAC" in stripped.stderr, stripped.output
    assert not tree(project).exists()
    open(made["archive"], "wb").write(pristine)
    restored = run_cli("restore", made["archive"], cwd=project)
    assert restored.exit_code == 0 and "manifest MAC verified" in restored.stdout, restored.output


def test_an_archive_signed_by_development_is_refused_by_production(project, run_cli, tmp_path, rewrite_archive):
    for env in ("development", "production"):
        assert run_cli("--env", env, "audit", "keygen", cwd=project).exit_code == 0
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    rewrite_archive(made["archive"], relabel_manifest("production"))
    result = run_cli("--env", "production", "restore", made["archive"], cwd=project)
    assert result.exit_code == 3 and "MAC does not match production's audit key" in result.stderr, result.output
    assert not tree(project, "production").exists()


def test_a_key_member_named_for_another_environment_is_refused(project, run_cli, tmp_path, rewrite_archive):
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    made = backup(run_cli, project, "--include-key", "--output", str(tmp_path / "offsite"))

    def smuggle(name, data):  # development's key, listed under production's name, in a production-labelled archive
        if name == "manifest.json":
            manifest = json.loads(data)
            manifest["environment"] = "production"
            manifest["files"]["key/production.key"] = manifest["files"].pop("key/development.key")
            return name, json.dumps(manifest).encode()
        return ("key/production.key" if name == "key/development.key" else name), data
    rewrite_archive(made["archive"], smuggle)
    result = run_cli("--env", "production", "restore", made["archive"], cwd=project)
    assert result.exit_code == 3 and "belongs to 'development'" in result.stderr, result.output
    assert not (project / ".envfence" / "keys" / "production.key").exists()


def test_retention_touches_only_this_projects_and_this_environments_archives(make_project, run_cli, tmp_path):
    shared = tmp_path / "shared-backups"
    one = make_project({"jobs.py": JOBS}, settings=SETTINGS, name="one")
    two = make_project({"jobs.py": JOBS}, settings=SETTINGS, name="two")
    theirs = [backup(run_cli, two, "--output", str(shared))["archive"] for _ in range(2)]
    production = backup(run_cli, one, "--output", str(shared)) and \
        json.loads(run_cli("--env", "production", "backup", "--json", "--output", str(shared), cwd=one).stdout)["archive"]
    (shared / "envfence_development_20991231T235959.000000Z.tar.gz").write_bytes(b"not an archive")
    mine = [backup(run_cli, one, "--output", str(shared), "--keep", "2")["archive"] for _ in range(3)]
    left = {p.name for p in shared.iterdir()}
    assert {a.rsplit("/", 1)[1] for a in theirs} <= left, "another project's archives were removed"
    assert production.rsplit("/", 1)[1] in left, "another environment's archive was removed"
    assert "envfence_development_20991231T235959.000000Z.tar.gz" in left
    assert {a.rsplit("/", 1)[1] for a in mine[1:]} <= left and mine[0].rsplit("/", 1)[1] not in left
    assert len([n for n in left if n.startswith("envfence_development")]) == 2 + 2 + 1


def test_a_forged_archive_dated_in_the_future_never_pushes_out_the_one_just_written(project, run_cli, tmp_path, rewrite_archive):
    shared = tmp_path / "shared"
    first = backup(run_cli, project, "--output", str(shared))
    forged = shared / "envfence_development_20991231T235959.999999Z.tar.gz"
    forged.write_bytes(open(first["archive"], "rb").read())
    rewrite_archive(forged, lambda name, data: (name, data.replace(first["created_at"].encode(), b"2099-12-31T23:59:59+00:00"))
            if name == "manifest.json" else (name, data))
    latest = backup(run_cli, project, "--output", str(shared), "--keep", "1")
    assert (shared / latest["archive"].rsplit("/", 1)[1]).exists()


def test_a_restore_that_fails_halfway_leaves_no_partial_tree(project, run_cli, tmp_path, monkeypatch):
    from envfence import files
    from envfence.files import FileWriteError

    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    tree(project).rename(tmp_path / "lost")
    real, calls = files.write_atomic, []

    def disk_fills(base, path, data, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise FileWriteError(f"{path}: No space left on device", "free some space")
        return real(base, path, data, **kwargs)
    monkeypatch.setattr(files, "write_atomic", disk_fills)
    failed = run_cli("restore", made["archive"], cwd=project)
    assert failed.exit_code == 1 and "No space left on device" in failed.stderr, failed.output
    assert len(calls) == 3
    assert not tree(project).exists() or not any(p.is_file() for p in tree(project).rglob("*"))
    assert [p.name for p in tree(project).parent.iterdir() if p.name.startswith(".")] == []  # no staging left behind
    monkeypatch.setattr(files, "write_atomic", real)
    again = run_cli("restore", made["archive"], cwd=project)
    assert again.exit_code == 0, again.output
    assert run_cli("audit", "verify", cwd=project).exit_code == 0


def test_restore_into_a_tree_of_empty_directories_takes_their_place(project, run_cli, tmp_path):
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    tree(project).rename(tmp_path / "lost")
    (tree(project) / "logs" / "old").mkdir(parents=True)
    result = run_cli("restore", made["archive"], cwd=project)
    assert result.exit_code == 0, result.output
    assert (tree(project) / "history.sqlite3").is_file()


def test_an_archive_signed_before_the_audit_key_was_replaced_says_how_to_restore_it(project, run_cli, tmp_path, monkeypatch):
    assert run_cli("audit", "keygen", cwd=project).exit_code == 0
    key_file = project / ".envfence" / "keys" / "development.audit.key"
    old_key = key_file.read_text().strip()
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    key_file.unlink()
    assert run_cli("audit", "keygen", cwd=project).exit_code == 0  # a new key, since
    tree(project).rename(tmp_path / "lost")
    refused = run_cli("restore", made["archive"], cwd=project)
    assert refused.exit_code == 3 and "ENVFENCE_AUDIT_KEY_<PREFIX>" in refused.stderr, refused.output
    monkeypatch.setenv("ENVFENCE_AUDIT_KEY_DEV", old_key)
    assert run_cli("restore", made["archive"], cwd=project).exit_code == 0


def test_a_restore_killed_before_its_rename_leaves_only_its_staging_and_the_next_one_succeeds(project, run_cli, tmp_path):
    made = backup(run_cli, project, "--output", str(tmp_path / "offsite"))
    tree(project).rename(tmp_path / "lost")
    stale = tree(project).parent / ".development.restoring-killed"
    (stale / "audit").mkdir(parents=True)
    (stale / "audit" / "audit_development.jsonl").write_text("half\n")  # what a kill -9 leaves: beside the tree, not in it
    result = run_cli("restore", made["archive"], cwd=project)
    assert result.exit_code == 0, result.output
    assert run_cli("audit", "verify", cwd=project).exit_code == 0


def test_retention_never_follows_a_link_in_the_directory(project, run_cli, tmp_path):
    shared = tmp_path / "shared"
    kept = backup(run_cli, project, "--output", str(tmp_path / "elsewhere"))
    shared.mkdir()
    link = shared / "envfence_development_20000101T000000.000000Z.tar.gz"
    link.symlink_to(kept["archive"])
    backup(run_cli, project, "--output", str(shared), "--keep", "1")
    assert link.is_symlink() and (tmp_path / "elsewhere" / kept["archive"].rsplit("/", 1)[1]).is_file()
