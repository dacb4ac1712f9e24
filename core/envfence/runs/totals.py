"""A run history summed up: per automation, day and status, without handing every run to Python.

``metrics``, ``report``, ``health`` and ``advise`` need counts, sums and the
latest values of a history that may hold millions of runs. A history plugin
answers the ``run_totals`` hook with a :class:`RunTotals` computed where the
runs are (the SQLite history: ``GROUP BY`` in SQL); :func:`from_runs` computes
the same from runs read one by one: the answer of a history that cannot sum
in its own query language (the shared store), and the reference the SQL must
agree with (tests compare both on seeded histories).

Durations are counted for runs that ended by themselves (``succeeded``,
``failed``): a ``running`` or ``abandoned`` run has no duration worth adding.
Days are UTC dates of the start. Business metrics and steps keep the value of
the newest run that reported them (any status), and metrics their sum.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Sequence

from .. import slotted

#: The statuses of a run that ended by itself, with a duration worth adding.
TIMED = ("succeeded", "failed")


@slotted.frozen
class RunGroup:
    """The runs of one automation, started on one UTC day, that ended with one status."""

    automation: str
    day: str  #: ``YYYY-MM-DD``, the UTC date of the start
    status: str
    runs: int
    duration_sum: float  #: seconds, over the runs of a :data:`TIMED` status (0 otherwise)
    within: tuple[int, ...]  #: runs of a :data:`TIMED` status whose duration is at most each of the asked bounds
    last_started: _dt.datetime
    last_finished: _dt.datetime


@slotted.frozen
class MetricTotal:
    """A business metric of one automation: its newest value, its unit and its sum over the runs."""

    automation: str
    metric: str
    last: float
    unit: str
    total: float


@slotted.frozen
class StepLast:
    """How long a step of one automation took in the newest run that had it."""

    automation: str
    step: str
    seconds: float


@slotted.frozen
class RunTotals:
    """What :func:`from_runs` or a history's own query found; each part sorted, so two answers compare equal.

    Built by :func:`sort_totals`: the groups are in automation order, which :meth:`of` searches.
    """

    groups: tuple[RunGroup, ...]
    metrics: tuple[MetricTotal, ...] = ()
    steps: tuple[StepLast, ...] = ()

    def automations(self) -> list[str]:
        """Every automation with a run, by name."""
        return sorted({g.automation for g in self.groups})

    def statuses(self, automation: str) -> dict[str, int]:
        """Runs of ``automation`` by status."""
        found: dict[str, int] = {}
        for group in self.of(automation):
            found[group.status] = found.get(group.status, 0) + group.runs
        return found

    def of(self, automation: str) -> list[RunGroup]:
        """The groups of ``automation``, by day and status."""
        import bisect

        # Groups are sorted by automation (sort_totals): a binary search, so asking for each of thousands stays fast.
        start = bisect.bisect_left(self.groups, automation, key=_automation)
        end = bisect.bisect_right(self.groups, automation, lo=start, key=_automation)
        return list(self.groups[start:end])


def _automation(group: RunGroup) -> str:
    return group.automation


def day_of(moment: _dt.datetime) -> str:
    """The UTC date of ``moment``, as a history's SQL writes it (``YYYY-MM-DD``)."""
    return moment.astimezone(_dt.timezone.utc).date().isoformat()


def sort_totals(groups: Iterable[RunGroup], metrics: Iterable[MetricTotal] = (), steps: Iterable[StepLast] = ()) -> RunTotals:
    """A :class:`RunTotals` of its parts in their fixed order."""
    return RunTotals(tuple(sorted(groups, key=lambda g: (g.automation, g.day, g.status))),
                     tuple(sorted(metrics, key=lambda m: (m.automation, m.metric))),
                     tuple(sorted(steps, key=lambda s: (s.automation, s.step))))


def from_runs(runs: Iterable[Any], buckets: Sequence[float] = ()) -> RunTotals:
    """The totals of ``runs`` (:class:`~envfence.models.RunOutcome`, newest first), read one by one."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    steps: dict[tuple[str, str], float] = {}
    for run in runs:
        key = (run.automation, day_of(run.started_at), run.status)
        group = groups.setdefault(key, {"runs": 0, "sum": 0.0, "within": [0] * len(buckets),
                                        "started": run.started_at, "finished": run.finished_at})
        group["runs"] += 1
        group["started"] = max(group["started"], run.started_at)
        group["finished"] = max(group["finished"], run.finished_at)
        if run.status in TIMED:
            group["sum"] += run.duration
            for i, bound in enumerate(buckets):
                group["within"][i] += run.duration <= bound
        for name, entry in (run.metrics.get("business") or {}).items():  # newest first: the first met is the last
            found = metrics.setdefault((run.automation, name), {"last": float(entry["value"]), "unit": entry.get("unit") or "", "total": 0.0})
            found["total"] += float(entry["value"])
        for name, seconds in (run.metrics.get("steps") or {}).items():
            steps.setdefault((run.automation, name), float(seconds))
    return sort_totals(
        (RunGroup(a, d, s, g["runs"], g["sum"], tuple(g["within"]), g["started"], g["finished"]) for (a, d, s), g in groups.items()),
        (MetricTotal(a, m, v["last"], v["unit"], v["total"]) for (a, m), v in metrics.items()),
        (StepLast(a, s, v) for (a, s), v in steps.items()),
    )


def totals_of(session, since: _dt.datetime | None = None, buckets: Sequence[float] = ()) -> RunTotals:
    """The session's environment's totals since ``since``: the history's own answer (``run_totals``), else from its runs.

    The fallback reads every run of the window through ``run_history``: a
    history plugin that implements only that hook is still right, only slower.
    """
    answer = session.plugins.run_totals(session=session, since=since, buckets=tuple(buckets)).first
    if answer is not None:
        return answer
    runs = session.plugins.run_history(session=session, automation=None, limit=10**9, since=since).first or []
    return from_runs((r for r in runs if since is None or r.started_at >= since), buckets)
