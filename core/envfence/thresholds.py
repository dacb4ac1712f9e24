"""Thresholds per automation, and what crossed them: the facts ``health`` reports and ``alerts`` sends.

A core service: the ``health`` and ``alerts`` plugins and the analysis behind
``report`` and ``advise`` read the same limits and judge them alike; the
``thresholds`` plugin checks the table (``envfence check``).

In the ``[thresholds]`` table, one sub-table per automation (``"*"`` for every
automation; an automation's own values win)::

    [thresholds."*"]
    grace = "10m"

    [thresholds.sync]
    max_duration = "15m"        # an age, or seconds
    max_memory = "512MB"        # peak resident memory: KB, MB, GB, or kilobytes as a number
    max_error_rate = 0.2        # failures over the last `error_window` runs
    error_window = 10
    expected_every = "1h"       # a run at least this often (with `grace`); scheduled ones are checked against their cron
    min_records_synced = 1      # min_<metric> / max_<metric>: a business metric the job reports (ctx.metric)
    alert_on_failure = true     # a failed run is an incident on its own (default: in environments based on production)

    [thresholds.sync.production]  # an environment's sub-table overlays the table it sits in
    max_duration = "5m"

Precedence, lowest first: ``"*"``, ``"*".<env>``, ``<automation>``,
``<automation>.<env>``. An abandoned run counts as a failed one.

A scheduled automation is overdue when its last expected firing is more than
``grace`` ago and no run started since. Firings are computed as the host's
scheduler makes them: the installed (staggered) expression, in the schedules'
zone (``CRON_TZ``, the project's ``timezone``, the machine's own), daylight
saving included as ``[schedule] target`` handles it.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from . import slotted
from .errors import ConfigurationError
from .models import RunOutcome, utcnow

SECTION = "thresholds"
_KEYS = ("max_duration", "max_memory", "max_error_rate", "error_window", "expected_every", "grace", "alert_on_failure")
# Patterns compiled by re's own cache on first use: importing this module compiles nothing.
_SIZE = r"(?i)^\s*(\d+(?:\.\d+)?)\s*(kb|mb|gb)?\s*$"
_SIZE_UNITS = {None: 1, "kb": 1, "mb": 1024, "gb": 1024 * 1024}
#: ``min_<metric>`` / ``max_<metric>``: a bound on a business metric the job reports (``ctx.metric``).
_METRIC_KEY = r"^(min|max)_([A-Za-z_][A-Za-z0-9_]*)$"
DEFAULT_GRACE = _dt.timedelta(minutes=10)
DEFAULT_WINDOW = 10
#: Statuses of runs that ended; an abandoned run (its process died) is a failure everywhere.
ENDED = ("succeeded", "failed", "abandoned")


@slotted.frozen
class Limits:
    """One automation's thresholds in one environment (None: not checked)."""

    max_duration: float | None = None  #: seconds
    max_memory: int | None = None  #: kilobytes
    max_error_rate: float | None = None  #: 0..1
    error_window: int = DEFAULT_WINDOW
    expected_every: _dt.timedelta | None = None
    grace: _dt.timedelta = DEFAULT_GRACE
    #: A failed run opens an incident on its own (default: in environments based on production).
    alert_on_failure: bool = False
    #: Bounds on business metrics: ``(metric, "min" or "max", bound)``.
    metric_bounds: tuple[tuple[str, str, float], ...] = ()
    #: Where each value came from: key -> ``thresholds.sync.production.max_duration``.
    sources: Any = slotted.field(factory=dict, eq=False)

    def shown(self) -> dict[str, Any]:
        """The limits that are set, for people and JSON (durations in seconds, memory in KB)."""
        result: dict[str, Any] = {}
        for key in ("max_duration", "max_memory", "max_error_rate", "error_window", "expected_every", "grace"):
            value = getattr(self, key)
            if value is not None:
                result[key] = value.total_seconds() if isinstance(value, _dt.timedelta) else value
        result["alert_on_failure"] = self.alert_on_failure
        for metric, side, bound in self.metric_bounds:
            result[f"{side}_{metric}"] = bound
        return result


