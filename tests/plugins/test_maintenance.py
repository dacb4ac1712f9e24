"""Pauses and maintenance windows: runs refused with exit 3 and audited unless forced; `list` shows what is paused."""

from __future__ import annotations

import datetime as _dt
import json

import pytest

SETTINGS = """
[automations.sync]
run = "jobs:ok"
schedule = "0 2 * * *"

[automations.other]
run = "jobs:ok"
"""

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def audit(run_cli, project, event):
    shown = run_cli("audit", "show", "--json", "--event", event, cwd=project)
    return json.loads(shown.stdout)


def test_paused_automation_is_refused_then_forced_on_the_record_then_resumed(project, run_cli):
    paused = run_cli("pause", "sync", "--reason", "vendor outage", cwd=project)
    assert paused.exit_code == 0, paused.output
    assert "paused sync in development until resumed" in paused.stdout
    refused = run_cli("run", "sync", cwd=project)
    assert refused.exit_code == 3
    assert "sync is paused in development until resumed" in refused.output and "vendor outage" in refused.output
    [blocked] = audit(run_cli, project, "run.blocked")
    assert blocked["data"]["codes"] == ["AUTOMATION_PAUSED"]
    assert run_cli("run", "other", cwd=project).exit_code == 0  # only sync is paused
    forced = run_cli("run", "sync", "--force", "--reason", "outage over early", cwd=project)
    assert forced.exit_code == 0, forced.output
    [override] = audit(run_cli, project, "run.forced")
    assert override["data"]["overridden"] == ["AUTOMATION_PAUSED"]
    resumed = run_cli("resume", "sync", cwd=project)
    assert resumed.exit_code == 0 and "resumed sync" in resumed.stdout
    assert run_cli("run", "sync", cwd=project).exit_code == 0
    events = [r["event"] for r in audit(run_cli, project, "automation.*")]
    assert events == ["automation.paused", "automation.resumed"]


def test_hook_automation_state_list_shows_what_is_paused_and_until_when(project, run_cli):
    result = run_cli("pause", "--all", "--until", "2h", "--reason", "db migration", "--json", cwd=project)
    assert result.exit_code == 0, result.output
    until = _dt.datetime.fromisoformat(json.loads(result.stdout)["until"])
    assert _dt.timedelta(minutes=119) < until - _dt.datetime.now(_dt.timezone.utc) <= _dt.timedelta(hours=2)
    listed = json.loads(run_cli("list", "--json", cwd=project).stdout)
    for item in listed["automations"]:
        assert item["state"]["paused"]["reason"] == "db migration"
        assert item["state"]["paused"]["until"] == until.isoformat()
    human = run_cli("-v", "list", cwd=project)
    assert "paused:" in human.stdout and "db migration" in human.stdout
    terse = run_cli("-q", "list", cwd=project)
    assert all("paused=" in line for line in terse.stdout.splitlines())
    assert run_cli("run", "other", cwd=project).exit_code == 3
    run_cli("resume", "--all", cwd=project)
    assert json.loads(run_cli("list", "--json", cwd=project).stdout)["automations"][0]["state"] == {}


def test_a_pause_past_its_time_no_longer_holds(project, run_cli):
    soon = (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=1)).isoformat()
    assert run_cli("pause", "sync", "--until", soon, "--reason", "brief", cwd=project).exit_code == 0
    import time

    time.sleep(1.1)
    assert run_cli("run", "sync", cwd=project).exit_code == 0


def test_pause_needs_a_known_automation_and_a_future_time(project, run_cli):
    unknown = run_cli("pause", "synk", "--reason", "x", cwd=project)
    assert unknown.exit_code == 2 and "no automation named 'synk'" in unknown.output and "did you mean 'sync'" in unknown.output
    past = run_cli("pause", "sync", "--until", "2020-01-01", "--reason", "x", cwd=project)
    assert past.exit_code == 2 and "in the past" in past.output
    neither = run_cli("pause", "--reason", "x", cwd=project)
    assert neither.exit_code == 2 and "--all" in neither.output
    assert not (project / "var" / "development" / "state" / "pauses.json").exists()


def _window_around_now() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    start, end = now - _dt.timedelta(minutes=30), now + _dt.timedelta(minutes=30)
    return f"{start:%a} {start:%H:%M}-{end:%H:%M}".lower()


def test_run_inside_the_maintenance_window_is_refused_and_audited(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + f'\n[maintenance]\ndevelopment = ["{_window_around_now()}"]\n')
    run_cli("init", cwd=project)
    refused = run_cli("run", "sync", cwd=project)
    assert refused.exit_code == 3
    assert "development is in its maintenance window" in refused.output
    [blocked] = audit(run_cli, project, "run.blocked")
    assert blocked["data"]["codes"] == ["MAINTENANCE_WINDOW"]
    assert run_cli("--env", "production", "run", "sync", "--force", "--reason", "x", cwd=project).exit_code == 0  # other env: no window
    forced = run_cli("run", "sync", "--force", "--reason", "hotfix", cwd=project)
    assert forced.exit_code == 0


def test_unparsable_window_is_a_clear_error_that_blocks(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + '\n[maintenance]\ndevelopment = ["sunday at two"]\n')
    check = run_cli("--json", "check", cwd=project)
    finding = [f for f in json.loads(check.stdout)["findings"] if f["code"] == "MAINTENANCE_WINDOW_INVALID"][0]
    assert "'sunday at two' is not a maintenance window" in finding["message"]
    assert "sun 02:00-04:00" in finding["remediation"]
    assert run_cli("run", "sync", cwd=project).exit_code == 3


def test_window_past_midnight_holds_on_the_next_day(project, run_cli):
    from envfence_builtins.operations.maintenance_windows import parse_window

    window = parse_window("sun 22:00-02:00", "test")
    monday_one = _dt.datetime(2026, 11, 30, 1, 0)  # a Monday
    assert window.active(monday_one) == _dt.datetime(2026, 11, 30, 2, 0)
    assert window.active(_dt.datetime(2026, 11, 30, 2, 0)) is None
    assert parse_window("fri-mon 00:00-01:00", "test").days == {4, 5, 6, 0}


def test_pause_refuses_to_write_through_a_symlink(project, run_cli, tmp_path):
    run_cli("init", cwd=project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "var" / "development" / "state").symlink_to(elsewhere, target_is_directory=True)
    result = run_cli("pause", "sync", "--reason", "x", cwd=project)
    assert result.exit_code == 3 and "refusing to write through" in result.stderr and "it is a symlink" in result.stderr
    assert list(elsewhere.iterdir()) == []
