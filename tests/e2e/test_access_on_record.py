"""Reading the configuration is on the record (`config.read`), and security events reach the alert channels once."""

from __future__ import annotations

import json
import time

import pytest

TOKEN = "canary-Read-Token-5521"
JOBS = "def touch(ctx):\n    ctx.paths.base.joinpath('marker').write_text(ctx.environment)\n"
SETTINGS = '[automations]\ntouch = "jobs:touch"\n[alerts.escalation]\nproduction = ["console"]\ndevelopment = ["console"]\n'


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env": f"DEV_API_TOKEN={TOKEN}\nLOG_LEVEL=info\n"}, settings=SETTINGS)
    assert run_cli("init", cwd=root).exit_code == 0  # the trail exists
    return root


def records(root, env="development"):
    trail = root / "var" / env / "audit" / f"audit_{env}.jsonl"
    return [json.loads(line) for line in trail.read_text().splitlines() if line.strip()]


def reads(root):
    return [r["data"] for r in records(root) if r["event"] == "config.read"]


def test_config_show_get_export_and_exec_are_on_the_record(project, run_cli):
    import getpass

    assert run_cli("config", "show", cwd=project).exit_code == 0
    assert run_cli("get", "LOG_LEVEL", cwd=project).exit_code == 0
    assert run_cli("export", cwd=project).exit_code == 0
    assert run_cli("exec", "--", "true", cwd=project).exit_code == 0
    got = reads(project)
    assert [r["command"] for r in got] == ["config show", "get", "export", "exec"]
    assert got[0]["keys"] == ["DEV_API_TOKEN", "LOG_LEVEL"]
    assert got[1]["keys"] == ["LOG_LEVEL"]
    assert got[2]["keys"] == ["LOG_LEVEL"]  # the secret was left out, so not read
    assert got[3]["keys"] == ["API_TOKEN", "LOG_LEVEL"]
    assert {r["by"] for r in got} == {getpass.getuser()}
    assert TOKEN not in json.dumps(records(project))


def test_a_read_creates_no_tree(make_project, run_cli):
    root = make_project({".env": "LOG_LEVEL=info\n"})
    assert run_cli("config", "show", cwd=root).exit_code == 0
    assert not (root / "var").exists()


def test_recording_a_read_costs_under_5_ms(project):
    """Measured: the median processor time of recording ``config.read`` in an existing trail, over 30 reads.

    Processor time, not wall time: the rest is the disk's fsync latency, the
    same for every audit record (a loaded machine's disk takes 10 ms or more).
    """
    import statistics

    import envfence

    session = envfence.open_session(project, env="development")
    session.config_read("warm-up", ["LOG_LEVEL"])
    costs = []
    for _ in range(30):
        started = time.process_time()
        session.config_read("config show", ["LOG_LEVEL", "DEV_API_TOKEN"])
        costs.append(time.process_time() - started)
    assert statistics.median(costs) < 0.005, f"median {statistics.median(costs) * 1000:.2f} ms"
    assert len(reads(project)) == 31


def alerts_in(output: str, check: str) -> int:
    return sum(1 for line in output.splitlines() if "ALERT" in line and check in line)


def test_a_forced_production_run_is_a_security_alert_once(project, run_cli):
    result = run_cli("--env", "production", "run", "touch", "--force", "--reason", "incident 7", cwd=project)
    assert result.exit_code == 0, result.output
    assert alerts_in(result.stderr, "security:run.forced") == 1
    assert "incident 7" in result.stderr
    dry = run_cli("--env", "production", "run", "touch", "--dry-run", "--force", "--reason", "look", cwd=project)
    assert alerts_in(dry.stderr, "security:run.forced") == 0  # a dry run forces nothing


def test_a_run_past_a_disabled_guard_is_a_security_alert(project, run_cli):
    result = run_cli("-p", "no:hostname", "run", "touch", "--force", cwd=project)
    assert result.exit_code == 0, result.output
    assert alerts_in(result.stderr, "security:run.forced") == 1 and "GUARD_DISABLED" in result.stderr


def test_an_ordinary_development_force_is_no_security_alert(project, run_cli):
    result = run_cli("run", "touch", "--force", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert result.exit_code == 0, result.output
    assert alerts_in(result.stderr, "security:") == 0


def test_a_reveal_is_a_security_alert(project, run_cli):
    result = run_cli("get", "API_TOKEN", "--reveal", cwd=project)
    assert result.exit_code == 0 and result.stdout.strip() == TOKEN
    assert alerts_in(result.stderr, "security:secret.revealed") == 1 and TOKEN not in result.stderr


def test_a_broken_audit_trail_is_alerted_once(project, run_cli):
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    lines = trail.read_text().splitlines()
    lines[0] = lines[0].replace('"at":"2', '"at":"1', 1)  # a record edited in place
    trail.write_text("\n".join(lines) + "\n")
    first = run_cli("audit", "verify", cwd=project)
    assert first.exit_code == 1 and alerts_in(first.stderr, "security:audit.broken") == 1
    again = run_cli("audit", "verify", cwd=project)
    assert again.exit_code == 1 and alerts_in(again.stderr, "security:audit.broken") == 0


def test_a_restore_is_a_security_alert(project, run_cli, tmp_path):
    made = run_cli("backup", "--output", str(tmp_path / "archives"), cwd=project)
    assert made.exit_code == 0, made.output
    [archive] = (tmp_path / "archives").iterdir()
    tree = project / "var" / "development"
    tree.rename(tree.with_name("development.old"))  # restore writes only into an empty tree
    restored = run_cli("restore", str(archive), cwd=project)
    assert restored.exit_code == 0, restored.output
    assert alerts_in(restored.stderr, "security:backup.restored") == 1