@slotted.frozen
class Crossing:
    """A threshold an automation crossed (or a check it passed, with ``crossed`` False)."""

    automation: str
    check: str
    crossed: bool
    message: str
    severity: str = "critical"  #: ``warning`` or ``critical``
    value: Any = None
    limit: Any = None
    run_id: str | None = None


def parse_duration(value: Any, where: str) -> _dt.timedelta:
    """An age (``15m``, ``2h``) or a number of seconds; :class:`ConfigurationError` names ``where``."""
    import click

    from .cli.params import Age

    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return _dt.timedelta(seconds=value)
    try:
        return Age().convert(str(value), None, None)
    except click.BadParameter:
        raise ConfigurationError(f"{where}: {value!r} is not a duration", 'write an age ("15m", "2h", "1d") or seconds') from None


def parse_size(value: Any, where: str) -> int:
    """A size (``512MB``, ``2GB``) or a number of kilobytes, in kilobytes; :class:`ConfigurationError` names ``where``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.match(_SIZE, value) if isinstance(value, str) else None
    if not match:
        raise ConfigurationError(f"{where}: {value!r} is not a size", 'write "512MB", "2GB" or kilobytes as a number')
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "").lower() or None])


def _size_problem(value: Any) -> str | None:
    try:
        parse_size(value, "")
    except ConfigurationError:
        return 'is not a size ("512MB", "2GB", or kilobytes)'
    return None


def declare_thresholds(table: Any) -> None:
    """Declare the keys of the core's ``[thresholds]`` table: one table per automation (``"*"`` for all)."""
    from .settings_kinds import duration, duration_problem, either, flag, number, text, whole

    # Extra keys: min_<metric> / max_<metric> bounds of a job's own metrics, and per-environment sub-tables.
    one = table.add_each("", "the limits of one automation (or \"*\" for all)", names=r"[\s\S]+",
                         names_hint="an automation's name or *", extra=True)
    one.add("max_duration", duration(example="30m"), None, "a run longer than this is a crossing", check=duration_problem)
    one.add("max_memory", either(text(example="512MB"), whole(minimum=1)), None, "peak memory (a size, or kilobytes)",
            check=_size_problem)
    one.add("max_error_rate", number(minimum=0, example=0.2), None, "the share of failed runs over error_window",
            check=lambda v: f"must be at most 1, not {v!r}" if v > 1 else None)
    one.add("error_window", whole(minimum=1, example=10), None, "how many recent runs max_error_rate counts")
    one.add("expected_every", duration(example="1h"), None, "a run is missing when none started within this",
            check=duration_problem)
    one.add("grace", duration(example="10m"), None, "slack added to expected_every", check=duration_problem)
    one.add("alert_on_failure", flag(), None, "alert on every failed run (default: in production-based environments)")


def _layers(settings, automation: str, environment: str | None) -> list[tuple[str, dict]]:
    """The tables that apply, lowest first: ``"*"``, ``"*".<env>``, ``<automation>``, ``<automation>.<env>``.

    A sub-table is an environment's when its name is a declared environment
    (or one of its aliases); any other sub-table is an error.
    """
    from .settings import CORE

    table = CORE.tables[SECTION].read(settings).raw
    found = []
    for name in dict.fromkeys(("*", automation)):
        body = table.get(name, {})
        where = f"{settings.source}: {SECTION}.{name}"
        if not isinstance(body, dict):
            raise ConfigurationError(f"{where}: must be a table", f"write [{SECTION}.{name}] with max_duration, max_memory...")
        own, by_env = {}, {}
        for key, value in body.items():
            if isinstance(value, dict):
                env = settings.resolve(key)
                if env is None:
                    raise ConfigurationError(f"{where}.{key}: {key!r} is no declared environment",
                                             f"a sub-table of [{SECTION}.{name}] names an environment: {', '.join(settings.environments)}")
                by_env[env] = (key, value)
            else:
                own[key] = value
        found.append((f"{SECTION}.{name}", own))
        for env, (key, value) in by_env.items():
            if environment is None or env == environment:
                found.append((f"{SECTION}.{name}.{key}", value))
    return found


