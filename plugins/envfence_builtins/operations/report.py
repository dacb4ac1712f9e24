"""``envfence report [--since 30d] [--html FILE]``: runs, failures, durations and drift across environments, with charts.

The HTML page (:mod:`envfence_builtins.operations.report_page`) is one
self-contained file (charts are SVG drawn by matplotlib, inline; no script,
no network) of a bounded size whatever the history, with:

- runs and failures per day, per environment;
- each automation's duration over time with an anomaly band (median ± k·MAD,
  ``[report] k``, default 3), runs outside it marked;
- error rates per automation, environments side by side;
- CPU time and peak memory per run;
- ``check``'s findings per environment, and configuration drift between them.

matplotlib comes with the ``report`` extra (``pip install 'envfence[report]'``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from envfence import hookimpl
from envfence.errors import ConfigurationError

SECTION = "report"
HISTORY_LIMIT = 100_000


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
    """The report's data from each environment's session: runs since ``since``, findings, drift."""
    from envfence.cli.config import drift

    runs: dict[str, list] = {}
    findings: dict[str, list] = {}
    for env, session in sessions.items():
        history = session.plugins.run_history(session=session, automation=None, limit=HISTORY_LIMIT, since=since).first or []
        runs[env] = sorted((r for r in history if r.started_at >= since and r.status in ("succeeded", "failed")),
                           key=lambda r: r.started_at)
        findings[env] = [f for f in session.report.findings]
    names = list(sessions)
    drifts = [drift(sessions[a], sessions[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    return {"runs": runs, "findings": findings, "drift": drifts}


def summary(data: dict[str, Any], k: float) -> dict[str, Any]:
    """Numbers per environment and automation, and the anomalies, farthest from the band first (the JSON report, and the page's tables)."""
    from envfence_builtins.operations.report_page import by_automation

    result: dict[str, Any] = {}
    for env, runs in data["runs"].items():
        per: dict[str, Any] = {}
        for name, mine in by_automation(runs).items():
            median, low, high = band([r.duration for r in mine], k)
            outside = sorted((r for r in mine if not low <= r.duration <= high), key=lambda r: -max(low - r.duration, r.duration - high))
            failures = sum(r.status == "failed" for r in mine)
            per[name] = {"runs": len(mine), "failures": failures, "error_rate": round(failures / len(mine), 3),
                         "median_duration": round(median, 3), "band": [round(low, 3), round(high, 3)],
                         "anomalies": [r.run_id for r in outside]}
        result[env] = per
    return result


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence report``."""
    from envfence_builtins.operations.report_cli import report

    cli.add_command(report)
