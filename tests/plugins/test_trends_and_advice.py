"""Baselines, trends, level shifts and forecasts of seeded histories, and the health warnings and advice that follow."""

from __future__ import annotations

import datetime as _dt
import json

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
NOW = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def seed(root, automation: str, rows, env: str = "development") -> None:
    """Past runs: ``rows`` of ``(days_ago, duration, extra_metrics, status)``, recorded as the history plugin records runs."""
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env)
    for n, (days_ago, duration, extra, status) in enumerate(rows):
        started = NOW - _dt.timedelta(days=days_ago)
        outcome = RunOutcome(f"run-{automation}-{n}", automation, env, status, 0 if status == "succeeded" else 1, started,
                             started + _dt.timedelta(seconds=duration), error_class=None if status == "succeeded" else "network",
                             metrics={"host": "build-box-01", "cpu_seconds": 0.1, "peak_memory_kb": 1000, **extra})
        history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


def project(make_project, extra: str = "", name: str = "proj"):
    import envfence

    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\n' + extra, name=name)
    envfence.open_session(root=root).prepare()
    return root


def growing(days: int = 20, start: float = 10.0, per_day: float = 1.0, outliers=(3, 9, 15)):
    """One run a day whose duration grows ``per_day`` seconds a day, with a few wild outliers that must not swing the trend."""
    return [(days - d, 500.0 if d in outliers else start + per_day * d, {}, "succeeded") for d in range(days + 1)]


def test_theil_sen_trend_and_median_baseline_resist_outliers():
    from envfence import stats

    points = [(NOW - _dt.timedelta(days=20 - d), v) for d, (_, v, _, _) in enumerate(growing())]
    line = stats.trend(points)
    assert line.slope_per_day == pytest.approx(1.0, abs=0.05)  # three 500s outliers in 21 points move nothing
    assert line.at(NOW) == pytest.approx(30.0, abs=0.5)
    band = stats.baseline([10, 11, 9, 10, 12, 10, 1000], k=3)
    assert band.median == 10 and band.is_anomaly(1000) and not band.is_anomaly(12)
    assert stats.crossing(line, 40.0, NOW).date() == (NOW + _dt.timedelta(days=10)).date()
    assert stats.crossing(line, 40.0, NOW, rising=False) is NOW  # falling to 40 from 30: already below
    flat = stats.trend([(NOW - _dt.timedelta(days=d), 5.0) for d in range(10)])
    assert flat.slope_per_day == 0 and stats.crossing(flat, 40.0, NOW) is None


def test_duration_forecast_warns_in_health_within_forecast_days(make_project, run_cli):
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n\n[health]\nforecast_days = 14\n')
    seed(root, "sync", growing())
    result = run_cli("--json", "health", cwd=root)
    check = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["sync.forecast_duration"]
    assert check["state"] == "WARNING" and check["value"] == pytest.approx(10, abs=1)
    assert "reaches its max_duration 40s in" in check["message"]
    far = project(make_project, '[thresholds.sync]\nmax_duration = 40\n', name="far")  # default forecast_days = 7
    seed(far, "sync", growing())
    check = {c["name"]: c for c in json.loads(run_cli("--json", "health", cwd=far).stdout)["checks"]}["sync.forecast_duration"]
    assert check["state"] == "OK"


