"""Option types shared by commands: ages such as ``30d`` and times such as ``2026-01-31``."""

from __future__ import annotations

import datetime as _dt
import re

import click

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# `30d` or, as loguru's retention and people write it, `30 days`, `12 hours`, `1 week`.
_AGE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE
)


class Age(click.ParamType):
    """An age: a number and a unit (``45m``, ``12h``, ``30d``, ``2w``, ``30 days``) as a timedelta."""

    name = "AGE"

    def convert(self, value, param, ctx):
        if isinstance(value, _dt.timedelta):
            return value
        match = _AGE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not an age; write a number and a unit: 45m, 12h, 30d, 2w or 30 days", param, ctx)
        try:
            return _dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()[0]])
        except OverflowError:
            self.fail(f"{value!r} is longer than any age envfence can count; write at most {_dt.timedelta.max.days}d", param, ctx)


class Since(click.ParamType):
    """A moment: an age back from now (``2h``, ``7d``) or an ISO date or time (UTC when no zone)."""

    name = "WHEN"

    def convert(self, value, param, ctx):
        if isinstance(value, _dt.datetime):
            return value
        now = _dt.datetime.now(_dt.timezone.utc)
        if _AGE.match(str(value)):
            return now - Age().convert(value, param, ctx)
        try:
            moment = _dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither an age (2h, 7d) nor an ISO date or time (2026-01-31T08:00)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)
