"""Thresholds per environment: ``[thresholds.sync.production]`` over ``[thresholds.sync]`` over ``[thresholds."*"]``;
a failed production run is an incident by default; abandoned runs are failures."""

from __future__ import annotations

import json

JOBS = "import time\n\ndef ok(ctx):\n    ctx.say('fine')\n\ndef bad(ctx):\n    raise RuntimeError('broken')\n\ndef slow(ctx):\n    time.sleep(0.3)\n"
PROD = {"ENVFENCE_HOSTNAME": "web-prod-01"}

LAYERED = """
[automations.sync]
run = "jobs:slow"

[automations.bad]
run = "jobs:bad"

[thresholds."*"]
max_error_rate = 0.5
max_duration = "1h"

[thresholds."*".production]
max_error_rate = 0.1

[thresholds.sync]
max_duration = 60

[thresholds.sync.production]
max_duration = 0.1
"""


def test_environment_table_overlays_automation_table_overlays_star(make_project, run_cli):
    from envfence.pipeline import Session
    from envfence.thresholds import limits

    root = make_project({"jobs.py": JOBS}, settings=LAYERED)
    settings = Session.open(root).settings
    dev, prod = limits(settings, "sync", "development"), limits(settings, "sync", "production")
    assert (dev.max_duration, dev.max_error_rate) == (60, 0.5)
    assert (prod.max_duration, prod.max_error_rate) == (0.1, 0.1)
    assert prod.sources["max_duration"] == "thresholds.sync.production.max_duration"
    assert prod.sources["max_error_rate"] == "thresholds.*.production.max_error_rate"
    assert limits(settings, "bad", "production").max_duration == 3600  # "*" reaches every automation


def test_production_limit_crosses_where_development_limit_does_not(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=LAYERED)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    assert run_cli("--env", "production", "run", "sync", cwd=root, env=PROD).exit_code == 0
    dev = json.loads(run_cli("--json", "health", cwd=root).stdout)
    prod = json.loads(run_cli("--json", "--env", "production", "health", cwd=root, env=PROD).stdout)
    assert {c["name"]: c["state"] for c in dev["checks"]}["sync.max_duration"] == "OK"
    crossed = {c["name"]: c for c in prod["checks"]}["sync.max_duration"]
    assert crossed["state"] == "WARNING" and crossed["limit"] == 0.1


def test_check_shows_the_effective_limits_of_each_environment_with_their_source(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=LAYERED)
    dev = json.loads(run_cli("--json", "check", cwd=root).stdout)
    prod = json.loads(run_cli("--json", "--env", "production", "check", cwd=root, env=PROD).stdout)
    shown = {f["message"] for f in dev["findings"] if f["code"] == "THRESHOLDS_EFFECTIVE"}
    assert "sync in development: max_duration 60s (thresholds.sync.max_duration)" in "\n".join(shown)
    prod_shown = "\n".join(f["message"] for f in prod["findings"] if f["code"] == "THRESHOLDS_EFFECTIVE")
    assert "sync in production: max_duration 0.1s (thresholds.sync.production.max_duration)" in prod_shown
    assert "max_error_rate 0.1 (thresholds.*.production.max_error_rate)" in prod_shown
    assert "alert_on_failure True (default in production)" in prod_shown
    text = run_cli("-v", "--env", "production", "check", cwd=root, env=PROD).stdout
    assert "THRESHOLDS_EFFECTIVE" in text and "thresholds.sync.production.max_duration" in text


def test_unknown_environment_sub_table_and_bad_value_are_named_by_check(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=LAYERED + "\n[thresholds.sync.prodution]\nmax_duration = 1\n")
    result = run_cli("--json", "check", cwd=root)
    bad = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "THRESHOLD_INVALID"]
    assert result.exit_code == 1 and "thresholds.sync.prodution" in bad[0]["message"] and "production" in bad[0]["remediation"]
    root = make_project({"jobs.py": JOBS}, settings=LAYERED.replace("max_duration = 0.1", 'max_duration = "soon"'), name="p2")
    result = run_cli("--json", "check", cwd=root)
    bad = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "THRESHOLD_INVALID"]
    assert "thresholds.sync.production.max_duration" in bad[0]["message"] and "'soon'" in bad[0]["message"]


def test_a_failed_production_run_is_an_incident_by_default_and_an_automation_can_relax_it(make_project, run_cli):
    settings = '[automations.bad]\nrun = "jobs:bad"\n'
    root = make_project({"jobs.py": JOBS}, settings=settings)
    assert run_cli("run", "bad", cwd=root).exit_code == 1
    assert json.loads(run_cli("--json", "alerts", "show", cwd=root).stdout)["incidents"] == {}  # development: no incident
    result = run_cli("--env", "production", "run", "bad", cwd=root, env=PROD)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1  # the console says the failure once
    shown = json.loads(run_cli("--json", "--env", "production", "alerts", "show", cwd=root, env=PROD).stdout)
    assert list(shown["incidents"]) == ["bad:failed"]
    relaxed = make_project({"jobs.py": JOBS}, settings=settings + "\n[thresholds.bad.production]\nalert_on_failure = false\n",
                           name="relaxed")
    run_cli("--env", "production", "run", "bad", cwd=relaxed, env=PROD)
    assert json.loads(run_cli("--json", "--env", "production", "alerts", "show", cwd=relaxed, env=PROD).stdout)["incidents"] == {}


def test_a_failed_production_run_reaches_the_other_channels_once(make_project, run_cli):
    from test_ping_channel import Monitor

    monitor = Monitor()
    try:
        settings = ('[automations.bad]\nrun = "jobs:bad"\n\n[alerts.escalation]\nproduction = ["console", "ping"]\n\n'
                    f'[alerts.ping]\nurl = "{monitor.base}/hc/{{automation}}"\n')
        root = make_project({"jobs.py": JOBS}, settings=settings)
        run_cli("--env", "production", "run", "bad", cwd=root, env=PROD)
        run_cli("--env", "production", "run", "bad", cwd=root, env=PROD)
        paths = [p[0] for p in monitor.pings]
        # Each run pings start and its exit status; the incident adds one failure ping with its message, once.
        assert paths == ["/hc/bad/start", "/hc/bad/1", "/hc/bad/1", "/hc/bad/start", "/hc/bad/1"]
        assert b"bad's last run" in monitor.pings[2][2]
    finally:
        monitor.stop()


def test_abandoned_runs_count_as_failures_in_thresholds_and_metrics(make_project, run_cli):
    import datetime as _dt

    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\n\n[thresholds.sync]\nmax_error_rate = 0.4\n')
    session = Session.open(root)
    session.prepare()
    now = _dt.datetime.now(_dt.timezone.utc)
    for i, status in enumerate(("abandoned", "abandoned", "succeeded")):
        started = now - _dt.timedelta(minutes=10 - i)
        history.on_run_finish(session, RunRequest(Automation("sync")), RunOutcome(
            f"run-{i}", "sync", "development", status, -1 if status == "abandoned" else 0, started,
            started + _dt.timedelta(seconds=1), error_class="abandoned" if status == "abandoned" else None))
    checks = {c["name"]: c for c in json.loads(run_cli("--json", "health", cwd=root).stdout)["checks"]}
    assert checks["sync.max_error_rate"]["state"] == "CRITICAL" and checks["sync.max_error_rate"]["value"] == 0.667
    text = run_cli("metrics", cwd=root).stdout
    assert 'envfence_run_failures_total{automation="sync",environment="development"} 2.0' in text