def test_disk_filling_at_its_rate_warns_in_health_and_is_advice(make_project, run_cli):
    root = project(make_project)
    gib = 2**30
    # 20 GiB free 20 days ago, losing 0.5 GiB a day: 10 GiB now, full in 20 days.
    seed(root, "sync", [(20 - d, 1.0, {"disk_free_bytes": int((20 - 0.5 * d) * gib)}, "succeeded") for d in range(21)])
    checks = {c["name"]: c for c in json.loads(run_cli("--json", "health", cwd=root).stdout)["checks"]}
    assert checks["disk.forecast"]["state"] == "OK" and checks["disk.forecast"]["value"] == pytest.approx(20, abs=0.5)
    advice = json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]
    disk = [a for a in advice if a["code"] == "DISK_FILLING"][0]
    assert disk["numbers"]["days"] == pytest.approx(20, abs=0.5) and disk["numbers"]["mib_per_day"] == pytest.approx(512, abs=5)
    assert "backup --keep" in disk["action"]
    soon = project(make_project, "\n[health]\nforecast_days = 30\n", name="soon")
    seed(soon, "sync", [(20 - d, 1.0, {"disk_free_bytes": int((20 - 0.5 * d) * gib)}, "succeeded") for d in range(21)])
    result = run_cli("health", cwd=soon)
    assert result.exit_code == 1 and "fills in 20" in result.stdout


def test_advise_names_a_duration_that_grew_with_its_numbers_and_the_setting(make_project, run_cli):
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n')
    seed(root, "sync", growing())
    result = run_cli("--json", "advise", cwd=root)
    assert result.exit_code == 0
    advice = {a["code"]: a for a in json.loads(result.stdout)["advice"]}
    grew = advice["DURATION_GROWING"]
    assert grew["numbers"]["growth"] == pytest.approx(2.0, abs=0.1)  # 10s -> 30s by the trend
    assert "grew 200% in 30 days" in grew["message"] and "reaches max_duration 40s on" in grew["message"]
    assert "[thresholds.sync.development] max_duration" in grew["action"]
    text = run_cli("advise", cwd=root).stdout
    assert "DURATION_GROWING development sync" in text and "do: " in text


