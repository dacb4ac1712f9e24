"""One schedule, written for each scheduler in its own dialect: exactly, or refused naming what it lacks.

The model is the project's reading of a cron expression (``envfence.cron``:
cronie's rules, plus ``L``, ``LW`` and ``#``). Each target gets an
expression it reads as the same days and times, never an approximation:

- **crontab** (cronie, Vixie/Debian cron): the declared text when cronie's
  grammar takes it (``src/entry.c``, ``get_range``: ``*``, ``*/n``, ``a``,
  ``a-b``, ``a-b/n``, names); a field cronie refuses but can say otherwise
  (``1/3``: cronie has no step after a single number) is written as a list;
  ``L``, ``LW`` and ``#`` have no crontab form.
- **kubernetes** (robfig/cron ``ParseStandard``): weekdays 0-6 only, no
  ``L``/``W``/``#``; it ORs the day fields unless one holds ``*`` or ``?``
  with no step above 1 (``spec.go`` ``dayMatches``, ``parser.go``
  ``getRange``). A "both day fields must match" schedule whose day fields
  are both restricted has no robfig form.
- **systemd** (``OnCalendar=``, systemd.time(7)): weekday and date in one
  spec AND; several ``OnCalendar=`` lines OR. ``L`` is ``~01``, the last
  Friday ``Fri *-*~07/1``, the first Monday ``Mon *-*-01..07``; ``LW`` has
  no form.
"""

from __future__ import annotations

import re

from envfence.cron import FieldSets, parse
from envfence.errors import ConfigurationError

_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_NAME = r"[A-Za-z]{3}"
# cronie's get_range: "*" ["/" step] | value ["-" value ["/" step]]; a step after a single value is refused.
_CRONIE_ITEM = rf"(\*(/[1-9]\d*)?|(\d+|{_NAME})(-(\d+|{_NAME})(/[1-9]\d*)?)?)"
_CRONIE_FIELD = re.compile(rf"{_CRONIE_ITEM}(,{_CRONIE_ITEM})*")
# robfig's getRange for minute, hour and month: the same, a step after a single value running to the field's end.
_ROBFIG_ITEM = rf"(\*|(\d+|{_NAME})(-(\d+|{_NAME}))?)(/[1-9]\d*)?"
_ROBFIG_FIELD = re.compile(rf"{_ROBFIG_ITEM}(,{_ROBFIG_ITEM})*")
_FULL = {"minutes": 60, "hours": 24, "days": 31, "months": 12}


class Untranslatable(ConfigurationError):
    """A schedule the target cannot say exactly; the message names the target and what it lacks."""


def _refuse(expression: str, target: str, lacks: str) -> Untranslatable:
    return Untranslatable(f"{expression!r} cannot be written for {target}: {lacks}",
                          f"give the automation a schedule {target} can say, or choose another [schedule] target")


def _ranges(values) -> str:
    """Sorted numbers as a cron list, runs of three or more as ranges: ``1-5,7``."""
    items, run = [], []
    for value in sorted(values):
        if run and value == run[-1] + 1:
            run.append(value)
            continue
        if run:
            items.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
        run = [value]
    if run:
        items.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
    return ",".join(items)


def _special(sets: FieldSets) -> str | None:
    """What of ``L``, ``LW`` and ``#`` the schedule uses, in words, or None."""
    if FieldSets.LAST_WEEKDAY in sets.days:
        return "the last weekday of the month (LW)"
    if FieldSets.LAST in sets.days:
        return "the last day of the month (L)"
    if any(isinstance(d, tuple) for d in sets.weekdays):
        return "an nth or last weekday of the month (# or L in day of week)"
    return None


def crontab(expression: str) -> str:
    """The five fields cronie reads as ``expression`` is read."""
    cron = parse(expression)
    sets = cron.sets
    if (lacks := _special(sets)) is not None:
        raise _refuse(expression, "crontab (cronie, Vixie and Debian cron)", f"cron has no way to say {lacks}")
    fields = cron.fields.split()
    values = (sets.minutes, sets.hours, {d for d in sets.days}, sets.months, sets.weekdays)
    # A rewritten field never starts with '*' and never did (a '*' field is always cronie's): the day rule stays.
    return " ".join(text if _CRONIE_FIELD.fullmatch(text) else _ranges(vals) for text, vals in zip(fields, values))


