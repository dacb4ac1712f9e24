"""Run history in SQLite per environment, shown by `envfence status` and `envfence list`."""

from __future__ import annotations

import json
import sqlite3

import pytest

CANARY = "canary-history-Pq4Rz8Tn2"

SETTINGS = """
[automations.ok]
run = "jobs:ok"
description = "Always works"
schedule = { development = "*/10 * * * *", production = "5 3 * * *" }

[automations.bad]
run = "jobs:bad"
"""

JOBS = '''
def ok(ctx):
    ctx.say("fine")

def bad(ctx):
    raise RuntimeError("broken " + ctx.credential("API_KEY").reveal())
'''


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS, ".env": f"DEV_API_KEY={CANARY}\nPROD_API_KEY={CANARY}-prod\n"}, settings=SETTINGS)


def rows(project, env="development"):
    db = sqlite3.connect(project / "var" / env / "history.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started_at")]
    finally:
        db.close()


def test_history_records_success_failure_and_forced_runs(project, run_cli):
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert run_cli("run", "bad", cwd=project).exit_code == 1
    forced = run_cli(
        "--env", "development", "run", "ok", "--force", "--reason", "testing on prod box",
        cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"},
    )
    assert forced.exit_code == 0, forced.output
    ok, bad, forced_row = rows(project)
    assert ok["status"] == "succeeded" and ok["exit_code"] == 0 and ok["forced"] == 0 and ok["error_class"] is None
    assert ok["environment"] == "development" and ok["host"] == "build-box-01"
    assert ok["duration"] >= 0 and ok["cpu_seconds"] is not None and ok["peak_memory_kb"] > 0
    assert ok["run_id"].startswith("run-") and ok["finished_at"] >= ok["started_at"]
    assert bad["status"] == "failed" and bad["exit_code"] == 1 and bad["error_class"] == "bug"
    assert bad["error_id"].startswith("E")
    assert forced_row["forced"] == 1 and forced_row["reason"] == "testing on prod box"
    assert forced_row["host"] == "web-prod-01"


def test_each_environment_keeps_its_own_history(project, run_cli):
    run_cli("run", "ok", cwd=project)
    run_cli("--env", "production", "run", "ok", cwd=project)
    run_cli("--env", "production", "run", "ok", cwd=project)
    assert len(rows(project, "development")) == 1
    assert len(rows(project, "production")) == 2
    data = json.loads(run_cli("--env", "production", "status", "--json", cwd=project).stdout)
    assert data["environment"] == "production" and len(data["runs"]) == 2


def test_status_shows_runs_newest_first_and_error_rates(project, run_cli):
    for name in ("ok", "bad", "ok", "bad", "bad"):
        run_cli("run", name, cwd=project)
    result = run_cli("status", cwd=project)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "bad" in lines[1] and "failed" in lines[1]  # newest first, after the heading
    assert "bad                  3/3 failed (100%)" in result.stdout
    assert "ok                   0/2 failed (0%)" in result.stdout
    data = json.loads(run_cli("--json", "status", "--automation", "bad", "--limit", "2", cwd=project).stdout)
    assert [r["automation"] for r in data["runs"]] == ["bad", "bad"]
    assert data["error_rates"] == {"bad": {"runs": 2, "failed": 2, "error_rate": 1.0}}
    assert CANARY not in result.output


def test_status_without_runs_says_so_and_creates_nothing(project, run_cli):
    result = run_cli("status", cwd=project)
    assert result.exit_code == 0
    assert "no runs recorded in development" in result.stdout
    assert not (project / "var").exists()


def test_status_without_the_history_plugin_explains(project, run_cli):
    result = run_cli("-p", "no:history", "status", cwd=project)
    assert result.exit_code == 1
    assert "history" in result.output


def test_list_shows_description_environments_last_run_and_next_time(project, run_cli):
    run_cli("run", "ok", cwd=project)
    data = json.loads(run_cli("list", "--json", cwd=project).stdout)
    ok = next(a for a in data["automations"] if a["name"] == "ok")
    assert ok["description"] == "Always works"
    assert ok["environments"] == ["*"] and ok["allowed_here"] is True
    assert ok["schedule"] == "*/10 * * * *"
    assert ok["next_run"].endswith(("0:00+00:00",))  # a multiple of ten minutes
    assert ok["last_run"]["status"] == "succeeded"
    bad = next(a for a in data["automations"] if a["name"] == "bad")
    assert bad["last_run"] is None and bad["schedule"] is None
    prod = json.loads(run_cli("--env", "production", "list", "--json", cwd=project).stdout)
    ok_prod = next(a for a in prod["automations"] if a["name"] == "ok")
    assert ok_prod["schedule"] == "5 3 * * *" and ok_prod["last_run"] is None
    text = run_cli("-v", "list", cwd=project).stdout
    assert "last run:" in text and "schedule:     */10 * * * *" in text


def test_dry_run_leaves_no_history(project, run_cli):
    run_cli("run", "ok", "--dry-run", cwd=project)
    assert "no runs recorded" in run_cli("status", cwd=project).stdout


def test_status_in_production_is_terse(project, run_cli):
    run_cli("--env", "production", "run", "ok", cwd=project)
    lines = run_cli("--env", "production", "status", cwd=project).stdout.splitlines()
    assert len(lines) == 2 and not any(line.startswith("#") or not line.strip() for line in lines)
    assert "succeeded" in lines[0] and "0/1 failed" in lines[1]


def test_list_in_production_is_one_line_per_automation(project, run_cli):
    run_cli("--env", "production", "run", "ok", cwd=project)
    lines = run_cli("--env", "production", "list", cwd=project).stdout.splitlines()
    assert len(lines) == 2
    ok = next(line for line in lines if line.startswith("ok "))
    assert "environments=* allowed=true last=succeeded@" in ok and ok.endswith(":05Z")  # 5 3 * * *
    assert "last=never next=unscheduled" in next(line for line in lines if line.startswith("bad "))