def _parse(key: str, value: Any, where: str) -> Any:
    if key == "max_duration":
        return parse_duration(value, where).total_seconds()
    if key in ("expected_every", "grace"):
        return parse_duration(value, where)
    if key == "max_memory":
        return parse_size(value, where)
    if key == "max_error_rate":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigurationError(f"{where}: {value!r} is not a rate", "write a fraction between 0 and 1, e.g. 0.2")
        return float(value)
    if key == "error_window":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{where}: {value!r} is not a number of runs", "write a whole number, e.g. 10")
        return value
    if key == "alert_on_failure":
        if not isinstance(value, bool):
            raise ConfigurationError(f"{where}: {value!r} is not true or false", "write alert_on_failure = false to relax it")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # a business metric's bound
        raise ConfigurationError(f"{where}: {value!r} is not a number", f"write {key} = 1")
    return float(value)


def limits(settings, automation: str, environment: str | None = None) -> Limits:
    """The thresholds of ``automation`` in ``environment``: ``<automation>.<env>`` over ``<automation>`` over ``"*".<env>`` over ``"*"``.

    :raises ConfigurationError: naming the file and the key of a bad value.
    """
    merged: dict[str, tuple[Any, str]] = {}
    for name, body in _layers(settings, automation, environment):
        for key, value in body.items():
            where = f"{settings.source}: {name}.{key}"
            if key not in _KEYS and not re.match(_METRIC_KEY, key):
                raise ConfigurationError(f"{where}: unknown key",
                                         f"known keys: {', '.join(_KEYS)}, or min_<metric> / max_<metric> for a metric the job reports")
            merged[key] = (_parse(key, value, where), f"{name}.{key}")
    spec = settings.environments.get(environment) if environment else None
    result: dict[str, Any] = {"alert_on_failure": spec is not None and spec.based_on == "production"}
    bounds = []
    for key, (value, _) in merged.items():
        match = re.match(_METRIC_KEY, key) if key not in _KEYS else None
        if match:
            bounds.append((match[2], match[1], value))
        else:
            result[key] = value
    return Limits(**result, metric_bounds=tuple(sorted(bounds)), sources={k: w for k, (_, w) in merged.items()})


def evaluate(session, automation, runs: list[RunOutcome], now: _dt.datetime | None = None) -> list[Crossing]:
    """Every check of ``automation`` against its thresholds in this environment and recent ``runs`` (newest first).

    An abandoned run (its process died) counts as a failed one.
    """
    now = now or utcnow()
    name = automation.name
    limit = limits(session.settings, name, session.environment.name)
    finished = [r for r in runs if r.status in ENDED]
    found: list[Crossing] = []
    last = finished[0] if finished else None
    if last is not None:
        found.append(Crossing(name, "failed", last.status != "succeeded",
                              f"{name}'s last run {last.run_id} {last.status}" + (f" ({last.error_class})" if last.error_class else ""),
                              "critical", last.status, "succeeded", last.run_id))
        if limit.max_duration is not None and last.status != "abandoned":
            found.append(Crossing(name, "max_duration", last.duration > limit.max_duration,
                                  f"{name}'s last run took {last.duration:.1f}s (limit {limit.max_duration:.0f}s)",
                                  "warning", round(last.duration, 3), limit.max_duration, last.run_id))
        memory = last.metrics.get("peak_memory_kb")
        if limit.max_memory is not None and memory is not None:
            found.append(Crossing(name, "max_memory", memory > limit.max_memory,
                                  f"{name}'s last run peaked at {memory} KB (limit {limit.max_memory} KB)",
                                  "warning", memory, limit.max_memory, last.run_id))
    succeeded = next((r for r in finished if r.status == "succeeded"), None)
    if succeeded is not None:
        found.extend(_metric_crossings(name, limit, succeeded))
    if limit.max_error_rate is not None and finished:
        window = finished[: limit.error_window]
        rate = sum(r.status != "succeeded" for r in window) / len(window)
        found.append(Crossing(name, "max_error_rate", rate > limit.max_error_rate,
                              f"{name} failed {rate:.0%} of its last {len(window)} run(s) (limit {limit.max_error_rate:.0%})",
                              "critical", round(rate, 3), limit.max_error_rate, window[0].run_id))
    found.extend(_overdue(session, automation, limit, runs, now))
    return found


