"""``envfence config history [KEY]``: the configuration's changes from git and snapshots, masked, tied to their cause."""

from __future__ import annotations

import json
import subprocess

CANARY = "canary-history-a9d2-never-show"
OTHER = "canary-history-other-env"


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
                               "GIT_COMMITTER_EMAIL": "ada@example.org", "HOME": str(root), "PATH": "/usr/bin:/bin"}).stdout.strip()


def commit(root, message):
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def test_history_from_git_and_snapshots_masked_and_tied_to_migrations_and_deployments(make_project, run_cli):
    root = make_project({".env": f"LOG_LEVEL=info\nHCP_TOKEN={CANARY}\nPROD_HCP_TOKEN={OTHER}\n",
                         ".gitignore": "var/\n"})
    git(root, "init", "-q", ".")
    first = commit(root, "first configuration")
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_rename.toml").write_text('[[op]]\nop = "rename"\nkey = "HCP_TOKEN"\nto = "HCP_API_KEY"\n')
    assert run_cli("--env", "dev", "config", "migrate", cwd=root).exit_code == 0
    migrated = commit(root, "rename the HousecallPro token")
    deployed = run_cli("--json", "deploy", "--allow-warnings", cwd=root)
    assert deployed.exit_code == 0, deployed.output
    deployment = json.loads(deployed.stdout)
    (root / ".env").write_text((root / ".env").read_text().replace("LOG_LEVEL=info", "LOG_LEVEL=debug"))

    result = run_cli("--json", "config", "history", cwd=root)
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)["events"]
    by_ref = {e["ref"]: e for e in events}
    assert by_ref[first]["who"] == "Ada" and by_ref[first]["note"] == "first configuration"
    assert {(c["key"], c["action"], c["new"]) for c in by_ref[first]["changes"]} == {
        ("LOG_LEVEL", "added", "info"), ("HCP_TOKEN", "added", "********")}
    assert by_ref[migrated]["tied_to"] == ["migration 0001_rename", f"deployment {deployment['id']}"]
    assert {(c["key"], c["action"]) for c in by_ref[migrated]["changes"]} == {("HCP_TOKEN", "removed"), ("HCP_API_KEY", "added")}
    now = by_ref["now"]
    assert now["changes"] == [{"file": ".env", "key": "LOG_LEVEL", "action": "changed", "old": "info", "new": "debug"}]
    assert now["tied_to"] == []  # an edit by hand: nothing produced it
    # The snapshot before the migration is where that timeline starts; the deployment's shows the rename.
    [snapshot] = [e for e in events if e["source"] == "snapshot"]
    assert snapshot["note"] == f"deployment {deployment['id']}"
    assert snapshot["tied_to"] == ["migration 0001_rename", f"deployment {deployment['id']}"]
    assert snapshot["version"] == deployment["config_version"]
    text = run_cli("config", "history", cwd=root).stdout
    assert f"[migration 0001_rename, deployment {deployment['id']}]" in text and "LOG_LEVEL=info -> debug" in text
    assert CANARY not in result.output + text and OTHER not in result.output + text
    assert "PROD_HCP_TOKEN" not in result.output  # another environment's key is not this one's history


def test_history_of_one_key_and_snapshots_name_their_deployment(make_project, run_cli):
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\nURL=https://api.example/v1\n"})  # no git here
    first = json.loads(run_cli("--json", "deploy", cwd=root).stdout)
    (root / ".env").write_text(f"DEV_API_TOKEN={CANARY}-rotated\nURL=https://api.example/v2\n")
    second = json.loads(run_cli("--json", "deploy", cwd=root).stdout)
    events = json.loads(run_cli("--json", "config", "history", "API_TOKEN", cwd=root).stdout)["events"]
    assert [(e["source"], e["tied_to"]) for e in events] == [("snapshot", [f"deployment {second['id']}"])]
    assert events[0]["changes"] == [{"file": ".env", "key": "DEV_API_TOKEN", "action": "changed", "old": "********", "new": "********"}]
    assert events[0]["version"] == second["config_version"] != first["config_version"]
    urls = json.loads(run_cli("--json", "config", "history", "URL", cwd=root).stdout)["events"]
    assert urls[0]["changes"][0]["old"] == "https://api.example/v1" and urls[0]["changes"][0]["new"] == "https://api.example/v2"
    assert CANARY not in json.dumps(events + urls)


def test_no_history_says_so(make_project, run_cli):
    root = make_project({".env": "A=1\n"})
    result = run_cli("config", "history", cwd=root)
    assert result.exit_code == 0 and "no recorded change" in result.stdout
