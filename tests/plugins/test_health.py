"""`envfence health`: missed runs, failures, thresholds, locks, disk and the audit chain, with Nagios exit codes."""

from __future__ import annotations

import datetime as _dt
import fcntl
import json

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n\ndef bad(ctx):\n    raise RuntimeError('broken')\n"

SETTINGS = """
[automations.hourly]
run = "jobs:ok"
schedule = "0 * * * *"

[automations.loose]
run = "jobs:ok"
"""


@pytest.fixture
def project(make_project):
    import envfence

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    envfence.open_session(root=root).prepare()  # the tree and its audit trail exist before any run, as `init` makes them
    return root


def seed(root, automation: str, *, ago: _dt.timedelta, status: str = "succeeded", duration: float = 1.0,
         memory: int = 50_000, env: str = "development", n: int = 0) -> None:
    """A past run in the environment's history, recorded through the history plugin as a run would be."""
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env)
    started = _dt.datetime.now(_dt.timezone.utc) - ago
    outcome = RunOutcome(f"run-seed-{automation}-{n}-{int(ago.total_seconds())}", automation, env, status,
                         0 if status == "succeeded" else 1, started, started + _dt.timedelta(seconds=duration),
                         error_class=None if status == "succeeded" else "bug",
                         metrics={"host": "build-box-01", "cpu_seconds": 0.1, "peak_memory_kb": memory})
    history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


def health(run_cli, project, *args):
    result = run_cli("--json", "health", *args, cwd=project)
    return result.exit_code, json.loads(result.stdout)


def by_name(data):
    return {c["name"]: c for c in data["checks"]}


def test_healthy_environment_is_ok_with_a_summary_line_first(project, run_cli):
    assert run_cli("run", "hourly", cwd=project).exit_code == 0
    result = run_cli("health", cwd=project)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("OK - development: ")
    code, data = health(run_cli, project)
    assert code == 0 and data["status"] == "OK"
    checks = by_name(data)
    assert checks["hourly.failed"]["state"] == "OK"
    assert checks["audit"]["state"] == "OK" and "chain intact" in checks["audit"]["message"]
    assert checks["disk"]["state"] == "OK"


def test_the_audit_check_is_the_audit_plugins_and_goes_with_it(project, run_cli):
    assert run_cli("run", "hourly", cwd=project).exit_code == 0
    assert "audit" in by_name(health(run_cli, project)[1])
    result = run_cli("-p", "no:audit", "--json", "health", cwd=project)
    checks = by_name(json.loads(result.stdout))
    assert "audit" not in checks and checks["hourly.failed"]["state"] == "OK"


def test_a_missed_scheduled_run_is_critical(project, run_cli):
    seed(project, "hourly", ago=_dt.timedelta(hours=3))
    result = run_cli("health", cwd=project)
    assert result.exit_code == 2
    first = result.stdout.splitlines()[0]
    assert first.startswith("CRITICAL - development: 1 critical") and "hourly was due at" in first
    assert "has not run since" in result.stdout
    seed(project, "hourly", ago=_dt.timedelta(minutes=1))
    assert run_cli("health", cwd=project).exit_code == 0


def test_a_paused_automation_is_not_reported_missing(project, run_cli):
    seed(project, "hourly", ago=_dt.timedelta(hours=3))
    run_cli("pause", "hourly", "--reason", "upstream down", cwd=project)
    code, data = health(run_cli, project)
    assert code == 0
    assert "paused" in by_name(data)["hourly.expected_every"]["message"] and "upstream down" in by_name(data)["hourly.expected_every"]["message"]
    assert by_name(data)["hourly.paused"]["message"].startswith("hourly is paused until resumed")
    shown = run_cli("-v", "health", cwd=project)
    assert "OK hourly.paused: hourly is paused until resumed" in shown.stdout


def test_failure_error_rate_duration_and_memory_against_thresholds(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + """
[thresholds.loose]
max_duration = "1m"
max_memory = "100MB"
max_error_rate = 0.3
error_window = 4
expected_every = "1d"
""")
    for i, status in enumerate(["succeeded", "failed", "succeeded", "succeeded"]):
        seed(project, "loose", ago=_dt.timedelta(hours=5 - i), status=status, n=i)
    seed(project, "hourly", ago=_dt.timedelta(minutes=1))
    code, data = health(run_cli, project)
    assert code == 0, data
    assert by_name(data)["loose.max_error_rate"]["value"] == 0.25
    seed(project, "loose", ago=_dt.timedelta(minutes=5), duration=120, memory=300 * 1024, n=9)
    code, data = health(run_cli, project)
    checks = by_name(data)
    assert code == 1 and data["status"] == "WARNING"
    assert checks["loose.max_duration"]["state"] == "WARNING" and checks["loose.max_duration"]["limit"] == 60
    assert checks["loose.max_memory"]["state"] == "WARNING" and checks["loose.max_memory"]["value"] == 300 * 1024
    seed(project, "loose", ago=_dt.timedelta(minutes=2), status="failed", n=10)
    seed(project, "loose", ago=_dt.timedelta(minutes=1), status="failed", n=11)
    code, data = health(run_cli, project)
    checks = by_name(data)
    assert code == 2
    assert checks["loose.failed"]["state"] == "CRITICAL"
    assert checks["loose.max_error_rate"]["state"] == "CRITICAL" and checks["loose.max_error_rate"]["value"] == 0.5


