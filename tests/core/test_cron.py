"""Cron expressions: parsing, the next time, and collisions."""

from __future__ import annotations

import datetime as dt

import pytest

from envfence.cron import CronError, parse

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 2 * * *", "2026-11-25T01:59", "2026-11-25T02:00"),
        ("0 2 * * *", "2026-11-25T02:00", "2026-11-26T02:00"),
        ("*/15 * * * *", "2026-11-25T10:07", "2026-11-25T10:15"),
        ("30 9 * * mon-fri", "2026-11-27T10:00", "2026-11-30T09:30"),  # Friday after 9:30 -> Monday
        ("0 0 29 feb *", "2026-03-01T00:00", "2028-02-29T00:00"),
        ("@hourly", "2026-11-25T10:07", "2026-11-25T11:00"),
        ("0 12 1 * 0", "2026-11-25T00:00", "2026-11-29T12:00"),  # day 1 OR Sunday
        ("0 0 * * 7", "2026-11-25T00:00", "2026-11-29T00:00"),  # 7 is Sunday too
    ],
)
def test_next_time(expression, after, expected):
    moment = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert parse(expression).next_after(moment) == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * *", "has 4 field(s)"),
        ("61 * * * *", "minute field: 61 is outside 0-59"),
        ("* * * foo *", "month field: 'foo' is not a number or a name"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("5-1 * * * *", "runs backwards"),
        ("", "cron expression like"),
    ],
)
def test_bad_expressions_name_the_field(expression, words):
    with pytest.raises(CronError, match=None) as info:
        parse(expression)
    assert words in str(info.value)


def test_common_time():
    assert parse("0 2 * * *").common_time(parse("0 2 * * 1")) is not None
    assert parse("0 2 * * *").common_time(parse("30 2 * * *")) is None
    assert parse("0 2 1 * *").common_time(parse("0 2 * * *")) is not None
    assert parse("0 2 31 1 *").common_time(parse("0 2 * 2 *")) is None  # January 31 never meets February
