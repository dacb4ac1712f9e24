"""Cron expressions: the schedule of an automation, read as cron reads it.

A thin layer over cronsim, with cronie's day rule (the cron of Debian,
Fedora and most servers): five fields with ``*``, lists, ranges, steps, names
(``jan``, ``mon``), plus the ``@hourly`` … ``@yearly`` shorthands, and beyond
cronie's own grammar a step after a single value (``1/3``), ``L``, ``LW`` and
``#``. As in cronie, when either day field starts with ``*`` a day must match
both (``0 0 */2 * 1`` is Mondays on odd days); when both are restricted a day
matches either. This is the one reading of a schedule; each scheduler gets it
in its own dialect, or refuses it (the schedule plugin). An expression that
can never fire (``0 0 30 2 *``) is an error, not a schedule that silently
never runs.

Times are computed in the zone cron uses: :func:`schedule_zone` (``CRON_TZ``,
else the project's ``timezone`` setting, else the machine's local zone).

Firing times follow the scheduler that runs them (:data:`TARGETS`, the
``[schedule] target`` setting): they differ only across daylight saving.
cronie runs an entry of the skipped hour when that hour ends and a
fixed-time entry of the repeated hour once; systemd skips a wall time that
does not exist and fires a repeated one at its first pass only; robfig/cron
(Kubernetes) steps through real time, so it skips the missing hour and fires
twice in the repeated one.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping

from . import slotted

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = {"minute": "0-59", "hour": "0-23", "day-of-month": "1-31", "month": "1-12 or jan-dec", "day-of-week": "0-7 or sun-sat"}
# Any fixed moment works as cronsim's start for parsing; next times pass their own.
_EPOCH = _dt.datetime(2000, 1, 1)
#: The schedulers a schedule is written for: cronie/Vixie cron, systemd timers, Kubernetes CronJobs (robfig/cron).
TARGETS = ("crontab", "systemd", "kubernetes")
#: Beyond any daylight-saving shift: how far a wall time and its instants may lie apart.
_SHIFT = _dt.timedelta(hours=3)
_UTC = _dt.timezone.utc


class CronError(ValueError):
    """A cron expression that cannot be parsed or never fires; the message names the field."""


@slotted.frozen
class Cron:
    """A parsed cron expression. Build one with :func:`parse`."""

    expression: str  #: as written
    fields: str  #: the five fields (a shorthand expanded)
    _sim: Any = slotted.field(eq=False, repr=False)  #: cronsim's parse, for its field sets and day matching

    def matches_day(self, day: _dt.date) -> bool:
        """True when the schedule fires on ``day`` (at some time)."""
        return day.month in self._sim.months and self._sim.match_day(day)

    @property
    def sets(self) -> "FieldSets":
        """The values each field takes, as this expression is read (cronie's reading, with ``L``, ``W`` and ``#``)."""
        sim = self._sim
        weekdays = frozenset(d % 7 if isinstance(d, int) else (d[0] % 7, d[1]) for d in sim.weekdays)
        return FieldSets(frozenset(sim.minutes), frozenset(sim.hours), frozenset(sim.days), frozenset(sim.months),
                         weekdays, sim.day_and)

    def next_after(self, moment: _dt.datetime, target: str = "crontab") -> _dt.datetime:
        """The first firing time strictly after ``moment``, in ``moment``'s zone, as ``target`` fires.

        An aware ``moment`` in a zone with daylight saving gets the target's
        handling of the skipped and repeated hour (see the module's docstring).
        """
        return next(self.firings(moment, target))

    def firings(self, moment: _dt.datetime, target: str = "crontab"):
        """Every firing time strictly after ``moment``, in order, as ``target`` fires (see :meth:`next_after`)."""
        from cronsim import CronSim

        if target == "crontab" or moment.tzinfo is None:
            return iter(CronSim(self.fields, moment))
        return self._literal(moment, target, reverse=False)

    def previous_before(self, moment: _dt.datetime, target: str = "crontab") -> _dt.datetime | None:
        """The last firing time strictly before ``moment``, in ``moment``'s zone, or None (none in 50 years).

        The mirror of :meth:`next_after`: for cronie (cronsim iterates
        backwards) a firing in the skipped hour happened at the hour's end and
        a fixed-time entry fired once in the repeated hour; systemd and
        robfig/cron made no firing in the skipped hour.
        """
        from cronsim import CronSim

        if target == "crontab" or moment.tzinfo is None:
            return next(CronSim(self.fields, moment, reverse=True), None)
        return next(self._literal(moment, target, reverse=True), None)

    def _literal(self, moment: _dt.datetime, target: str, reverse: bool):
        """Firings of a scheduler that reads wall times literally, in time order from ``moment`` (exclusive).

        Wall times come from cronsim on naive times; each becomes the instants
        it names (none, one, or two in a repeated hour). Near a transition
        they come out of order, so they wait in a heap until no later wall
        time can give an earlier instant.
        """
        import heapq

        from cronsim import CronSim

        zone, start = moment.tzinfo, moment.astimezone(_UTC)
        wall = moment.astimezone(zone).replace(tzinfo=None)
        pending: list[tuple[_dt.timedelta, int, _dt.datetime, _dt.datetime]] = []  # (distance from start, order, instant, wall)
        for order, candidate in enumerate(CronSim(self.fields, wall + _SHIFT if reverse else wall - _SHIFT, reverse=reverse)):
            for instant in _instants(candidate, zone, target):
                distance = (start - instant.astimezone(_UTC)) if reverse else (instant.astimezone(_UTC) - start)
                if distance > _dt.timedelta(0):
                    heapq.heappush(pending, (distance, order, instant, candidate))
            # Once the wall times have moved on by more than any shift, nothing later can come before the nearest.
            while pending and abs(candidate - pending[0][3]) >= _SHIFT:
                yield heapq.heappop(pending)[2]

    def common_time(self, other: "Cron", year: int = 2028) -> _dt.datetime | None:
        """A time in ``year`` at which both schedules fire, or None (a leap year covers 29 February)."""
        hours = sorted(self._sim.hours & other._sim.hours)
        minutes = sorted(self._sim.minutes & other._sim.minutes)
        if not hours or not minutes:
            return None
        day = _dt.date(year, 1, 1)
        while day.year == year:
            if self.matches_day(day) and other.matches_day(day):
                return _dt.datetime(day.year, day.month, day.day, hours[0], minutes[0])
            day += _dt.timedelta(days=1)
        return None


@slotted.frozen
class FieldSets:
    """What each field of a parsed expression takes (cronsim's sets, Sunday always 0).

    ``days`` may hold ``LAST`` (-1000, ``L``) and ``LAST_WEEKDAY`` (-1001,
    ``LW``); ``weekdays`` may hold ``(weekday, n)`` for ``#n`` and
    ``(weekday, LAST)`` for ``5L``. ``day_and``: a day must match both day
    fields (either starts with ``*``), else either.
    """

    LAST = -1000
    LAST_WEEKDAY = -1001

    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset
    day_and: bool


def _instants(wall: _dt.datetime, zone: _dt.tzinfo, target: str) -> list[_dt.datetime]:
    """The instants a wall time names for ``target``: none in a skipped hour; in a repeated one, systemd's first pass, robfig's two."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first]
    if first.astimezone(_UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return []  # 02:30 on the spring-forward night: no such time
    return [first] if target == "systemd" else [first, second]


def parse(expression: str) -> Cron:
    """Parse a cron expression, or raise :class:`CronError` naming the bad field."""
    from cronsim import CronSim, CronSimError

    if not isinstance(expression, str) or not expression.strip():
        raise CronError(f"a schedule must be a cron expression like '0 2 * * *', not {expression!r}")
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{expression!r} has {len(parts)} field(s); a cron expression has 5: minute hour day-of-month month day-of-week"
        )
    try:
        sim = CronSim(text, _EPOCH)
    except CronSimError as exc:
        raise CronError(_explain(expression, parts, str(exc))) from None
    return Cron(expression.strip(), text, sim)


def _explain(expression: str, parts: list[str], problem: str) -> str:
    """cronsim's terse "Bad minute" as a sentence naming the field, its text and what it may hold."""
    field = problem.removeprefix("Bad ").strip()
    if field not in _RANGES:
        return f"{expression!r}: {problem}"
    index = list(_RANGES).index(field)
    if field == "day-of-month":
        from cronsim import CronSim, CronSimError

        try:  # the field is well-formed (every month has a day it names), only no month it names has such a day
            CronSim(" ".join(parts[:3] + ["*"] + parts[4:]), _EPOCH)
            return f"{expression!r} never fires: no month it names has day {parts[2]}"
        except CronSimError:
            pass
    return (
        f"{expression!r}: {_FIELDS[index]} field {parts[index]!r} is not valid; it takes {_RANGES[field]}, "
        "with *, lists (a,b), ranges (a-b) and steps (*/n, a-b/n)"
    )


def schedule_zone(environ: Mapping[str, str] | None = None, setting: str | None = None) -> _dt.tzinfo:
    """The zone schedules are read in, as cron reads them.

    ``CRON_TZ`` from ``environ`` (the variable cronie reads), else ``setting``
    (the project's ``timezone``), else the machine's local zone (``TZ``, then
    ``/etc/localtime``). Raises :class:`CronError` for a zone name that is not
    in the time zone database.
    """
    environ = os.environ if environ is None else environ
    named = named_zone(environ, setting)
    return named if named is not None else _local_zone(environ)


def named_zone(environ: Mapping[str, str], setting: str | None) -> _dt.tzinfo | None:
    """The zone ``CRON_TZ`` (else ``setting``) names, None when neither names one (the machine's own zone then).

    What :func:`schedule_zone` refuses, this refuses (:class:`CronError`); it
    loads the time zone database only for a zone named, so checking a
    project that names none costs nothing.
    """
    name = (environ.get("CRON_TZ") or setting or "").strip()
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    source = "CRON_TZ" if environ.get("CRON_TZ") else "timezone"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise CronError(f"{source} = {name!r} is no time zone; use a name like 'Europe/Paris' or 'UTC'") from None


def project_zone(session: Any) -> _dt.tzinfo:
    """The zone a session's schedules fire in (:func:`schedule_zone` of its environment and ``timezone``).

    :raises ConfigurationError: the zone named is not in the time zone database, naming the settings file.
    """
    from .errors import ConfigurationError

    try:
        return schedule_zone(session.environ, session.settings.timezone)
    except CronError as exc:
        raise ConfigurationError(f"{session.settings.source}: {exc}", 'write timezone = "Europe/Paris" (or "UTC")') from None


def _local_zone(environ: Mapping[str, str]) -> _dt.tzinfo:
    from zoneinfo import ZoneInfo

    candidates = [environ.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink("/etc/localtime")
        candidates.append(target.partition("zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except Exception:  # a TZ rule string ("CET-1CEST") or a path: try the next
                continue
    if Path("/etc/localtime").is_file():
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    return _dt.datetime.now().astimezone().tzinfo  # a fixed offset: no better knowledge on this machine

