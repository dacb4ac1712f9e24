"""Maintenance windows and pauses: when an environment's automations may not run, read from ``[maintenance]`` and ``<tree>/state/pauses.json``.

The ``maintenance`` plugin's hooks (:mod:`envfence_builtins.operations.maintenance`)
refuse a run inside a window or while paused; its commands (``maintenance_cli``)
pause and resume.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from envfence import slotted
from envfence.errors import ConfigurationError
from envfence.models import utcnow


SECTION = "maintenance"
ALL = "*"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index is datetime.weekday()
_WINDOW = re.compile(r"^\s*(?P<days>[a-z,\-*]+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$", re.I)


@slotted.frozen
class Window:
    """A weekly maintenance window."""

    text: str
    days: frozenset[int]  #: weekdays (Monday 0) on which the window opens
    start: _dt.time
    end: _dt.time

    def active(self, local: _dt.datetime) -> _dt.datetime | None:
        """When the window that holds ``local`` closes, or None when ``local`` is outside every opening."""
        for back in (0, 1):  # a window past midnight opened the day before
            day = local.date() - _dt.timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            opens = _dt.datetime.combine(day, self.start, local.tzinfo)
            closes = _dt.datetime.combine(day, self.end, local.tzinfo)
            if closes <= opens:
                closes += _dt.timedelta(days=1)
            if opens <= local < closes:
                return closes
        return None


def parse_window(text: str, where: str) -> Window:
    """Parse ``"sun 02:00-04:00"``; a :class:`ConfigurationError` names ``where`` and what is wrong."""
    hint = 'write days and a time range, e.g. "sun 02:00-04:00", "mon-fri 22:00-02:00" or "daily 03:00-03:30"'
    match = _WINDOW.match(str(text)) if isinstance(text, str) else None
    if not match:
        raise ConfigurationError(f"{where}: {text!r} is not a maintenance window", hint)
    days: set[int] = set()
    for part in match["days"].lower().split(","):
        if part in ("daily", "*"):
            days.update(range(7))
            continue
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ConfigurationError(f"{where}: {text!r}: {part!r} is not a day (mon..sun, daily)", hint)
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    times = []
    for value in (match["start"], match["end"]):
        hour, minute = (int(v) for v in value.split(":"))
        if hour > 23 or minute > 59:
            raise ConfigurationError(f"{where}: {text!r}: {value} is not a time of day", hint)
        times.append(_dt.time(hour, minute))
    if times[0] == times[1]:
        raise ConfigurationError(f"{where}: {text!r} opens and closes at the same time", hint)
    return Window(text.strip(), frozenset(days), times[0], times[1])


def _maintenance_table():
    from envfence.settings_kinds import either, text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "maintenance windows: when each environment's runs are held back")
    table.add("timezone", text(example="Europe/Paris"), None, "the zone the windows are written in (default: the schedules' zone)")
    table.add_free(either(text(example="sun 02:00-04:00"), texts(example="sun 02:00-04:00")),
                   "an environment's windows, e.g. \"sun 02:00-04:00\", \"mon-fri 22:00-02:00\"")
    return table


#: ``[maintenance]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _maintenance_table()


def zone(settings):
    """The zone windows are written in: ``[maintenance] timezone``, else the schedules' zone.

    The schedules' zone is ``CRON_TZ``, else the project's ``timezone``, else
    the machine's own, so a window and the runs it holds back read the same clock.
    """
    found = named_zone(settings)
    if found is not None:
        return found
    from envfence.cron import schedule_zone

    return schedule_zone(None, settings.timezone)


def named_zone(settings):
    """The zone :func:`zone` gives when the settings or ``CRON_TZ`` name one, else None (the machine's own zone).

    :raises ConfigurationError: a zone named that the time zone database does not know, naming the setting.
    """
    import os

    from envfence.cron import CronError, named_zone as named_schedule_zone

    name = TABLE.read(settings)["timezone"]
    if name is None:
        try:
            return named_schedule_zone(os.environ, settings.timezone)
        except CronError as exc:
            raise ConfigurationError(f"{settings.source}: {exc}", 'write timezone = "Europe/Paris" (or "UTC")') from None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"{settings.source}: {SECTION}.timezone: {name!r} is no time zone", 'write an IANA name, e.g. "Europe/Paris" or "UTC"'
        ) from None


def windows(settings, environment: str) -> list[Window]:
    """The declared windows of ``environment``; a :class:`ConfigurationError` for a bad one."""
    found = []
    for key, value in TABLE.read(settings).free().items():
        where = f"{settings.source}: {SECTION}.{key}"
        env = settings.resolve(key)
        if env is None:
            raise ConfigurationError(f"{where}: {key!r} is no declared environment", f"use one of: {', '.join(settings.environments)}")
        if env != environment:
            continue
        items = [value] if isinstance(value, str) else value
        found.extend(parse_window(item, where) for item in items)
    return found


def open_window(settings, environment: str, now: _dt.datetime | None = None) -> tuple[Window, _dt.datetime] | None:
    """The window of ``environment`` in force at ``now`` and when it closes (in UTC), or None."""
    named = named_zone(settings)  # a zone named must be one, whether or not windows are declared
    declared = windows(settings, environment)
    if not declared:  # the machine's own zone (and the time zone database) is not needed
        return None
    local = (now or utcnow()).astimezone(named if named is not None else zone(settings))
    for window in declared:
        closes = window.active(local)
        if closes is not None:
            # Overlapping or back-to-back windows hold runs until the last of them closes.
            for _ in range(len(declared) * 8):
                later = [c for w in declared if (c := w.active(closes)) is not None and c > closes]
                if not later:
                    break
                closes = max(later)
            return window, closes.astimezone(_dt.timezone.utc)
    return None


def pauses_file(paths):
    """``<tree>/state/pauses.json``."""
    from envfence_builtins.operations.state_files import state_dir

    return state_dir(paths) / "pauses.json"


def pauses(session, now: _dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """The pauses in force: automation name (or ``*``) -> ``until``, ``reason``, ``by``, ``at``."""
    from envfence_builtins.operations.state_files import read_json

    paths = session.paths
    if paths is None:
        return {}
    moment = now or utcnow()
    path = pauses_file(paths)
    table = read_json(path, {})
    current = {}
    try:
        for name, pause in table.items():
            until = pause.get("until")
            if until is not None:
                until = _dt.datetime.fromisoformat(until)
                until = until if until.tzinfo else until.replace(tzinfo=_dt.timezone.utc)
            if until is None or until > moment:
                current[name] = pause
    except (AttributeError, TypeError, ValueError):  # never read as "nothing is paused": a pause may be in there
        from envfence.errors import EnvfenceError

        raise EnvfenceError(f"{path} is damaged (not the pauses envfence keeps: name -> until, reason, by)",
                            f"look at it, then move it aside (mv {path} {path}.damaged) and pause again what must stay paused") from None
    return current


def set_pause(session, name: str, pause: dict[str, Any] | None) -> None:
    """Record (or with None lift) the pause of ``name``, dropping the expired ones."""
    import fcntl

    from envfence import files

    from envfence_builtins.operations.state_files import write_json

    # Read, change and write under one lock: two pauses set at once both hold (neither overwrites the other).
    with files.open_lock(session.paths, "pauses.state") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        kept = pauses(session)
        if pause is None:
            kept.pop(name, None)
        else:
            kept[name] = pause
        write_json(session.paths, pauses_file(session.paths), kept)


def pause_of(session, automation: str) -> dict[str, Any] | None:
    """The pause that holds ``automation`` (its own, or one of every automation), or None."""
    current = pauses(session)
    return current.get(automation) or current.get(ALL)
