"""`envfence report --html`: a self-contained page whose charts and tables carry the seeded history."""

from __future__ import annotations

import datetime as _dt
import json
import re

import pytest

SETTINGS = '[automations.sync]\nrun = "jobs:ok"\n\n[automations.tidy]\nrun = "jobs:ok"\n'


def seed(root, env, automation, ago_hours, status="succeeded", duration=10.0, n=0):
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env)
    started = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=ago_hours)
    outcome = RunOutcome(f"run-{env[:4]}-{automation}-{n}", automation, env, status, 0 if status == "succeeded" else 1,
                         started, started + _dt.timedelta(seconds=duration),
                         metrics={"host": "h", "cpu_seconds": duration / 2, "peak_memory_kb": 40_000 + n})
    history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


@pytest.fixture
def project(make_project):
    root = make_project({"jobs.py": "def ok(ctx):\n    pass\n", ".env.development": "ONLY_DEV=1\n"}, settings=SETTINGS)
    for i in range(12):  # three days of sync in development, one run far slower than the rest
        seed(root, "development", "sync", ago_hours=70 - 6 * i, duration=600.0 if i == 7 else 10.0 + (i % 3), n=i)
    for i in range(6):
        seed(root, "production", "sync", ago_hours=50 - 8 * i, status="failed" if i in (1, 4) else "succeeded", duration=20.0 + i, n=i)
    seed(root, "development", "tidy", ago_hours=2)
    seed(root, "development", "sync", ago_hours=24 * 40, n=99)  # older than --since: left out
    return root


@pytest.mark.heavy
def test_report_html_has_every_chart_with_its_data(project, run_cli, tmp_path):
    page = tmp_path / "report.html"
    result = run_cli("report", "--since", "30d", "--html", str(page), cwd=project)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    for section in ("runs-per-day", "duration-sync", "duration-tidy", "error-rates", "resources", "findings", "drift"):
        assert f'<section id="{section}">' in text, section
    charts = dict(re.findall(r'<section id="([\w-]+)"><h2>[^<]*</h2><figure>(<svg.*?</svg>)</figure>', text, re.S))
    assert set(charts) == {"runs-per-day", "duration-sync", "duration-tidy", "error-rates", "resources", "findings"}
    assert "development failures" in charts["runs-per-day"] and "production runs" in charts["runs-per-day"]
    assert "development anomaly" in charts["duration-sync"] and "median ± 3·MAD" in charts["duration-sync"]
    assert "production anomaly" not in charts["duration-sync"]
    assert "% of runs failed" in charts["error-rates"] and "peak memory (MB)" in charts["resources"]
    # The summary table: 12 runs in development (the 40-day-old one left out), 2 of 6 failed in production.
    cells = re.sub(r"<td [^>]*>", "<td>", text)  # each cell names its column (data-label), for narrow screens
    assert re.search(r"<td>development</td><td>sync</td><td>12</td><td>0</td><td>0%</td>", cells)
    assert re.search(r"<td>production</td><td>sync</td><td>6</td><td>2</td><td>33%</td>", cells)
    assert "run-deve-sync-7" in text  # the anomaly is named
    assert "ONLY_DEV" in text.split('<section id="drift">')[1]
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<script" not in text


def test_report_json_names_anomalies_and_error_rates(project, run_cli):
    data = json.loads(run_cli("report", "--json", cwd=project).stdout)
    sync = data["environments"]["development"]["sync"]
    assert sync["anomalies"] == ["run-deve-sync-7"] and sync["runs"] == 12
    assert data["environments"]["production"]["sync"]["error_rate"] == 0.333
    assert data["html"] is None


def test_report_with_no_runs_says_so(make_project, run_cli):
    root = make_project({}, settings=SETTINGS)
    result = run_cli("report", "--since", "7d", cwd=root)
    assert result.exit_code == 0 and "no runs since" in result.stdout
    bad = run_cli("report", "--since", "soon", cwd=root)
    assert bad.exit_code == 2 and "is neither an age" in bad.output
