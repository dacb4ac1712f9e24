"""Next-fire times against croniter, an independent implementation, in the machine's local zone.

Where croniter reads an expression differently from cronie (which envfence
follows), the case gives the expression croniter must be handed to mean the
same thing, and why; the test proves croniter still differs on the original.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from envfence.cron import parse, schedule_zone

STAR_AND = "cronie: a day field starting with * ANDs with the other; croniter ORs unless day_or=False"
STEP_TO_7 = "cronie: N/step in day of week runs to 7 (Sunday); croniter stops at 6"

# (expression, croniter's equivalent or None, why it needs one)
EDGE = [
    ("0 0 */2 * 1", ("0 0 */2 * 1", False), STAR_AND),
    ("0 12 *,10 * 2", None, None),  # croniter reads *,10 as * too
    ("0 0 */3 * mon-fri", ("0 0 */3 * mon-fri", False), STAR_AND),
    ("0 0 1-15 * */2", ("0 0 1-15 * */2", False), STAR_AND),
    ("0 0 * * 1/3", ("0 0 * * 1,4,0", True), STEP_TO_7),
    ("0 0 * * 3/2", ("0 0 * * 3,5,0", True), STEP_TO_7),
    ("0 0 * * 2/2", None, None),  # 2, 4, 6: the step never reaches 7
    ("0 0 1 * 1", None, None),
    ("0 0 13 * 5", None, None),
    ("0 0 * * 7", None, None),
    ("0 0 * * 0,7", None, None),
    ("0 0 29 2 *", None, None),
    ("0 0 29 2 1", None, None),
    ("0 0 31 * *", None, None),
    ("0 0 30 1,3 *", None, None),
    ("0 0 L * *", None, None),
    ("0 0 L 2 *", None, None),
    ("0 0 * * 5#2", None, None),
    ("0 0 * * 1#1", None, None),
    ("59 23 31 12 *", None, None),
    ("0 0 1 1 *", None, None),
    ("*/7 * * * *", None, None),
    ("5-55/10 * * * *", None, None),
    ("0 */5 * * *", None, None),
    ("0 1-23/4 * * *", None, None),
    ("15,45 8-17 * * mon-fri", None, None),
    ("0 9 * jan,jul *", None, None),
    ("0 9 * */4 *", None, None),
    ("0 0 1,15 * *", None, None),
    ("0 0 10-20/5 * *", None, None),
    ("0 12 * * sun", None, None),
    ("0 12 * * SAT,SUN", None, None),
    ("30 2 * * *", None, None),
    ("@hourly", ("0 * * * *", True), "croniter's @hourly is the same five fields"),
    ("@daily", ("0 0 * * *", True), "croniter's @daily is the same five fields"),
    ("@weekly", ("0 0 * * 0", True), "croniter's @weekly is the same five fields"),
    ("@monthly", ("0 0 1 * *", True), "croniter's @monthly is the same five fields"),
    ("@yearly", ("0 0 1 1 *", True), "croniter's @yearly is the same five fields"),
]

# Generated plain expressions, where both agree: minutes x hours x day fields.
GENERATED = [
    f"{minute} {hour} {days} {months} {weekdays}"
    for minute, hour, (days, months, weekdays) in itertools.product(
        ["0", "*/15", "7,37", "59"],
        ["3", "*/6", "0,12"],
        [("*", "*", "*"), ("1", "*", "*"), ("*", "*", "1-5"), ("15", "2-11", "*"), ("1,15", "*", "0"), ("*", "6", "6")],
    )
]

CASES = [(e, r, w) for e, r, w in EDGE] + [(e, None, None) for e in GENERATED]
STARTS = [dt.datetime(2026, 1, 1), dt.datetime(2026, 2, 27, 23, 59), dt.datetime(2027, 12, 31, 12, 30), dt.datetime(2028, 2, 28, 0, 0, 30)]


def test_the_comparison_covers_at_least_100_expressions():
    assert len({e for e, _, _ in CASES}) >= 100


def _ours(expression, start, count=6):
    cron, times = parse(expression), []
    for _ in range(count):
        start = cron.next_after(start)
        times.append(start)
    return times


def _croniter(expression, start, day_or=True, count=6):
    from croniter import croniter

    it = croniter(expression, start, day_or=day_or)
    return [it.get_next(dt.datetime) for _ in range(count)]


@pytest.mark.parametrize(("expression", "reference", "why"), CASES, ids=[c[0] for c in CASES])
def test_next_fire_times_agree_with_croniter(expression, reference, why):
    zone = schedule_zone({})  # the machine's local zone, as cron reads the crontab
    for naive in STARTS:
        start = naive.replace(tzinfo=zone)
        ours = _ours(expression, start)
        if reference is None:
            assert ours == _croniter(expression, start)
            continue
        equivalent, day_or = reference
        assert ours == _croniter(equivalent, start, day_or), why
        if expression != equivalent or day_or is False:
            if not expression.startswith("@"):
                assert _croniter(expression, start) != ours, f"croniter now agrees on {expression!r}; drop: {why}"
