"""Configuration snapshots and rollback: in the environment's tree, reversible, audited."""

from __future__ import annotations

import json

CANARY = "canary-snap-9e21-never-show"


def test_snapshot_then_rollback_restores_the_files(make_project, run_cli):
    root = make_project({".env": f"APP=v1\nDEV_API_TOKEN={CANARY}\n", ".env.development": "BASE=appOld\n"})
    taken = run_cli("--json", "config", "snapshot", "--note", "before the migration", cwd=root)
    assert taken.exit_code == 0, taken.output
    snap = json.loads(taken.stdout)
    assert snap["files"][".env.local"] is None and snap["files"][".env"]
    # A bad change: a new local file and an edited one.
    (root / ".env.development").write_text("BASE=appBroken\n")
    (root / ".env.local").write_text("DEBUG=1\n")
    result = run_cli("config", "rollback", snap["id"][:12], cwd=root)
    assert result.exit_code == 0, result.output
    assert "restored .env.development" in result.stdout and "removed .env.local" in result.stdout
    assert (root / ".env.development").read_text() == "BASE=appOld\n"
    assert not (root / ".env.local").exists()
    assert CANARY not in result.output and CANARY not in taken.output


def test_rollback_is_itself_reversible(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"})
    first = json.loads(run_cli("--json", "config", "snapshot", cwd=root).stdout)["id"]
    (root / ".env").write_text("APP=v2\n")
    undo = json.loads(run_cli("--json", "config", "rollback", first, cwd=root).stdout)["saved_as"]
    assert (root / ".env").read_text() == "APP=v1\n"
    run_cli("config", "rollback", undo, cwd=root)
    assert (root / ".env").read_text() == "APP=v2\n"


def test_snapshots_live_in_the_environments_own_tree_owner_only(make_project, run_cli):
    root = make_project({".env": "APP=v1\n", ".env.production": "BASE=live\n"})
    snap = json.loads(run_cli("--env", "prod", "--json", "config", "snapshot", cwd=root).stdout)
    path = root / "var" / "production" / "backups" / "config" / snap["id"]
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    assert oct((path / ".env.production").stat().st_mode & 0o777) == "0o600"
    assert json.loads(run_cli("--json", "config", "rollback", "--list", cwd=root).stdout) == []  # development has none


def test_dry_run_changes_nothing(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"})
    snap = json.loads(run_cli("--json", "config", "snapshot", cwd=root).stdout)["id"]
    (root / ".env").write_text("APP=v2\n")
    before = sorted(p.name for p in (root / "var" / "development" / "backups" / "config").iterdir())
    result = run_cli("config", "rollback", snap, "--dry-run", cwd=root)
    assert result.stdout.strip() == "would restore .env"
    assert (root / ".env").read_text() == "APP=v2\n"
    assert sorted(p.name for p in (root / "var" / "development" / "backups" / "config").iterdir()) == before


def test_production_rollback_needs_a_reason_and_is_audited(make_project, run_cli):
    root = make_project({".env.production": "BASE=live\n"})
    snap = json.loads(run_cli("--env", "prod", "--json", "config", "snapshot", cwd=root).stdout)["id"]
    (root / ".env.production").write_text("BASE=broken\n")
    refused = run_cli("--env", "prod", "config", "rollback", snap, cwd=root)
    assert refused.exit_code == 2 and "--reason" in refused.stderr
    assert (root / ".env.production").read_text() == "BASE=broken\n"
    done = run_cli("--env", "prod", "config", "rollback", snap, "--reason", "INC-42 bad base id", cwd=root)
    assert done.exit_code == 0, done.output
    events = json.loads(run_cli("--env", "prod", "--json", "audit", "show", cwd=root).stdout)
    [rolled] = [e for e in events if e["event"] == "config.rolled_back"]
    assert rolled["data"]["reason"] == "INC-42 bad base id" and rolled["data"]["to"] == snap


def test_unknown_snapshot_is_a_usage_error(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"})
    result = run_cli("config", "rollback", "2099", cwd=root)
    assert result.exit_code == 2 and "is no snapshot" in result.stderr


def test_a_snapshot_store_linked_outside_the_tree_is_refused_and_nothing_is_copied(make_project, run_cli, tmp_path):
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\n"})
    assert run_cli("init", cwd=root).exit_code == 0
    outside = tmp_path / "x"
    outside.mkdir()
    (root / "var" / "development" / "backups" / "config").symlink_to(outside)
    result = run_cli("config", "snapshot", cwd=root)
    assert result.exit_code != 0
    assert "backups/config" in result.output and "symlink" in result.output and "saved" not in result.output
    assert list(outside.iterdir()) == []
    assert CANARY not in result.output


def test_snapshots_keep_the_last_n_and_say_so_in_the_trail(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"}, settings="[snapshots]\nkeep = 2\n")
    ids = [json.loads(run_cli("--json", "config", "snapshot", "--note", str(i), cwd=root).stdout)["id"] for i in range(4)]
    store = root / "var" / "development" / "backups" / "config"
    assert sorted(p.name for p in store.iterdir()) == ids[-2:]
    listed = json.loads(run_cli("--json", "config", "rollback", "--list", cwd=root).stdout)
    assert [s["id"] for s in listed] == ids[:-3:-1]
    trail = "".join(p.read_text() for p in (root / "var" / "development" / "audit").glob("*.jsonl"))
    assert '"config.snapshots_pruned"' in trail


def test_a_wrong_snapshot_retention_is_a_configuration_error(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"}, settings='[snapshots]\nkeep = "all"\n')
    result = run_cli("config", "snapshot", cwd=root)
    assert result.exit_code == 4 and "snapshots.keep: must be a whole number" in result.output
    assert not (root / "var").exists()


def test_a_snapshot_whose_copy_is_missing_or_altered_is_refused_by_name_and_nothing_changes(make_project, run_cli):
    root = make_project({".env": "APP=v1\n"})
    snap = json.loads(run_cli("--json", "config", "snapshot", cwd=root).stdout)["id"]
    (root / ".env").write_text("APP=v2\n")
    copy = root / "var" / "development" / "backups" / "config" / snap / ".env"
    copy.write_text("APP=planted\n")
    altered = run_cli("config", "rollback", snap, cwd=root)
    assert altered.exit_code == 1 and "its copy of .env" in altered.stderr and "not what the snapshot recorded" in altered.stderr
    copy.unlink()
    missing = run_cli("config", "rollback", snap, cwd=root)
    assert missing.exit_code == 1 and "No such file" in missing.stderr and "Traceback" not in missing.output, missing.output
    assert (root / ".env").read_text() == "APP=v2\n"
    assert len(json.loads(run_cli("--json", "config", "rollback", "--list", cwd=root).stdout)) == 1  # no snapshot taken for nothing


def _linked_layer_plugin(hookimpl, name: str):
    """A plugin whose file layer lives in ``conf/`` of the project, as a plugin's own layer may."""
    from envfence.models import ConfigLayer

    class ConfLayer:
        @hookimpl
        def load_config(self, root, environment, settings, environ):
            path = root / "conf" / name
            values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line) if path.is_file() else {}
            return [ConfigLayer(f"conf/{name}", values, 15, path=path, exists=path.is_file(), plugin="conf")]

    return ConfLayer()


def test_a_rollback_never_writes_through_a_linked_directory_and_changes_nothing(make_project, run_cli, envfence_plugin, tmp_path):
    from envfence import hookimpl

    envfence_plugin(_linked_layer_plugin(hookimpl, "extra.env"), "conf")
    root = make_project({".env": "APP=v1\n", "conf/extra.env": "LEVEL=old\n"})
    snap = json.loads(run_cli("--json", "config", "snapshot", cwd=root).stdout)["id"]
    (root / ".env").write_text("APP=v2\n")
    # The layer's directory is swapped for a link to a place outside the project, holding a file of the same name.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "extra.env").write_text("LEVEL=theirs\n")
    (root / "conf" / "extra.env").unlink()
    (root / "conf").rmdir()
    (root / "conf").symlink_to(elsewhere)
    result = run_cli("config", "rollback", snap, cwd=root)
    assert result.exit_code == 3, result.output
    assert "conf/extra.env" in result.stderr and "symbolic link" in result.stderr and "nothing was changed" in result.stderr
    assert (elsewhere / "extra.env").read_text() == "LEVEL=theirs\n"  # not written through the link
    assert (root / ".env").read_text() == "APP=v2\n"  # and no half rollback
    assert len(json.loads(run_cli("--json", "config", "rollback", "--list", cwd=root).stdout)) == 1


def test_a_rollback_replaces_a_linked_layer_file_and_leaves_what_it_pointed_to(make_project, run_cli, tmp_path):
    root = make_project({".env": "APP=v1\n", ".env.development": "BASE=appOld\n"})
    snap = json.loads(run_cli("--json", "config", "snapshot", cwd=root).stdout)["id"]
    victim = tmp_path / "victim.env"
    victim.write_text("BASE=victim\n")
    (root / ".env.development").unlink()
    (root / ".env.development").symlink_to(victim)
    result = run_cli("config", "rollback", snap, cwd=root)
    assert result.exit_code == 0, result.output
    assert not (root / ".env.development").is_symlink() and (root / ".env.development").read_text() == "BASE=appOld\n"
    assert victim.read_text() == "BASE=victim\n"
