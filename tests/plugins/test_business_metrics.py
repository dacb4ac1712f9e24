"""Jobs report what they did: ``ctx.metric`` and ``ctx.step`` for functions, ``ENVFENCE_METRICS_FILE`` for commands;
kept with the run and shown by status, metrics and the report; bounded by ``min_<metric>`` thresholds."""

from __future__ import annotations

import json

CANARY = "canary_metric_Xv93Qa"  # a valid metric name: only the redactor can refuse it

JOBS = f"""
import os
import time

def sync(ctx):
    with ctx.step("fetch"):
        time.sleep(0.2)
    with ctx.step("write"):
        time.sleep(0.05)
    ctx.metric("records_synced", int(os.environ.get("N", "42")), unit="records")
    ctx.metric("rejected", 0)

def empty(ctx):
    ctx.metric("records_synced", 0, unit="records")

def silent(ctx):
    pass

def bad_metric(ctx):
    ctx.metric("records synced", 1)

def secret_name(ctx):
    from envfence.models import reveal

    ctx.metric(reveal(ctx.credential("API_TOKEN")), 1)

def flaky(ctx):
    calls = []
    def call():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return 1
    ctx.retry(call, idempotent=True, attempts=5, base_delay=0.001)
"""

SCRIPT = """#!/bin/sh
echo "metric records_synced 17 records" >> "$ENVFENCE_METRICS_FILE"
echo "step fetch 1.5" >> "$ENVFENCE_METRICS_FILE"
echo "# a comment" >> "$ENVFENCE_METRICS_FILE"
echo "metric broken line here and more" >> "$ENVFENCE_METRICS_FILE"
echo "metric rate NaN" >> "$ENVFENCE_METRICS_FILE"
"""

SETTINGS = """
[automations.sync]
run = "jobs:sync"

[automations.empty]
run = "jobs:empty"

[automations.silent]
run = "jobs:silent"

[automations.bad_metric]
run = "jobs:bad_metric"

[automations.flaky]
run = "jobs:flaky"

[automations.shell]
run = ["sh", "report.sh"]

[thresholds."*"]
min_records_synced = 1
"""


def make(make_project, settings: str = SETTINGS, name: str = "proj"):
    return make_project({"jobs.py": JOBS, "report.sh": SCRIPT, ".env": f"DEV_API_TOKEN={CANARY}\n"}, settings=settings, name=name)


def last_run(run_cli, root, automation: str) -> dict:
    return json.loads(run_cli("--json", "status", "--automation", automation, cwd=root).stdout)["runs"][0]


def test_function_metrics_and_steps_are_kept_with_the_run_and_shown_by_status(make_project, run_cli):
    root = make(make_project)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    run = last_run(run_cli, root, "sync")
    assert run["business"] == {"records_synced": {"value": 42, "unit": "records"}, "rejected": {"value": 0, "unit": None}}
    assert 0.2 <= run["steps"]["fetch"] < run["duration"] and 0.05 <= run["steps"]["write"] < 0.2
    text = run_cli("-v", "status", cwd=root).stdout
    assert "[records_synced=42 records, rejected=0]" in text
    assert "steps: fetch 0.2" in text and "write 0.0" in text


def test_command_metrics_through_the_line_protocol_with_bad_lines_named(make_project, run_cli):
    root = make(make_project)
    result = run_cli("run", "shell", cwd=root)
    assert result.exit_code == 0
    run = last_run(run_cli, root, "shell")
    assert run["business"] == {"records_synced": {"value": 17, "unit": "records"}} and run["steps"] == {"fetch": 1.5}
    assert "ENVFENCE_METRICS_FILE" in result.output and ":4: expected 'metric NAME VALUE [UNIT]'" in result.output
    assert ":5: metric rate: 'nan' is not a finite number" in result.output
    assert not any((root / "var" / "development" / "metrics").iterdir())  # the file is gone once read