def business_metrics(run: RunOutcome) -> dict[str, dict[str, Any]]:
    """The business metrics a run reported: name -> ``{"value", "unit"}`` (empty when it reported none)."""
    values = run.metrics.get("business") if run.metrics else None
    return dict(values) if isinstance(values, dict) else {}


def _metric_crossings(name: str, limit: Limits, run: RunOutcome) -> list[Crossing]:
    """The last successful run's business metrics against ``min_<metric>`` / ``max_<metric>``.

    A succeeding run that did not report a bounded metric crosses too: a job
    that stopped counting is no healthier than one that counted nothing.
    """
    reported = business_metrics(run)
    found = []
    for metric, side, bound in limit.metric_bounds:
        entry = reported.get(metric)
        value = entry.get("value") if entry else None
        unit = f" {entry['unit']}" if entry and entry.get("unit") else ""
        if value is None:
            crossed, message = True, f"{name}'s last successful run {run.run_id} reported no {metric} ({side} {bound:g})"
        else:
            crossed = value < bound if side == "min" else value > bound
            message = f"{name}'s last successful run {run.run_id} reported {metric} = {value:g}{unit} ({side} {bound:g})"
        found.append(Crossing(name, f"{side}_{metric}", crossed, message, "critical", value, bound, run.run_id))
    return found


def _overdue(session, automation, limit: Limits, runs, now) -> list[Crossing]:
    name = automation.name
    started = [r.started_at for r in runs]
    latest = max(started) if started else None
    expression = automation.schedule_for(session.environment.name)
    if expression:
        from .automations import installed_firing
        from .cron import parse, project_zone

        # What the host's scheduler runs: the staggered expression, read in the schedules' zone.
        installed, scheduler = installed_firing(session, automation) or (expression, "crontab")
        # A firing still within its grace is not due yet; an aware moment gets the daylight-saving handling of the
        # scheduler that runs it, so a firing it legitimately skipped is never reported as missed.
        expected = parse(installed).previous_before((now - limit.grace).astimezone(project_zone(session)), scheduler)
        if expected is None:
            return []
        # In UTC: a minute before 03:00 on a spring-forward day is a wall time that never existed.
        missed = latest is None or latest < expected.astimezone(_dt.timezone.utc) - _dt.timedelta(minutes=1)
        return [Crossing(name, "expected_every", missed,
                         f"{name} was due at {expected:%Y-%m-%d %H:%M %Z} ({installed}) and "
                         + ("has not run since" if missed else "ran"),
                         "critical", latest.isoformat() if latest else None, expected.isoformat())]
    if limit.expected_every is None:
        return []
    due = limit.expected_every + limit.grace
    missed = latest is None or now - latest > due
    return [Crossing(name, "expected_every", missed,
                     f"{name} last ran {'never' if latest is None else f'{latest:%Y-%m-%d %H:%M} UTC'}; expected every "
                     f"{limit.expected_every} (grace {limit.grace})",
                     "critical", latest.isoformat() if latest else None, str(limit.expected_every))]


def effective_text(limit: Limits) -> str:
    """``max_duration 600s (thresholds.sync.production), ...``: the limits that are set, each with the table that set it."""
    parts = []
    for key, value in limit.shown().items():
        source = limit.sources.get(key)
        if key == "alert_on_failure" and source is None:
            if not value:
                continue
            source = "default in production"
        unit = "s" if key in ("max_duration", "expected_every", "grace") else " KB" if key == "max_memory" else ""
        parts.append(f"{key} {value:g}{unit}" if isinstance(value, float) else f"{key} {value}{unit}")
        parts[-1] += f" ({source or 'default'})"
    return ", ".join(parts) if any(k in limit.sources for k in limit.shown()) or limit.alert_on_failure else ""
