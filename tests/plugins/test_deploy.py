"""``envfence deploy`` and ``envfence deployments``: checked, recorded, health-checked, rolled back and alerted."""

from __future__ import annotations

import json
import subprocess

import pytest

from envfence import hookimpl
from envfence.models import Finding

CANARY = "canary-deploy-51c0-never-show"
UNWELL = '[health]\nmin_free_disk = "100000GB"\n'  # no disk has that much free: the health check is CRITICAL


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org", "GIT_COMMITTER_NAME": "Ada",
                               "GIT_COMMITTER_EMAIL": "ada@example.org", "HOME": str(root), "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def repo(make_project):
    root = make_project({".env": "APP=v1\n", ".gitignore": "var/\n.env.local\n"})
    git(root, "init", "-q", ".")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    git(root, "tag", "v1.0")
    return root


@pytest.fixture
def pager(envfence_plugin):
    """A project's alert channel, ``pager``: the alerts it was handed."""
    got = []

    class Pager:
        @hookimpl(optionalhook=True)
        def alert(self, session, alert, channels):
            if "pager" in channels:
                got.append(alert)
                return ["pager"]
            return None

    envfence_plugin(Pager(), "pager")
    return got


def test_deploy_records_code_and_configuration_versions_who_and_host(repo, run_cli):
    result = run_cli("--json", "deploy", cwd=repo)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "succeeded" and record["code_version"] == "v1.0"
    assert record["commit"] == git(repo, "rev-parse", "HEAD")
    assert record["config_version"].startswith("cv-") and record["user"] and record["host"]
    listed = json.loads(run_cli("--json", "deployments", cwd=repo).stdout)
    assert [(d["id"], d["status"], d["config_version"]) for d in listed] == [(record["id"], "succeeded", record["config_version"])]
    text = run_cli("deployments", cwd=repo).stdout
    assert record["id"] in text and "v1.0" in text and record["config_version"] in text
    events = json.loads(run_cli("--json", "audit", "show", cwd=repo).stdout)
    assert {"deploy.started", "deploy.succeeded", "config.snapshot"} <= {e["event"] for e in events}


def test_without_git_the_version_file_names_the_code(make_project, run_cli):
    root = make_project({".env": "APP=v1\n", "VERSION": "2.4.1\n"})
    record = json.loads(run_cli("--json", "deploy", cwd=root).stdout)
    assert record["code_version"] == "2.4.1" and record["commit"] is None


def test_a_check_warning_stops_the_deployment_unless_allowed(repo, run_cli):
    (repo / "migrations").mkdir()
    (repo / "migrations" / "0001_drop.toml").write_text('[[op]]\nop = "drop"\nkey = "OLD"\n')
    refused = run_cli("deploy", cwd=repo)
    assert refused.exit_code == 1 and "CONFIG_MIGRATION_PENDING" in refused.stderr
    assert json.loads(run_cli("--json", "deployments", cwd=repo).stdout) == []
    assert json.loads(run_cli("--json", "config", "rollback", "--list", cwd=repo).stdout) == []  # no snapshot either
    allowed = run_cli("deploy", "--allow-warnings", cwd=repo)
    assert allowed.exit_code == 0, allowed.output


def test_failing_health_rolls_back_to_the_previous_deployment_and_alerts(repo, run_cli, pager):
    (repo / "envfence.toml").write_text('[alerts.escalation]\ndevelopment = ["pager"]\n')
    first = json.loads(run_cli("--json", "deploy", cwd=repo).stdout)
    (repo / ".env").write_text("APP=v2\n")
    (repo / ".env.local").write_text(f"DEV_API_TOKEN={CANARY}\n")
    (repo / "envfence.toml").write_text('[alerts.escalation]\ndevelopment = ["pager"]\n' + UNWELL)
    result = run_cli("deploy", cwd=repo)
    assert result.exit_code == 1
    assert "HEALTH_CRITICAL" in result.stderr and f"back to deployment {first['id']}" in result.stderr
    assert (repo / ".env").read_text() == "APP=v1\n" and not (repo / ".env.local").exists()
    [alert] = pager
    assert alert.check == "security:deploy.failed" and first["id"] in alert.message and "HEALTH_CRITICAL" in alert.message
    listed = json.loads(run_cli("--json", "deployments", cwd=repo).stdout)
    assert [d["status"] for d in listed] == ["rolled_back", "succeeded"]
    assert listed[0]["rolled_back_to"] == first["id"] and listed[0]["failures"] == ["HEALTH_CRITICAL"]
    trail = run_cli("--json", "audit", "show", cwd=repo).stdout
    assert CANARY not in result.output + trail + json.dumps(listed)


def test_a_first_deployment_that_fails_has_nothing_to_go_back_to(repo, run_cli):
    (repo / "envfence.toml").write_text(UNWELL)
    (repo / ".env").write_text("APP=v2\n")
    result = run_cli("--json", "deploy", cwd=repo)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"
    assert (repo / ".env").read_text() == "APP=v2\n"


def test_a_project_plugin_runs_its_own_steps_before_and_after(repo, run_cli, envfence_plugin):
    calls = []

    class Release:
        @hookimpl(optionalhook=True)
        def pre_deploy(self, session, deployment):
            calls.append(("pre", deployment["id"], "config_version" in deployment))
            if (session.root.path / "FREEZE").exists():
                return [Finding("RELEASE_FROZEN", "error", "releases are frozen", "remove FREEZE", plugin="release")]
            return []

        @hookimpl(optionalhook=True)
        def post_deploy(self, session, deployment):
            calls.append(("post", deployment["id"], deployment["config_version"]))
            if (session.root.path / "SMOKE_FAILS").exists():
                raise RuntimeError("smoke test: /healthz answered 502")
            return []

    envfence_plugin(Release(), "release")
    good = json.loads(run_cli("--json", "deploy", cwd=repo).stdout)
    assert calls == [("pre", good["id"], False), ("post", good["id"], good["config_version"])]
    (repo / "FREEZE").write_text("")
    frozen = run_cli("deploy", cwd=repo)
    assert frozen.exit_code == 1 and "RELEASE_FROZEN" in frozen.stderr
    assert len(json.loads(run_cli("--json", "deployments", cwd=repo).stdout)) == 1
    (repo / "FREEZE").unlink()
    (repo / "SMOKE_FAILS").write_text("")
    (repo / ".env").write_text("APP=broken\n")
    failed = run_cli("deploy", cwd=repo)
    assert failed.exit_code == 1 and "smoke test: /healthz answered 502" in failed.stderr
    assert (repo / ".env").read_text() == "APP=v1\n"


def test_without_the_deploy_plugin_there_is_no_deploy_command(repo, run_cli):
    result = run_cli("-p", "no:deploy", "deploy", cwd=repo)
    assert result.exit_code == 2 and "No such command" in result.output