def test_a_metrics_file_replaced_by_a_link_is_not_followed(make_project, run_cli, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("metric records_synced 999\n")
    script = f'#!/bin/sh\nrm "$ENVFENCE_METRICS_FILE"\nln -s {outside} "$ENVFENCE_METRICS_FILE"\n'
    root = make_project({"jobs.py": JOBS, "report.sh": script}, settings=SETTINGS)
    result = run_cli("run", "shell", cwd=root)
    assert result.exit_code == 0 and "symlink" in result.output
    assert last_run(run_cli, root, "shell")["business"] == {}
    assert outside.read_text() == "metric records_synced 999\n"


def test_a_run_that_succeeds_with_zero_records_opens_an_incident(make_project, run_cli):
    root = make(make_project)
    result = run_cli("run", "empty", cwd=root)
    assert result.exit_code == 0  # the job succeeded: its result stands
    assert "ALERT [critical] development empty min_records_synced" in result.stderr and "records_synced = 0 records (min 1)" in result.stderr
    assert "ALERT" not in run_cli("run", "empty", cwd=root).stderr  # once per incident
    health = json.loads(run_cli("--json", "health", cwd=root).stdout)
    check = {c["name"]: c for c in health["checks"]}["empty.min_records_synced"]
    assert check["state"] == "CRITICAL" and check["value"] == 0 and check["limit"] == 1
    # A job that stopped reporting is no healthier than one that counted nothing.
    assert "reported no records_synced" in run_cli("run", "silent", cwd=root).stderr
    assert "ALERT" not in run_cli("run", "sync", cwd=root).stderr


def test_invalid_metric_fails_the_run_clearly_and_a_secret_name_is_refused_unseen(make_project, run_cli):
    root = make(make_project, SETTINGS + '\n[automations.secret_name]\nrun = "jobs:secret_name"\nsettings = ["API_TOKEN"]\n')
    result = run_cli("run", "bad_metric", cwd=root)
    assert result.exit_code == 1 and "'records synced' is not a name" in result.output
    result = run_cli("run", "secret_name", cwd=root)
    assert result.exit_code == 1 and "holds a secret value" in result.output
    assert CANARY not in result.output + run_cli("--json", "status", cwd=root).stdout
    assert CANARY not in (root / "var" / "development" / "logs" / "automation_development.log").read_text()


def test_retries_are_counted_with_the_run(make_project, run_cli):
    root = make(make_project)
    assert run_cli("run", "flaky", cwd=root).exit_code == 0
    from envfence.pipeline import Session

    session = Session.open(root)
    run = session.plugins.run_history(session=session, automation="flaky", limit=1).first[0]
    assert run.metrics["retries"] == 2


def test_prometheus_has_business_metrics_and_steps_labelled_by_environment_and_automation(make_project, run_cli):
    root = make(make_project)
    run_cli("run", "sync", cwd=root)
    run_cli("run", "sync", cwd=root, env={"N": "8"})
    text = run_cli("metrics", cwd=root).stdout
    assert 'envfence_job_metric{automation="sync",environment="development",metric="records_synced",unit="records"} 8.0' in text
    assert 'envfence_job_metric_sum_total{automation="sync",environment="development",metric="records_synced",unit="records"} 50.0' in text
    assert 'envfence_step_duration_seconds{automation="sync",environment="development",step="fetch"} 0.2' in text


def test_a_fifo_or_a_huge_metrics_file_neither_hangs_nor_floods_the_run(make_project, run_cli):
    fifo = '#!/bin/sh\nrm "$ENVFENCE_METRICS_FILE"\nmkfifo "$ENVFENCE_METRICS_FILE"\n'
    root = make_project({"jobs.py": JOBS, "report.sh": fifo}, settings=SETTINGS)
    result = run_cli("run", "shell", cwd=root)
    assert result.exit_code == 0 and "not a file" in result.output + result.stderr
    huge = ('#!/bin/sh\nyes "metric records_synced 5 records" | head -c 3000000 >> "$ENVFENCE_METRICS_FILE"\n')
    root = make_project({"jobs.py": JOBS, "report.sh": huge}, settings=SETTINGS, name="huge")
    result = run_cli("run", "shell", cwd=root)
    assert result.exit_code == 0 and "larger than 1048576 bytes; the rest was not read" in result.output
    assert last_run(run_cli, root, "shell")["business"] == {"records_synced": {"value": 5, "unit": "records"}}


def test_a_unit_holding_a_secret_is_refused(make_project, run_cli):
    jobs = JOBS + '''
def secret_unit(ctx):
    from envfence.models import reveal

    ctx.metric("records_synced", 1, unit=reveal(ctx.credential("API_TOKEN")))
'''
    root = make_project({"jobs.py": jobs, ".env": f"DEV_API_TOKEN={CANARY}\n"},
                        settings=SETTINGS + '\n[automations.secret_unit]\nrun = "jobs:secret_unit"\nsettings = ["API_TOKEN"]\n')
    result = run_cli("run", "secret_unit", cwd=root)
    assert result.exit_code == 1 and "unit holds a secret value" in result.output and CANARY not in result.output