def test_expected_every_catches_an_unscheduled_automation_that_stopped(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + '[thresholds.loose]\nexpected_every = "1h"\ngrace = "5m"\n')
    seed(project, "loose", ago=_dt.timedelta(hours=2))
    seed(project, "hourly", ago=_dt.timedelta(minutes=1))
    code, data = health(run_cli, project)
    assert code == 2 and by_name(data)["loose.expected_every"]["state"] == "CRITICAL"


def test_a_lock_held_too_long_is_critical(project, run_cli):
    seed(project, "hourly", ago=_dt.timedelta(minutes=1))
    lock = project / "var" / "development" / "locks" / "hourly.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    since = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=7)).isoformat(timespec="seconds")
    with open(lock, "w") as handle:
        handle.write(f"4242\n{since}\n")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_EX)
        code, data = health(run_cli, project)
    assert code == 2
    check = by_name(data)["lock.hourly"]
    assert check["state"] == "CRITICAL" and "pid 4242" in check["message"]
    code, data = health(run_cli, project)  # released: nothing to say
    assert "lock.hourly" not in by_name(data)


def test_a_broken_audit_chain_is_critical(project, run_cli):
    run_cli("run", "hourly", cwd=project)
    trail = project / "var" / "development" / "audit" / "audit_development.jsonl"
    lines = trail.read_text().splitlines()
    assert '"host":"build-box-01"' in lines[0]
    lines[0] = lines[0].replace('"host":"build-box-01"', '"host":"elsewhere"')
    trail.write_text("\n".join(lines) + "\n")
    code, data = health(run_cli, project)
    assert code == 2 and by_name(data)["audit"]["state"] == "CRITICAL"


def test_low_disk_is_critical_and_bad_settings_are_unknown(project, run_cli):
    seed(project, "hourly", ago=_dt.timedelta(minutes=1))
    (project / "envfence.toml").write_text(SETTINGS + '[health]\nmin_free_disk = "900000GB"\n')
    code, data = health(run_cli, project)
    assert code == 2 and by_name(data)["disk"]["state"] == "CRITICAL"
    (project / "envfence.toml").write_text(SETTINGS + '[health]\nmin_free_disk = "lots"\n')
    result = run_cli("health", cwd=project)
    assert result.exit_code == 3
    assert result.stdout.startswith("UNKNOWN - development:") and "'lots' is not a size or a percentage" in result.stdout


def test_all_environments_gives_one_line_each_and_the_worst_code(project, run_cli):
    assert run_cli("run", "hourly", cwd=project).exit_code == 0
    seed(project, "hourly", ago=_dt.timedelta(hours=3), env="production")
    result = run_cli("health", "--all-environments", cwd=project)
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert lines[0].partition(" | ")[0] == "CRITICAL - 2 environment(s): development OK, production CRITICAL"
    assert "'production hourly last_run_age'=" in lines[0].partition(" | ")[2]
    assert lines[1].startswith("OK - development: ")
    assert lines[2].startswith("CRITICAL - production: 1 critical") and "hourly was due at" in lines[2]
    code, data = health(run_cli, project, "--all-environments")
    assert code == 2 and data["status"] == "CRITICAL" and data["exit_code"] == 2
    assert {e["environment"]: e["status"] for e in data["environments"]} == {"development": "OK", "production": "CRITICAL"}
    seed(project, "hourly", ago=_dt.timedelta(minutes=1), env="production")
    assert run_cli("health", "--all-environments", cwd=project).exit_code == 0


def test_all_environments_reports_a_broken_environment_as_unknown_and_checks_the_rest(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + '\n[health]\nmin_free_disk = "lots"\n')
    code, data = health(run_cli, project, "--all-environments")
    assert code == 3 and data["status"] == "UNKNOWN"
    assert [e["environment"] for e in data["environments"]] == ["development", "production"]
    assert all("not a size or a percentage" in e["summary"] for e in data["environments"])
