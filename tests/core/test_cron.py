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
        ("61 * * * *", "minute field '61' is not valid; it takes 0-59"),
        ("* * * foo *", "month field 'foo' is not valid; it takes 1-12 or jan-dec"),
        ("*/0 * * * *", "minute field '*/0' is not valid"),
        ("5-1 * * * *", "minute field '5-1' is not valid"),
        ("* * * * 8", "day of week field '8' is not valid; it takes 0-7 or sun-sat"),
        ("0 0 30 2 *", "never fires: no month it names has day 30"),
        ("0 0 31 4,6,9,11 *", "never fires: no month it names has day 31"),
        # A day field cron cannot read is not a day no month has.
        ("0 0 15W * *", "day of month field '15W' is not valid; it takes 1-31"),
        ("0 0 ? * *", "day of month field '?' is not valid"),
        ("0 0 L-3 2 *", "day of month field 'L-3' is not valid"),
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


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        # A day field starting with * is unrestricted and ANDs with the other (cronie, Vixie cron).
        ("0 0 */2 * 1", ["Mon 05 Jan", "Mon 19 Jan", "Mon 09 Feb", "Mon 23 Feb"]),
        ("0 12 *,10 * 2", ["Tue 06 Jan", "Tue 13 Jan", "Tue 20 Jan", "Tue 27 Jan"]),
        # Both restricted: either matches.
        ("0 0 10 * 2", ["Tue 06 Jan", "Sat 10 Jan", "Tue 13 Jan", "Tue 20 Jan"]),
        # N/step runs to the field's end, 7 included: 1,4,7 is Monday, Thursday, Sunday (cronie).
        ("0 0 * * 1/3", ["Sun 04 Jan", "Mon 05 Jan", "Thu 08 Jan", "Sun 11 Jan"]),
        ("0 0 L * *", ["Sat 31 Jan", "Sat 28 Feb", "Tue 31 Mar", "Thu 30 Apr"]),
        ("0 0 * * 5#2", ["Fri 09 Jan", "Fri 13 Feb", "Fri 13 Mar", "Fri 10 Apr"]),
    ],
)
def test_day_fields_follow_cronie(expression, fires):
    moment = dt.datetime(2026, 1, 1, tzinfo=UTC)
    seen = []
    for _ in fires:
        moment = parse(expression).next_after(moment)
        seen.append(f"{moment:%a %d %b}")
    assert seen == fires


def _next_run(run_cli, root, env=None):
    import json

    result = run_cli("--json", "list", cwd=root, env=env)
    [item] = json.loads(result.stdout)["automations"]
    return dt.datetime.fromisoformat(item["next_run"])


JOB = '[automations.job]\nrun = ["true"]\nschedule = "0 2 * * *"\n'


def test_list_reads_schedules_in_the_timezone_setting_and_cron_tz_overrides_it(make_project, run_cli):
    from zoneinfo import ZoneInfo

    root = make_project(settings='timezone = "Asia/Tokyo"\n' + JOB)
    tokyo = _next_run(run_cli, root)
    assert (tokyo.hour, tokyo.minute) == (2, 0) and tokyo.utcoffset() == dt.timedelta(hours=9)
    assert tokyo > dt.datetime.now(ZoneInfo("Asia/Tokyo"))
    new_york = _next_run(run_cli, root, env={"CRON_TZ": "America/New_York"})
    assert new_york.hour == 2 and new_york.tzinfo is not None
    assert new_york.utcoffset() in (dt.timedelta(hours=-5), dt.timedelta(hours=-4))


def test_list_reads_schedules_in_the_machine_s_zone_by_default(make_project, run_cli):
    # TZ names the machine's zone, as /etc/localtime does when TZ is unset.
    root = make_project(settings=JOB)
    when = _next_run(run_cli, root, env={"TZ": "Australia/Adelaide"})
    assert when.hour == 2 and when.utcoffset() in (dt.timedelta(hours=9, minutes=30), dt.timedelta(hours=10, minutes=30))
    text = run_cli("list", cwd=root, env={"TZ": "Australia/Adelaide"}).stdout
    assert "next " in text and " UTC" not in text and ("ACST" in text or "ACDT" in text)


def test_an_impossible_schedule_is_a_check_error(make_project, run_cli):
    root = make_project(settings=JOB.replace("0 2 * * *", "0 0 30 2 *"))
    result = run_cli("check", cwd=root)
    assert result.exit_code == 1
    assert "'0 0 30 2 *' never fires: no month it names has day 30" in result.stdout


def test_a_zone_name_too_long_for_a_file_is_no_time_zone_not_a_crash(make_project, run_cli):
    root = make_project(settings=JOB)
    result = run_cli("check", cwd=root, env={"CRON_TZ": "Europe/" + "x" * 5000})
    assert result.exit_code == 1, result.output
    assert "CRON_TZ = 'Europe/xxx" in result.stdout and "is no time zone" in result.stdout
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_an_unknown_timezone_is_a_check_error(make_project, run_cli):
    root = make_project(settings='timezone = "Mars/Olympus"\n' + JOB)
    result = run_cli("check", cwd=root)
    assert result.exit_code == 1
    assert "timezone = 'Mars/Olympus' is no time zone" in result.stdout


def test_daylight_saving_is_handled_as_cronie_does():
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    cron = parse("30 2 * * *")
    # 29 March 2026 has no 02:30: the job runs as the clock jumps, at 03:00.
    spring = cron.next_after(dt.datetime(2026, 3, 28, 12, 0, tzinfo=berlin))
    assert (spring.day, spring.hour, spring.minute) == (29, 3, 0)
    # 25 October 2026 has 02:30 twice: the job runs once.
    first = cron.next_after(dt.datetime(2026, 10, 24, 12, 0, tzinfo=berlin))
    second = cron.next_after(first)
    assert (first.day, first.hour, first.minute) == (25, 2, 30) and (second.day, second.hour) == (26, 2)