def kubernetes(expression: str) -> str:
    """The five fields robfig/cron (Kubernetes' CronJob controller) reads as ``expression`` is read."""
    cron = parse(expression)
    sets = cron.sets
    target = "Kubernetes (robfig/cron)"
    if (lacks := _special(sets)) is not None:
        raise _refuse(expression, target, f"robfig/cron has no way to say {lacks}")
    fields = cron.fields.split()
    out = [text if _ROBFIG_FIELD.fullmatch(text) else _ranges(vals)
           for text, vals in zip(fields[:2], (sets.minutes, sets.hours))]
    month = fields[3] if _ROBFIG_FIELD.fullmatch(fields[3]) else _ranges(sets.months)
    days_full, weekdays_full = len(sets.days) == 31, len(sets.weekdays) == 7
    if not sets.day_and:  # either day field: robfig ORs two fields that hold no '*'
        day, weekday = _ranges(sets.days), _ranges(sets.weekdays)
    elif days_full:
        day, weekday = "*", "*" if weekdays_full else _ranges(sets.weekdays)
    elif weekdays_full:
        day, weekday = _ranges(sets.days), "*"
    else:
        raise _refuse(expression, target, f"it means days {fields[2]} that are also weekdays {fields[4]}, and robfig/cron "
                      "reads two restricted day fields as either one (it ORs them)")
    return " ".join([*out, day, month, weekday])


def on_calendar(expression: str, zone: str | None = None) -> list[str]:
    """``OnCalendar=`` values (systemd ORs them) that fire when ``expression`` does, in ``zone``."""
    cron = parse(expression)
    sets = cron.sets
    if FieldSets.LAST_WEEKDAY in sets.days:
        raise _refuse(expression, "systemd timers", "OnCalendar= has no 'last weekday of the month' (LW)")

    def listing(values, key: str) -> str:
        return "*" if len(values) == _FULL[key] else ",".join(f"{v:02d}" for v in sorted(values))

    minute, hour, month = listing(sets.minutes, "minutes"), listing(sets.hours, "hours"), listing(sets.months, "months")
    suffix = f" {zone}" if zone else ""  # systemd reads a trailing zone name; without one, the machine's zone
    return [f"{prefix}*-{month}{day} {hour}:{minute}:00{suffix}" for prefix, day in _day_specs(expression, sets)]


def _day_specs(expression: str, sets: FieldSets) -> list[tuple[str, str]]:
    """(weekday prefix, day part) pairs whose union is the schedule's days."""
    days = sorted(d for d in sets.days if d > 0)
    plain = sorted(d for d in sets.weekdays if isinstance(d, int))
    nth = sorted(d for d in sets.weekdays if isinstance(d, tuple))
    date_specs = ([("", "-" + (",".join(f"{d:02d}" for d in days) if len(days) < 31 else "*"))] if days else []) + (
        [("", "~01")] if FieldSets.LAST in sets.days else [])
    week_specs = ([(",".join(_WEEKDAYS[d] for d in plain) + " ", "-*")] if plain else []) + [_nth(d) for d in nth]
    if not sets.day_and:
        return date_specs + week_specs  # cron fires on either field: one OnCalendar= each
    if len(sets.weekdays) == 7:
        return date_specs
    if len(days) == 31:
        return week_specs
    # Both restricted and both must match: a weekday prefix on a date ANDs in one spec.
    if nth or FieldSets.LAST in sets.days:
        raise _refuse(expression, "systemd timers", "OnCalendar= cannot combine an nth or last weekday, or the last day, "
                      "with other days of the month in one schedule")
    return [(prefix, day) for prefix, _ in week_specs for _, day in date_specs]


def _nth(weekday: tuple[int, int]) -> tuple[str, str]:
    """``Mon#2`` as ``Mon *-*-08..14``; the last Friday as ``Fri *-*~07/1`` (from the 7th-last day to the end)."""
    day, n = weekday
    if n == FieldSets.LAST:
        return f"{_WEEKDAYS[day]} ", "~07/1"
    first = 7 * (n - 1) + 1
    return f"{_WEEKDAYS[day]} ", f"-{first:02d}..{min(first + 6, 31):02d}"


TRANSLATORS = {"crontab": crontab, "kubernetes": kubernetes, "systemd": on_calendar}


def check(expression: str, target: str) -> None:
    """Raise :class:`Untranslatable` when ``target`` cannot say ``expression`` exactly."""
    TRANSLATORS[target](expression)
