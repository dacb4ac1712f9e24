"""Cron expressions: the schedule of an automation.

Five fields (minute, hour, day of month, month, day of week) with ``*``,
lists, ranges, steps and names (``jan``, ``mon``), and the ``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly`` shorthands. As in cron,
when both day fields are restricted a day matches either of them.
"""

from __future__ import annotations

import datetime as _dt

import attrs

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, low, high, names (their index plus offset is the value)
_FIELDS = (
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day of month", 1, 31, None, 0),
    ("month", 1, 12, _MONTHS, 1),
    ("day of week", 0, 7, _DAYS, 0),
)


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the field."""


@attrs.frozen
class Cron:
    """A parsed cron expression. Build one with :func:`parse`."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  #: 0 is Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: _dt.date) -> bool:
        """True when the schedule fires on ``day`` (at some time)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, moment: _dt.datetime, horizon_days: int = 366 * 5) -> _dt.datetime | None:
        """The first firing time strictly after ``moment`` (same timezone), or None."""
        start = (moment + _dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        times = sorted((h, m) for h in self.hours for m in self.minutes)
        for offset in range(horizon_days):
            day = start.date() + _dt.timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for hour, minute in times:
                candidate = start.replace(year=day.year, month=day.month, day=day.day, hour=hour, minute=minute)
                if candidate >= start:
                    return candidate
        return None

    def common_time(self, other: "Cron", year: int = 2028) -> _dt.datetime | None:
        """A time in ``year`` at which both schedules fire, or None (a leap year covers 29 February)."""
        times = sorted((h, m) for h in self.hours & other.hours for m in self.minutes & other.minutes)
        if not times:
            return None
        day = _dt.date(year, 1, 1)
        while day.year == year:
            if self.matches_day(day) and other.matches_day(day):
                hour, minute = times[0]
                return _dt.datetime(day.year, day.month, day.day, hour, minute)
            day += _dt.timedelta(days=1)
        return None


def parse(expression: str) -> Cron:
    """Parse a cron expression, or raise :class:`CronError` naming the bad field."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError(f"a schedule must be a cron expression like '0 2 * * *', not {expression!r}")
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{expression!r} has {len(parts)} field(s); a cron expression has 5: minute hour day-of-month month day-of-week"
        )
    values = []
    for part, (name, low, high, names, offset) in zip(parts, _FIELDS):
        values.append(_field(part, name, low, high, names, offset, expression))
    weekdays = frozenset(v % 7 for v in values[4])
    return Cron(
        expression=expression.strip(),
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )


def _field(text: str, name: str, low: int, high: int, names, offset: int, expression: str) -> frozenset[int]:
    def number(token: str) -> int:
        token = token.strip().lower()
        if names and token in names:
            return names.index(token) + offset
        if not token.isdigit():
            raise CronError(f"{expression!r}: {name} field: {token!r} is not a number{' or a name' if names else ''}")
        value = int(token)
        if not low <= value <= high:
            raise CronError(f"{expression!r}: {name} field: {value} is outside {low}-{high}")
        return value

    result: set[int] = set()
    for item in text.split(","):
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{expression!r}: {name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise CronError(f"{expression!r}: {name} field: range {body!r} runs backwards")
        else:
            first = number(body)
            last = high if slash else first
        result.update(range(first, last + 1, step))
    return frozenset(result)
