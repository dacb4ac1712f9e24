"""Baselines, anomalies, trends, level shifts and forecasts of one environment's runs (used by health, report and advise).

For each automation, over the last ``[advise] window`` (default 30 days) of
its history (its runs and error rate counted by the history itself,
``run_totals``; its values read from a bounded sample, its newest runs of
the window, :func:`sampled_runs`), and for each series (duration, peak memory, CPU time, each
business metric, each step's time, and the disk under the tree):

- a baseline: median and MAD (scaled), and the band median ± k·MAD
  (``[report] k``, default 3); the last run is an anomaly outside it;
- a trend that a few outliers cannot swing (Theil–Sen, :mod:`envfence.stats`),
  and what it changed over the window;
- a level shift: the median of the last :data:`RECENT` runs outside the band
  of the runs before them (a step change, as opposed to a slow drift);
- forecasts: when the duration's trend reaches ``max_duration``, and when the
  free disk under the tree reaches zero at its current rate.

This module is a helper of the operations plugins, not a plugin itself.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable

from envfence import slotted
from envfence import stats
from envfence.stash import StashKey

SECTION = "advise"
DEFAULT_WINDOW = _dt.timedelta(days=30)
#: How many of the latest runs a level shift is judged on.
RECENT = 5
#: Fewer points than this give no baseline or trend worth a conclusion.
MIN_POINTS = 5
#: Runs read for an analysis, all automations together, shared out among them (the window usually holds fewer).
HISTORY_LIMIT = 5000
#: Runs read per automation however many automations share :data:`HISTORY_LIMIT`.
SAMPLE_FLOOR = 200
#: The session's last analysis and the moment it was for.
_ANALYSED = StashKey[tuple]()
ENDED = ("succeeded", "failed", "abandoned")


#: ``[advise]``'s thresholds and their defaults.
ADVISE_DEFAULTS = {"growth": 0.4, "pile_up": 3, "disk_days": 30}


def _tables():
    """``[advise]`` (declared by the advise plugin) and ``[report]`` (by the report plugin), which this helper reads too."""
    from envfence.settings_kinds import duration, duration_problem, number
    from envfence.settings_tables import Table

    advise = Table(SECTION, "what envfence advise recommends, and how far back it looks")
    advise.add("growth", number(minimum=0, exclusive=True, example=0.4), 0.4, "a duration trend growing by this fraction is advised on")
    advise.add("pile_up", number(minimum=0, exclusive=True, example=3), 3, "runs overlapping this many times are advised on")
    advise.add("disk_days", number(minimum=0, exclusive=True, example=30), 30, "a disk forecast to fill within these days is advised on")
    advise.add("window", duration(example="30d"), "30d", "how far back baselines and trends look", check=duration_problem)
    report = Table("report", "envfence report")
    report.add("k", number(minimum=0, exclusive=True, example=3), 3, "how many scaled MADs the anomaly band spans")
    return advise, report


#: ``[advise]`` and ``[report]``, declared once for loading, ``check``, the schema and the docs.
ADVISE_TABLE, REPORT_TABLE = _tables()


def window(settings) -> _dt.timedelta:
    """``[advise] window``: how far back baselines and trends look (default 30 days)."""
    from envfence.thresholds import parse_duration

    values = ADVISE_TABLE.read(settings)
    return parse_duration(values["window"], f"{settings.source}: {SECTION}.window") if "window" in values else DEFAULT_WINDOW


def k_factor(settings) -> float:
    """How many scaled MADs the anomaly band spans (``[report] k``, default 3)."""
    return float(REPORT_TABLE.read(settings)["k"])


@slotted.frozen
class SeriesReport:
    """What one series says: its baseline, trend, last value, anomaly, level shift and forecast."""

    name: str  #: ``duration``, ``peak_memory_kb``, ``cpu_seconds``, ``metric:<name>``, ``step:<name>``, ``disk_free_bytes``
    count: int
    last: float
    baseline: stats.Baseline
    trend: stats.Trend | None
    anomaly: bool  #: the last value lies outside the band of the ones before it
    shift: tuple[float, float] | None = None  #: ``(before, after)`` medians when the level changed
    forecast: dict[str, Any] | None = None  #: ``{"limit", "at", "days"}`` when a limit will be reached

    def growth(self) -> float | None:
        """How much the trend line rose over the window, as a fraction of its start (None when it starts at 0)."""
        if self.trend is None:
            return None
        start, end = self.trend.change()
        return (end - start) / start if start > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """For JSON."""
        data: dict[str, Any] = {"count": self.count, "last": round(self.last, 3), "baseline": self.baseline.as_dict(),
                                "anomaly": self.anomaly}
        if self.trend is not None:
            start, end = self.trend.change()
            data["trend"] = {"slope_per_day": round(self.trend.slope_per_day, 6), "start": round(start, 3), "end": round(end, 3),
                             "growth": None if self.growth() is None else round(self.growth(), 3)}
        if self.shift is not None:
            data["shift"] = {"before": round(self.shift[0], 3), "after": round(self.shift[1], 3)}
        if self.forecast is not None:
            data["forecast"] = self.forecast
        return data


def describe(name: str, points: list[tuple[_dt.datetime, float]], k: float, now: _dt.datetime,
             limit: float | None = None, falling_to: float | None = None) -> SeriesReport | None:
    """Analyse one series (points in time order); None with fewer than :data:`MIN_POINTS` points."""
    if len(points) < MIN_POINTS:
        return None
    values = [v for _, v in points]
    before = values[:-1]
    band = stats.baseline(before, k, floor=None)
    last = values[-1]
    line = stats.trend(points)
    shift = None
    if len(values) >= RECENT * 2:
        earlier = stats.baseline(values[:-RECENT], k, floor=None)
        recent = stats.median(values[-RECENT:])
        if earlier is not None and recent is not None and earlier.is_anomaly(recent):
            shift = (earlier.median, recent)
    forecast = None
    if line is not None and (limit is not None or falling_to is not None):
        rising = falling_to is None
        bound = limit if rising else falling_to
        when = stats.crossing(line, bound, now, rising=rising)
        if when is not None:
            forecast = {"limit": bound, "at": when.isoformat(timespec="minutes"), "days": round((when - now).total_seconds() / 86400, 1)}
    whole = stats.baseline(values, k, floor=None)
    return SeriesReport(name, len(values), last, whole, line, band.is_anomaly(last), shift, forecast)


def series_of(runs: Iterable[Any]) -> dict[str, list[tuple[_dt.datetime, float]]]:
    """The series of one automation's runs (in time order): resources of every run that ran, business metrics of successes."""
    found: dict[str, list[tuple[_dt.datetime, float]]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        if run.status not in ("succeeded", "failed"):
            continue
        found.setdefault("duration", []).append((run.started_at, run.duration))
        for key in ("peak_memory_kb", "cpu_seconds"):
            if run.metrics.get(key) is not None:
                found.setdefault(key, []).append((run.started_at, float(run.metrics[key])))
        for step, seconds in (run.metrics.get("steps") or {}).items():
            found.setdefault(f"step:{step}", []).append((run.started_at, float(seconds)))
        if run.status == "succeeded":
            for metric, entry in (run.metrics.get("business") or {}).items():
                found.setdefault(f"metric:{metric}", []).append((run.started_at, float(entry["value"])))
    return found


def rate_of(totals, automation: str) -> dict[str, Any]:
    """Failures (abandoned ones included) over the ended runs of ``automation``, from ``totals`` (every run, not a sample)."""
    statuses = totals.statuses(automation)
    ended = sum(statuses.get(status, 0) for status in ENDED)
    failed = ended - statuses.get("succeeded", 0)
    return {"runs": ended, "failed": failed, "error_rate": round(failed / ended, 3) if ended else 0.0}


def recent_runs(session, automation: str | None, since: _dt.datetime, limit: int = HISTORY_LIMIT) -> list[Any]:
    """The environment's newest ``limit`` runs since ``since`` (newest first), through the ``run_history`` hook."""
    runs = session.plugins.run_history(session=session, automation=automation, limit=limit, since=since).first or []
    return [r for r in runs if r.started_at >= since]


def sampled_runs(session, automations: list[str], since: _dt.datetime, limit: int | None = None) -> list[Any]:
    """A bounded sample of the window: each automation's newest runs, ``limit`` shared out (newest first).

    Medians, MADs and Theil–Sen slopes need the values themselves, which
    SQLite does not rank; counts come from the history's totals instead. An
    automation that runs every minute no longer crowds a daily one out of the
    sample: each gets its share, at least :data:`SAMPLE_FLOOR` runs.
    """
    each = max(SAMPLE_FLOOR, (HISTORY_LIMIT if limit is None else limit) // max(1, len(automations)))
    runs = [run for name in automations for run in recent_runs(session, name, since, each)]
    return sorted(runs, key=lambda r: r.started_at, reverse=True)


def analyse(session, now: _dt.datetime | None = None, runs: list[Any] | None = None) -> dict[str, Any]:
    """Every automation of the session's environment: error rate, and each series' report; plus the disk.

    The analysis of the session's own history at one moment is made once and
    kept on the session (``report`` and the advice it shows ask for the same one).

    :returns: ``{"environment", "window_days", "automations": {name: {"error_rate": ..., "series": {name: SeriesReport}}},
        "disk": SeriesReport | None}``.
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if runs is not None:
        return _analysed(session, now, runs)
    kept = session.stash.get(_ANALYSED, None)
    if kept is None or kept[0] != now:
        kept = (now, _analysed(session, now, None))
        session.stash[_ANALYSED] = kept
    return kept[1]


def _analysed(session, now: _dt.datetime, runs: list[Any] | None) -> dict[str, Any]:
    from envfence.thresholds import limits

    from envfence.runs.totals import from_runs, totals_of

    span, k = window(session.settings), k_factor(session.settings)
    since = now - span
    if runs is None:  # counts summed by the history over the whole window; values from a bounded sample of it
        totals = totals_of(session, since)
        runs = sampled_runs(session, totals.automations(), since)
    else:
        runs = [r for r in runs if r.started_at >= since]
        totals = from_runs(runs)
    env = session.environment.name
    by_automation: dict[str, list] = {}
    for run in runs:
        by_automation.setdefault(run.automation, []).append(run)
    result: dict[str, Any] = {}
    for name in totals.automations():
        limit = limits(session.settings, name, env)
        reports = {}
        for key, points in series_of(by_automation.get(name, [])).items():
            bound = limit.max_duration if key == "duration" else limit.max_memory if key == "peak_memory_kb" else None
            report = describe(key, points, k, now, limit=bound)
            if report is not None:
                reports[key] = report
        result[name] = {"error_rate": rate_of(totals, name), "series": reports, "limits": limit}
    disk_points = sorted((r.started_at, float(r.metrics["disk_free_bytes"])) for r in runs if r.metrics.get("disk_free_bytes") is not None)
    disk = describe("disk_free_bytes", disk_points, k, now, falling_to=0.0)
    return {"environment": env, "window_days": round(span.total_seconds() / 86400, 1), "automations": result, "disk": disk,
            "runs": runs}
