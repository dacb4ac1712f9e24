"""The report's numbers: each environment's totals, a bounded sample of its runs, findings and drift, and the anomaly band.

Gathered for ``envfence report`` (``report --json`` shows them whole); the
page is drawn by :mod:`envfence_builtins.operations.report_page`. The hooks
are in :mod:`envfence_builtins.operations.report`, the command in ``report_cli``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable


#: Runs read for the page's values (durations, resources), all automations together, shared out among them;
#: counts (runs, failures, per day) are the history's own sums over the whole window.
HISTORY_LIMIT = 20_000


def k_factor(settings) -> float:
    """How many scaled MADs the anomaly band spans (``[report] k``, default 3)."""
    from envfence_builtins.operations.analysis import k_factor as read

    return read(settings)


def band(durations: list[float], k: float) -> tuple[float, float, float]:
    """``(median, low, high)``: median ± k·MAD (scaled), the band outside which a run is an anomaly."""
    from envfence.stats import baseline

    found = baseline(durations, k)
    return found.median, found.low, found.high


def gather(sessions: dict[str, Any], since: _dt.datetime) -> dict[str, Any]:
    """The report's data from each environment's session: totals and a sample of the runs since ``since``, findings, drift.

    ``totals`` are summed by each history (``run_totals``: SQL in the SQLite
    history) over the whole window; ``runs`` are each automation's newest
    runs that ran to an end, :data:`HISTORY_LIMIT` shared out, in time order.
    """
    from envfence.cli.config import drift
    from envfence.runs.totals import totals_of

    from envfence_builtins.operations.analysis import sampled_runs

    runs: dict[str, list] = {}
    totals: dict[str, Any] = {}
    findings: dict[str, list] = {}
    for env, session in sessions.items():
        totals[env] = totals_of(session, since)
        history = sampled_runs(session, totals[env].automations(), since, HISTORY_LIMIT)
        runs[env] = sorted((r for r in history if r.status in ("succeeded", "failed")), key=lambda r: r.started_at)
        findings[env] = [f for f in session.report.findings]
    names = list(sessions)
    drifts = [drift(sessions[a], sessions[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    return {"runs": runs, "totals": totals, "findings": findings, "drift": drifts}


def counts(totals, automation: str) -> tuple[int, int]:
    """``(runs, failures)`` of ``automation`` that ran to an end, from the history's totals."""
    statuses = totals.statuses(automation)
    return statuses.get("succeeded", 0) + statuses.get("failed", 0), statuses.get("failed", 0)


def summary(data: dict[str, Any], k: float) -> dict[str, Any]:
    """Numbers per environment and automation, and the anomalies, farthest from the band first (the JSON report, and the page's tables)."""
    result: dict[str, Any] = {}
    for env, runs in data["runs"].items():
        per: dict[str, Any] = {}
        for name, mine in by_automation(runs).items():  # the band and its anomalies from the sample; counts from the totals
            median, low, high = band([r.duration for r in mine], k)
            outside = sorted((r for r in mine if not low <= r.duration <= high), key=lambda r: -max(low - r.duration, r.duration - high))
            ran, failures = counts(data["totals"][env], name)
            per[name] = {"runs": ran, "failures": failures, "error_rate": round(failures / ran, 3),
                         "median_duration": round(median, 3), "band": [round(low, 3), round(high, 3)],
                         "anomalies": [r.run_id for r in outside]}
        result[env] = per
    return result


def by_automation(runs: Iterable[Any]) -> dict[str, list[Any]]:
    """Runs grouped by automation, each group in the order given (one pass)."""
    groups: dict[str, list[Any]] = {}
    for run in runs:
        groups.setdefault(run.automation, []).append(run)
    return groups
