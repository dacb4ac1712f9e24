"""Thresholds per automation, and what crossed them: the facts ``health`` reports and ``alerts`` sends.

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

A scheduled automation is overdue when its last expected firing is more than
``grace`` ago and no run started since. Firings are computed as the host's
scheduler makes them: the installed (staggered) expression, in the schedules'
zone (``CRON_TZ``, the project's ``timezone``, the machine's own), daylight
saving included.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import attrs

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding, RunOutcome, utcnow

SECTION = "thresholds"
_KEYS = ("max_duration", "max_memory", "max_error_rate", "error_window", "expected_every", "grace")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kb|mb|gb)?\s*$", re.I)
_SIZE_UNITS = {None: 1, "kb": 1, "mb": 1024, "gb": 1024 * 1024}
DEFAULT_GRACE = _dt.timedelta(minutes=10)
DEFAULT_WINDOW = 10


@attrs.frozen
class Limits:
    """One automation's thresholds (None: not checked)."""

    max_duration: float | None = None  #: seconds
    max_memory: int | None = None  #: kilobytes
    max_error_rate: float | None = None  #: 0..1
    error_window: int = DEFAULT_WINDOW
    expected_every: _dt.timedelta | None = None
    grace: _dt.timedelta = DEFAULT_GRACE


@attrs.frozen
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

    from envfence.cli.params import Age

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
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigurationError(f"{where}: {value!r} is not a size", 'write "512MB", "2GB" or kilobytes as a number')
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "").lower() or None])


def limits(settings, automation: str) -> Limits:
    """The thresholds of ``automation``: its own table over ``"*"``; :class:`ConfigurationError` names a bad key."""
    table = settings.section(SECTION)
    merged: dict[str, Any] = {}
    for name in ("*", automation):
        body = table.get(name, {})
        where = f"{settings.source}: {SECTION}.{name}"
        if not isinstance(body, dict):
            raise ConfigurationError(f"{where}: must be a table", f"write [{SECTION}.{name}] with max_duration, max_memory...")
        for key, value in body.items():
            if key not in _KEYS:
                raise ConfigurationError(f"{where}.{key}: unknown key", f"known keys: {', '.join(_KEYS)}")
            merged[key] = (value, f"{where}.{key}")
    result: dict[str, Any] = {}
    for key, (value, where) in merged.items():
        if key in ("max_duration",):
            result[key] = parse_duration(value, where).total_seconds()
        elif key in ("expected_every", "grace"):
            result[key] = parse_duration(value, where)
        elif key == "max_memory":
            result[key] = parse_size(value, where)
        elif key == "max_error_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigurationError(f"{where}: {value!r} is not a rate", "write a fraction between 0 and 1, e.g. 0.2")
            result[key] = float(value)
        elif key == "error_window":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{where}: {value!r} is not a number of runs", "write a whole number, e.g. 10")
            result[key] = value
    return Limits(**result)


def evaluate(session, automation, runs: list[RunOutcome], now: _dt.datetime | None = None) -> list[Crossing]:
    """Every check of ``automation`` against its thresholds and recent ``runs`` (newest first)."""
    now = now or utcnow()
    name = automation.name
    limit = limits(session.settings, name)
    finished = [r for r in runs if r.status in ("succeeded", "failed")]
    found: list[Crossing] = []
    last = finished[0] if finished else None
    if last is not None:
        found.append(Crossing(name, "failed", last.status == "failed",
                              f"{name}'s last run {last.run_id} {last.status}" + (f" ({last.error_class})" if last.error_class else ""),
                              "critical", last.status, "succeeded", last.run_id))
        if limit.max_duration is not None:
            found.append(Crossing(name, "max_duration", last.duration > limit.max_duration,
                                  f"{name}'s last run took {last.duration:.1f}s (limit {limit.max_duration:.0f}s)",
                                  "warning", round(last.duration, 3), limit.max_duration, last.run_id))
        memory = last.metrics.get("peak_memory_kb")
        if limit.max_memory is not None and memory is not None:
            found.append(Crossing(name, "max_memory", memory > limit.max_memory,
                                  f"{name}'s last run peaked at {memory} KB (limit {limit.max_memory} KB)",
                                  "warning", memory, limit.max_memory, last.run_id))
    if limit.max_error_rate is not None and finished:
        window = finished[: limit.error_window]
        rate = sum(r.status == "failed" for r in window) / len(window)
        found.append(Crossing(name, "max_error_rate", rate > limit.max_error_rate,
                              f"{name} failed {rate:.0%} of its last {len(window)} run(s) (limit {limit.max_error_rate:.0%})",
                              "critical", round(rate, 3), limit.max_error_rate, window[0].run_id))
    found.extend(_overdue(session, automation, limit, runs, now))
    return found


def _overdue(session, automation, limit: Limits, runs, now) -> list[Crossing]:
    name = automation.name
    started = [r.started_at for r in runs]
    latest = max(started) if started else None
    expression = automation.schedule_for(session.environment.name)
    if expression:
        from envfence.cron import parse

        from envfence_builtins.operations.schedule import entries, zone

        # What the host's scheduler runs: the staggered expression, read in the schedules' zone.
        installed = next((e.expression for e in entries(session) if e.automation == name), expression)
        # A firing still within its grace is not due yet; an aware moment gets cron's daylight-saving handling.
        expected = parse(installed).previous_before((now - limit.grace).astimezone(zone(session)))
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


@hookimpl
def validate(session) -> list[Finding]:
    """Every ``[thresholds]`` table parses and names a known automation (or ``"*"``)."""
    table = session.settings.section(SECTION)
    if not table:
        return []
    try:
        known = session.automations
    except ConfigurationError:
        return []  # the automations plugin reports it
    findings = []
    for name in table:
        try:
            if name != "*" and name not in known:
                raise ConfigurationError(f"{session.settings.source}: {SECTION}.{name}: no automation named {name!r}",
                                         f"known: {', '.join(known) or 'none'}")
            limits(session.settings, name)
        except ConfigurationError as exc:
            findings.append(Finding("THRESHOLD_INVALID", "error", exc.message, exc.hint, key=f"{SECTION}.{name}", plugin=SECTION))
    return findings