def test_a_steady_history_gives_no_duration_advice(make_project, run_cli):
    root = project(make_project)
    seed(root, "sync", growing(per_day=0.0, outliers=(4,)))
    codes = {a["code"] for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    assert not codes & {"DURATION_GROWING", "DURATION_STEP_CHANGE"}


def test_step_change_in_duration_and_in_a_business_metric_are_advice(make_project, run_cli):
    root = project(make_project)
    rows = [(20 - d, 10.0 + (d % 3) * 0.1 if d < 15 else 25.0 + (d % 2) * 0.1,
             {"business": {"records_synced": {"value": 100 + d % 4 if d < 15 else 2, "unit": "records"}}}, "succeeded")
            for d in range(21)]
    seed(root, "sync", rows)
    advice = {a["code"]: a for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    jump = advice["DURATION_STEP_CHANGE"]
    assert jump["numbers"]["before"] == pytest.approx(10.1, abs=0.1) and jump["numbers"]["after"] == pytest.approx(25.0, abs=0.1)
    fell = advice["METRIC_SHIFT"]
    assert fell["numbers"] == {"metric": "records_synced", "before": pytest.approx(101.5, abs=1), "after": 2.0}
    assert "min_records_synced" in fell["action"] and "fell from" in fell["message"]


def test_flapping_and_never_approached_limits_are_advice(make_project, run_cli):
    root = project(make_project, '[thresholds.sync]\nmax_duration = 10\nmax_memory = "1GB"\n')
    seed(root, "sync", [(20 - d, 9.5 if d % 2 else 10.5, {}, "succeeded") for d in range(21)])
    advice = {a["code"]: a for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    flaps = advice["THRESHOLD_FLAPS"]
    assert flaps["numbers"]["flips"] == 20 and flaps["numbers"]["crossed"] == 11 and flaps["numbers"]["suggested"] > 10.5
    never = advice["THRESHOLD_NEVER_APPROACHED"]
    assert "max_memory" in never["message"] and never["numbers"]["highest"] == 1000.0
    assert never["action"].startswith("tighten [thresholds.sync.development] max_memory = ")


def test_retries_that_always_end_in_failure_are_advice(make_project, run_cli):
    root = project(make_project)
    seed(root, "sync", [(5 - d, 2.0, {"retries": 3}, "failed") for d in range(5)] + [(0.5, 1.0, {}, "succeeded")])
    advice = {a["code"]: a for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    assert advice["RETRIES_NEVER_HELP"]["numbers"] == {"runs": 5, "retries": 15, "error_classes": ["network"]}


def test_schedules_piling_up_and_production_without_alert_channels_are_advice(make_project, run_cli):
    settings = "".join(f'[automations.job{i}]\nrun = "jobs:ok"\nschedule = "0 2 * * *"\n\n' for i in range(4))
    root = project(make_project, "\n" + settings)
    advice = {a["code"]: a for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    assert advice["SCHEDULE_PILE_UP"]["numbers"] == {"at": "02:00", "automations": ["job0", "job1", "job2", "job3"]}
    assert advice["NO_ALERT_CHANNELS"]["environment"] == "production"
    told = project(make_project, '\n[alerts.escalation]\nproduction = ["email"]\n', name="told")
    codes = {a["code"] for a in json.loads(run_cli("--json", "advise", cwd=told).stdout)["advice"]}
    assert "NO_ALERT_CHANNELS" not in codes and "SCHEDULE_PILE_UP" not in codes


def test_bad_advise_settings_are_named_by_check(make_project, run_cli):
    root = project(make_project, '\n[advise]\ngrowth = "lots"\n')
    findings = json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]
    bad = [f for f in findings if f["code"] == "ADVISE_INVALID"][0]
    assert "advise.growth" in bad["message"] and "'lots'" in bad["message"]


def test_report_shows_what_jobs_did_where_time_goes_trends_and_advice(make_project, run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n')
    rows = [(20 - d, 10.0 + d, {"business": {"records_synced": {"value": 100, "unit": "records"}},
                                "steps": {"fetch": 6.0 + d, "write": 4.0}}, "succeeded") for d in range(21)]
    seed(root, "sync", rows)
    data = json.loads(run_cli("--json", "report", "--since", "30d", cwd=root).stdout)
    series = data["insights"]["development"]["automations"]["sync"]["series"]
    assert series["duration"]["trend"]["slope_per_day"] == pytest.approx(1.0, abs=0.01)
    assert series["duration"]["forecast"]["days"] == pytest.approx(10, abs=0.5)
    assert series["metric:records_synced"]["baseline"]["median"] == 100
    assert series["step:fetch"]["baseline"]["median"] == 16.0
    assert "DURATION_GROWING" in {a["code"] for a in data["advice"]}
    page = tmp_path / "report.html"
    assert run_cli("report", "--since", "30d", "--html", str(page), cwd=root).exit_code == 0
    text = page.read_text()
    for section in ("business-metrics", "steps", "trends", "compare", "advice"):
        assert f'id="{section}"' in text
    assert "<td>records_synced</td>" in text and "<td>fetch</td><td>16.00</td><td>80%</td>" in text
    assert "DURATION_GROWING" in text and text.rstrip().endswith("</html>")


def test_advice_comes_from_each_plugin_that_knows_and_goes_with_it(make_project, run_cli):
    """NO_ALERT_CHANNELS is the alerts plugin's advice: without it there is none; without advise, the report has no advice."""
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n')
    seed(root, "sync", growing())
    codes = {a["code"] for a in json.loads(run_cli("--json", "advise", cwd=root).stdout)["advice"]}
    assert {"DURATION_GROWING", "NO_ALERT_CHANNELS"} <= codes
    without_alerts = run_cli("-p", "no:alerts", "--json", "advise", cwd=root)
    codes = {a["code"] for a in json.loads(without_alerts.stdout)["advice"]}
    assert "DURATION_GROWING" in codes and "NO_ALERT_CHANNELS" not in codes
    report = run_cli("-p", "no:advise", "--json", "report", "--since", "30d", cwd=root)
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["advice"] == []
    gone = run_cli("-p", "no:advise", "advise", cwd=root)
    assert gone.exit_code == 2 and "No such command 'advise'" in gone.stderr
