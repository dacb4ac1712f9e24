"""The history summed in SQL (``run_totals``) says what the runs read one by one add up to, and ``metrics`` reads no run.

A seeded history: three automations over forty days, every status (a run
still running on another host, one abandoned), business metrics with units,
step times, a damaged measures value, durations on both sides of the
histogram's bounds. The SQLite history's ``GROUP BY`` and
:func:`envfence.runs.totals.from_runs` over ``run_history`` must agree on
all of it, and ``envfence metrics`` must print the same text either way.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3

import pytest

from envfence.runs.totals import from_runs

JOBS = "def ok(ctx):\n    pass\n"
SETTINGS = "".join(f'[automations.{name}]\nrun = "jobs:ok"\n' for name in ("sync", "report", "backup"))
NOW = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)


def _measures(n: int) -> dict:
    if n % 3 == 0:
        return {}
    business = {"records_synced": {"value": float(n * 4), "unit": "records"}}
    if n % 5 == 0:
        business["rejected"] = {"value": float(n % 7)}  # no unit
    return {"business": business, "steps": {"fetch": n * 0.25, "write": 1.5}}


@pytest.fixture
def seeded(make_project):
    """A project whose development history holds 120 runs of three automations over forty days."""
    import envfence
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence_builtins.runs import history

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    session = envfence.open_session(root=root)
    session.prepare()
    statuses = ("succeeded", "succeeded", "failed", "succeeded")
    for n in range(120):
        name = ("sync", "report", "backup")[n % 3]
        started = NOW - _dt.timedelta(hours=8 * n + 1)
        status = statuses[n % 4]
        outcome = RunOutcome(f"run-{n:04d}", name, "development", status, 0 if status == "succeeded" else 1, started,
                             started + _dt.timedelta(seconds=(0.5, 4.75, 30.0, 901.25, 7200.0)[n % 5]),
                             error_class=None if status == "succeeded" else "network",
                             metrics={"host": "build-box-01", "cpu_seconds": 0.25, "peak_memory_kb": 1000, **_measures(n)})
        history.on_run_finish(session, RunRequest(Automation(name)), outcome)
    # Still running on another host (never reaped here), and one whose process died on this one.
    history.record_start(session, "run-elsewhere", "sync", NOW - _dt.timedelta(minutes=5), pid=1, host="other-host")
    history.record_start(session, "run-killed", "report", NOW - _dt.timedelta(days=2), pid=2**22 + 7)
    path = history.history_file(session)
    with sqlite3.connect(path) as db:  # a value damaged by hand reads as nothing, in SQL as in Python
        db.execute("UPDATE runs SET measures = '{not json' WHERE run_id = 'run-0001'")
    return root


def _both(root, since):
    import envfence

    session = envfence.open_session(root=root)
    in_sql = session.plugins.run_totals(session=session, since=since, buckets=BUCKETS)
    assert not in_sql.errors, in_sql.errors
    runs = session.plugins.run_history(session=session, automation=None, limit=10**6, since=since).first
    return in_sql.first, from_runs((r for r in runs if since is None or r.started_at >= since), BUCKETS), runs


@pytest.mark.parametrize("days", [None, 10])
def test_hook_run_totals_sums_in_sql_what_the_runs_read_one_by_one_add_up_to(seeded, days):
    since = None if days is None else NOW - _dt.timedelta(days=days)
    in_sql, one_by_one, runs = _both(seeded, since)
    assert in_sql == one_by_one
    # The numbers themselves, not only their agreement.
    assert sum(g.runs for g in in_sql.groups) == len(runs) == (122 if since is None else 32)  # 30 seeded, the running one, the killed one
    statuses = {}
    for g in in_sql.groups:
        statuses[g.status] = statuses.get(g.status, 0) + g.runs
    if since is None:
        assert statuses == {"succeeded": 90, "failed": 30, "running": 1, "abandoned": 1}
        [records] = [m for m in in_sql.metrics if m.automation == "report" and m.metric == "records_synced"]
        # report's runs are n = 1, 4, 7, ...; n = 1's measures were damaged, multiples of 3 reported nothing.
        reported = [n for n in range(4, 120, 3) if n % 3]
        assert records.unit == "records" and records.last == 16.0 and records.total == sum(n * 4.0 for n in reported)
        # sync's runs (n a multiple of 3) reported nothing: no step of its own.
        assert {(s.automation, s.step) for s in in_sql.steps} == {(a, step) for a in ("report", "backup") for step in ("fetch", "write")}
    timed = [g for g in in_sql.groups if g.status in ("succeeded", "failed")]
    assert all(g.within[-1] <= g.runs for g in timed) and all(g.within == (0,) * len(BUCKETS) for g in in_sql.groups
                                                                if g.status not in ("succeeded", "failed"))
    assert {g.day for g in in_sql.groups} == {r.started_at.astimezone(_dt.timezone.utc).date().isoformat() for r in runs}


def test_metrics_prints_the_same_whether_summed_in_sql_or_run_by_run(seeded, run_cli, envfence_plugin):
    pytest.importorskip("prometheus_client")
    from envfence import hookimpl

    in_sql = run_cli("metrics", cwd=seeded)
    assert in_sql.exit_code == 0, in_sql.output

    class OneByOne:
        """Sums the runs it reads one by one, as metrics did before the history summed itself."""

        @hookimpl(tryfirst=True)
        def run_totals(self, session, since, buckets):
            runs = session.plugins.run_history(session=session, automation=None, limit=10**6, since=since).first
            return from_runs(runs, buckets)

    envfence_plugin(OneByOne(), "one-by-one")
    one_by_one = run_cli("metrics", cwd=seeded)
    assert one_by_one.exit_code == 0, one_by_one.output
    assert in_sql.stdout == one_by_one.stdout
    assert 'envfence_job_metric{automation="report",environment="development",metric="records_synced",unit="records"} 16.0' in in_sql.stdout
    assert 'envfence_run_failures_total{automation="report",environment="development"} 11.0' in in_sql.stdout  # 10 failed, 1 abandoned


def test_metrics_reads_no_run_one_by_one(seeded, run_cli, envfence_plugin):
    pytest.importorskip("prometheus_client")
    from envfence import hookimpl

    asked = []

    class Spy:
        @hookimpl(tryfirst=True)
        def run_history(self, session, automation, limit, since):
            asked.append(limit)  # and gives way to the history

    envfence_plugin(Spy(), "spy")
    result = run_cli("metrics", cwd=seeded)
    assert result.exit_code == 0 and "envfence_runs_total" in result.stdout, result.output
    assert asked == []


@pytest.mark.parametrize("command", [["--json", "report", "--since", "60d"], ["--json", "advise"], ["--json", "health"]])
def test_report_advise_and_health_say_the_same_whether_counted_in_sql_or_run_by_run(seeded, run_cli, envfence_plugin, command):
    from envfence import hookimpl

    def shown(result) -> dict:
        import json

        data = json.loads(result.stdout)
        data.pop("since", None)  # "60d" is counted back from the moment each command ran
        data.pop("perfdata", None)  # ages and the free disk, which move while the test runs; the checks say the rest
        for check in data.get("checks", []):
            if check["name"].endswith("last_run_age") or check["name"] == "disk":
                check.pop("value", None)
                check.pop("message", None)
        return data

    in_sql = run_cli(*command, cwd=seeded)
    assert in_sql.stdout.strip(), in_sql.output

    class OneByOne:
        @hookimpl(tryfirst=True)
        def run_totals(self, session, since, buckets):
            runs = session.plugins.run_history(session=session, automation=None, limit=10**6, since=since).first
            return from_runs((r for r in runs if since is None or r.started_at >= since), buckets)

    envfence_plugin(OneByOne(), "one-by-one")
    one_by_one = run_cli(*command, cwd=seeded)
    assert (one_by_one.exit_code, shown(one_by_one)) == (in_sql.exit_code, shown(in_sql))


def test_counts_cover_the_whole_window_while_baselines_read_a_bounded_sample(seeded, run_cli, monkeypatch):
    import json

    from envfence_builtins.operations import analysis, report_data as report

    # A sample of 10 runs per automation (the floor and the share both small): the history still counts all of them.
    monkeypatch.setattr(analysis, "SAMPLE_FLOOR", 10)
    monkeypatch.setattr(analysis, "HISTORY_LIMIT", 30)
    monkeypatch.setattr(report, "HISTORY_LIMIT", 30)
    shown = json.loads(run_cli("--json", "report", "--since", "60d", cwd=seeded).stdout)
    sync = shown["environments"]["development"]["sync"]
    assert (sync["runs"], sync["failures"]) == (40, 10)  # every run of the window that ran to an end, not the sample's 10
    insight = shown["insights"]["development"]["automations"]["sync"]
    assert insight["error_rate"] == {"runs": 30, "failed": 7, "error_rate": 0.233}  # [advise] window: its 30 days
    assert insight["series"]["duration"]["count"] == 9  # the baseline: its newest 10 runs, one of them still running



def test_a_history_from_before_measures_were_kept_is_summed_all_the_same(seeded, run_cli):
    pytest.importorskip("prometheus_client")
    with sqlite3.connect(next(seeded.rglob("history.sqlite3"))) as db:
        db.execute("ALTER TABLE runs DROP COLUMN measures")  # as an older envfence left it
    shown = run_cli("metrics", cwd=seeded)
    assert shown.exit_code == 0, shown.output
    assert 'envfence_runs_total{automation="sync",environment="development",status="succeeded"} 30.0' in shown.stdout
    assert "envfence_job_metric{" not in shown.stdout  # nothing reported, nothing invented


def test_totals_of_one_automation_among_thousands_are_its_own_and_no_neighbours():
    """Asking the totals for each automation of a large history finds exactly its groups, named alike or not."""
    from envfence.models import RunOutcome

    names = ["a", "a-b", "ab", "b", "job-0001", *(f"job-{n:04d}" for n in range(2, 1500)), "zz", "Zz"]
    runs = [RunOutcome(f"r{n}", name, "development", status, int(status == "failed"), NOW - _dt.timedelta(hours=n % 50),
                       NOW - _dt.timedelta(hours=n % 50) + _dt.timedelta(seconds=3))
            for n, name in enumerate(names * 2) for status in (("succeeded", "failed")[n % 2],)]
    totals = from_runs(runs)
    for name in names:
        assert totals.of(name) == [g for g in totals.groups if g.automation == name]
        assert sum(totals.statuses(name).values()) == 2
    assert totals.of("a-") == [] and totals.statuses("missing") == {}
