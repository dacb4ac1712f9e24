"""One schedule, read back by each scheduler that runs it: the same days and times, or a refusal naming the target.

Three readers, each independent of envfence's code:

- cronie's grammar and day rule, from its source (github.com/cronie-crond/cronie, ``src/entry.c``:
  ``get_range``'s states, ``get_number``, ``set_element``; the ``DOM_STAR``/``DOW_STAR`` flags set when a
  day field's first character is ``*``; Sunday as 0 and 7; ``src/cron.c``: a day matches both day fields
  when either flag is set, else either);
- robfig/cron v3 ``ParseStandard``, the parser Kubernetes validates and fires CronJobs with, from its
  source (github.com/robfig/cron, ``parser.go`` ``getRange``/``parseIntOrName``, ``spec.go`` bounds and
  ``dayMatches``);
- systemd's own ``systemd-analyze calendar``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess

import pytest

from envfence.cron import parse

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
UTC = dt.timezone.utc
DAYS = [dt.date(2028, 1, 1) + dt.timedelta(days=i) for i in range(2 * 366)]  # two years, a leap day included

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DOWS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


# --- cronie (src/entry.c) -----------------------------------------------------------------------------------


def cronie_field(text: str, low: int, high: int, names: list[str] | None) -> set[int] | None:
    """cronie's get_list/get_range: the values of one field, or None where cronie says "bad <field>"."""
    values: set[int] = set()

    def number(token: str) -> int | None:  # get_number: all digits, else a name compared whole (strcasecmp)
        if token.isdigit():
            return int(token)
        if names and token.lower() in names:
            return names.index(token.lower()) + low
        return None

    for item in text.split(","):
        match = re.fullmatch(r"(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/([0-9]+))?", item)
        if not match:
            return None  # '#', 'L' after a digit, '?', two slashes: no state of get_range takes them
        first, second, step = match.groups()
        if first == "*":
            if second is not None:
                return None  # R_AST accepts only '/' or a separator
            lo, hi = low, high
        else:
            lo = number(first)
            if lo is None:
                return None
            if second is None:
                if step is not None:
                    return None  # R_NUM1: a '/' after a single number is refused
                hi = lo
            else:
                hi = number(second)
                if hi is None:
                    return None
                if lo > hi and hi == 0:
                    hi = 7  # R_RANGE_NUM2: "5-0" runs to 7 in day of week
        stride = int(step) if step is not None else 1
        if stride == 0:
            return None
        for value in range(lo, hi + 1, stride):
            if not low <= value <= high:
                return None  # set_element
            values.add(value)
    return values


def cronie_days(fields: list[str]) -> set[dt.date] | None:
    """The days a five-field entry fires on, as cronie reads it, or None when cronie refuses it."""
    dom = cronie_field(fields[2], 1, 31, None)
    months = cronie_field(fields[3], 1, 12, _MONTHS)
    dow = cronie_field(fields[4], 0, 7, _DOWS)
    if None in (cronie_field(fields[0], 0, 59, None), cronie_field(fields[1], 0, 23, None), dom, months, dow):
        return None
    if 0 in dow or 7 in dow:
        dow |= {0, 7}  # "make sundays equivalent"
    star = fields[2].startswith("*") or fields[4].startswith("*")
    found = set()
    for day in DAYS:
        on_dom, on_dow = day.day in dom, day.isoweekday() % 7 in dow
        if day.month in months and ((on_dom and on_dow) if star else (on_dom or on_dow)):
            found.add(day)
    return found


# --- robfig/cron v3 (parser.go, spec.go) ---------------------------------------------------------------------

STAR_BIT = "star"


def robfig_field(text: str, low: int, high: int, names: list[str] | None) -> tuple[set[int], bool]:
    """getField/getRange: (values, star bit); ValueError where ParseStandard returns an error."""
    values, star = set(), False
    for expr in [e for e in text.split(",") if e]:  # strings.FieldsFunc drops empty items
        range_and_step = expr.split("/")
        low_and_high = range_and_step[0].split("-")
        single = len(low_and_high) == 1
        extra = False
        if low_and_high[0] in ("*", "?"):
            start, end, extra = low, high, True
        else:
            start = _robfig_int(low_and_high[0], names, low)
            if len(low_and_high) == 1:
                end = start
            elif len(low_and_high) == 2:
                end = _robfig_int(low_and_high[1], names, low)
            else:
                raise ValueError("too many hyphens")
        if len(range_and_step) == 1:
            step = 1
        elif len(range_and_step) == 2:
            step = _robfig_int(range_and_step[1], None, 0)
            if single:
                end = high  # "N/step" means "N-max/step"
            if step > 1:
                extra = False
        else:
            raise ValueError("too many slashes")
        if start < low or end > high or start > end or step == 0:
            raise ValueError(f"bad range {expr}")
        values |= set(range(start, end + 1, step))
        star = star or extra
    return values, star


def _robfig_int(token: str, names: list[str] | None, low: int) -> int:
    if names and token.lower() in names:
        return names.index(token.lower()) + low
    number = int(token)  # strconv.Atoi; a ValueError is its error
    if number < 0:
        raise ValueError("negative number")
    return number


def robfig_days(spec: str) -> tuple[set[int], set[int], set[dt.date]]:
    """(minutes, hours, days) robfig/cron fires a ParseStandard spec on."""
    fields = spec.split()
    assert len(fields) == 5, spec
    minutes, _ = robfig_field(fields[0], 0, 59, None)
    hours, _ = robfig_field(fields[1], 0, 23, None)
    dom, dom_star = robfig_field(fields[2], 1, 31, None)
    months, _ = robfig_field(fields[3], 1, 12, _MONTHS)
    dow, dow_star = robfig_field(fields[4], 0, 6, _DOWS)
    found = set()
    for day in DAYS:
        on_dom, on_dow = day.day in dom, day.isoweekday() % 7 in dow
        if day.month in months and ((on_dom and on_dow) if dom_star or dow_star else (on_dom or on_dow)):
            found.add(day)
    return minutes, hours, found


def model_days(expression: str) -> set[dt.date]:
    cron = parse(expression)
    return {day for day in DAYS if cron.matches_day(day)}


def test_the_readers_of_this_test_follow_their_sources():
    # cronie refuses what its crontab -T refuses (issue 25: 1/3, 6/1, L and #), takes 7 and 0-7 as Sunday.
    for refused in ("0 0 * * 1/3", "0 0 * * 6/1", "0 0 L * *", "0 0 * * 5L", "0 0 * * 1#1", "0 0 ? * *"):
        assert cronie_days(refused.split()) is None, refused
    assert cronie_days("0 0 * * 0-7".split()) == cronie_days("0 0 * * *".split())
    # robfig: 7 and L refused; */2 with 1 ORs (odd days or Mondays); 1/3 is Monday and Thursday.
    for refused in ("0 0 * * 7", "0 0 * * 0,7", "0 0 * * 5-7", "0 0 L * *", "0 0 * * 1#1"):
        with pytest.raises(ValueError):
            robfig_days(refused)
    _, _, days = robfig_days("0 0 */2 * 1")
    assert dt.date(2028, 1, 3) in days and dt.date(2028, 1, 5) in days  # Monday the 3rd (odd), Wednesday the 5th
    assert dt.date(2028, 1, 10) in days  # an even Monday: OR
    _, _, days = robfig_days("0 0 * * 1/3")
    assert {d.isoweekday() % 7 for d in days} == {1, 4}


EXPRESSIONS = [
    "0 2 * * *", "*/15 8-18 * * mon-fri", "30 4 1,15 * sun", "0 0 */2 * 1", "0 0 * * 1/3", "0 0 * * 3/2",
    "0 0 * * 6/1", "0 0 1 * 1", "0 0 13 * 5", "0 0 * * 7", "0 0 * * 0,7", "0 0 * * 0-7", "0 0 * * 5-7",
    "0 0 29 2 *", "0 0 29 2 1", "0 0 31 * *", "0 0 L * *", "0 0 L 2 *", "0 0 * * 5L", "0 0 * * 1#1",
    "0 0 * * 5#2", "0 0 * * 1#5", "0 0 L * 5", "0 0 1-15 * */2", "0 0 */3 * mon-fri", "5/10 3/4 * 2/5 *",
    "0 9 * jan,jul *", "0 12 *,10 * 2", "0 0 1-31 * 1", "0 0 10-20/5 * *", "@weekly", "@monthly", "@yearly",
    "59 23 31 12 *", "0 0 LW * *", "0 0 */2 * 5L",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_crontab_target_gets_what_cronie_reads_as_the_same_days_or_a_refusal(expression):
    from envfence_builtins.operations import schedule_dialects as dialects

    try:
        written = dialects.crontab(expression)
    except dialects.Untranslatable as exc:
        assert "crontab" in exc.message and re.search(r"\b(L|LW|#)\b", exc.message)
        assert any(mark in parse(expression).fields for mark in ("L", "#"))
        return
    days = cronie_days(written.split())
    assert days is not None, f"cronie refuses {written!r}"
    assert days == model_days(expression), written
    sets = parse(expression).sets
    assert cronie_field(written.split()[0], 0, 59, None) == set(sets.minutes)
    assert cronie_field(written.split()[1], 0, 23, None) == set(sets.hours)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_kubernetes_target_gets_what_robfig_reads_as_the_same_days_or_a_refusal(expression):
    from envfence_builtins.operations import schedule_dialects as dialects

    try:
        written = dialects.kubernetes(expression)
    except dialects.Untranslatable as exc:
        assert "Kubernetes (robfig/cron)" in exc.message
        return
    minutes, hours, days = robfig_days(written)
    sets = parse(expression).sets
    assert (minutes, hours) == (set(sets.minutes), set(sets.hours)), written
    assert days == model_days(expression), written


def test_robfig_refuses_exactly_what_has_no_robfig_form():
    from envfence_builtins.operations import schedule_dialects as dialects

    for expression, lacks in (("0 0 */2 * 1", "ORs them"), ("0 0 L * *", "(L)"), ("0 0 * * 1#1", "#")):
        with pytest.raises(dialects.Untranslatable) as caught:
            dialects.kubernetes(expression)
        assert lacks in caught.value.message
    assert dialects.kubernetes("0 0 * * 1/3") == "0 0 * * 0,1,4"  # robfig alone would drop Sunday
    assert dialects.kubernetes("0 0 * * 7") == "0 0 * * 0"


# --- systemd ----------------------------------------------------------------------------------------------------

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed; Debian: apt-get install systemd")


def systemd_elapses(calendars: list[str], count: int, base: str) -> list[dt.datetime]:
    """The union of the calendars' next ``count`` elapses after ``base``, as systemd computes them, in UTC."""
    found = set()
    for calendar in calendars:
        out = subprocess.run(["systemd-analyze", "calendar", f"--iterations={count}", f"--base-time={base}", calendar],
                             capture_output=True, text=True, env={**os.environ, "TZ": "UTC"})
        assert out.returncode == 0, (calendar, out.stderr)
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", out.stdout):
            found.add(dt.datetime.fromisoformat(stamp).replace(tzinfo=UTC))
    return sorted(found)[:count]


def model_firings(expression: str, start: dt.datetime, count: int, target: str) -> list[dt.datetime]:
    cron, moment, out = parse(expression), start, []
    for _ in range(count):
        moment = cron.next_after(moment, target)
        out.append(moment.astimezone(UTC))
    return out


@needs_systemd
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_systemd_target_fires_when_the_schedule_does_or_is_refused(expression):
    from envfence_builtins.operations import schedule_dialects as dialects

    try:
        calendars = dialects.on_calendar(expression, "UTC")
    except dialects.Untranslatable as exc:
        assert "systemd timers" in exc.message
        assert expression in ("0 0 LW * *", "0 0 */2 * 5L")
        return
    start = dt.datetime(2027, 12, 30, 12, tzinfo=UTC)
    expected = model_firings(expression, start, 12, "systemd")
    assert systemd_elapses(calendars, 12, "2027-12-30 12:00 UTC") == expected, calendars


@needs_systemd
@pytest.mark.parametrize("expression, base", [
    ("30 2 * * *", "2026-03-28 12:00 UTC"),  # the spring-forward night: systemd skips 02:30
    ("30 2 * * *", "2026-10-24 12:00 UTC"),  # the repeated hour: once, in summer time
    ("*/20 * * * *", "2026-10-24 23:30 UTC"),
    ("*/20 * * * *", "2026-03-29 00:30 UTC"),
    ("0 1-3 * * *", "2026-10-24 22:00 UTC"),
])
def test_systemd_firings_across_daylight_saving_are_systemds(expression, base):
    from zoneinfo import ZoneInfo

    from envfence_builtins.operations import schedule_dialects as dialects

    calendars = dialects.on_calendar(expression, "Europe/Berlin")
    start = dt.datetime.fromisoformat(base.replace(" UTC", "")).replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert systemd_elapses(calendars, 8, base) == model_firings(expression, start, 8, "systemd")


def test_robfig_skips_the_missing_hour_and_fires_twice_in_the_repeated_one():
    # spec.go Next: it steps with t.Add(1 * time.Hour) / t.Add(1 * time.Minute) in the location, so a wall time
    # that does not exist is never reached and one that exists twice is reached twice.
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    spring = model_firings("30 2 * * *", dt.datetime(2026, 3, 28, 12, tzinfo=UTC).astimezone(berlin), 2, "kubernetes")
    assert spring == [dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC), dt.datetime(2026, 3, 31, 0, 30, tzinfo=UTC)]
    autumn = model_firings("30 2 * * *", dt.datetime(2026, 10, 24, 12, tzinfo=UTC).astimezone(berlin), 3, "kubernetes")
    assert autumn[:2] == [dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC), dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)]
    cron = model_firings("30 2 * * *", dt.datetime(2026, 3, 28, 12, tzinfo=UTC).astimezone(berlin), 1, "crontab")
    assert cron == [dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]  # cronie runs it when the skipped hour ends


# --- through the CLI ----------------------------------------------------------------------------------------


def _project(make_project, schedule: str, target: str, extra: str = "", name: str = "proj"):
    return make_project({"jobs.py": JOBS}, name=name, settings=f'timezone = "Europe/Berlin"\n[automations.nightly]\nrun = "jobs:ok"\n'
                        f'schedule = "{schedule}"\n[schedule]\ntarget = "{target}"\nimage = "app:1"\n{extra}')


@pytest.mark.parametrize("schedule, target, says", [
    ("0 0 */2 * 1", "kubernetes", "Kubernetes (robfig/cron)"),
    ("0 0 * * 5L", "crontab", "crontab (cronie"),
    ("0 0 LW * *", "systemd", "systemd timers"),
])
def test_check_refuses_a_schedule_the_target_cannot_say_naming_the_target(make_project, run_cli, schedule, target, says):
    root = _project(make_project, schedule, target)
    checked = run_cli("check", cwd=root)
    assert checked.exit_code == 1 and "SCHEDULE_UNSUPPORTED" in checked.output and says in checked.output, checked.output
    shown = run_cli("schedule", cwd=root)
    assert shown.exit_code == 4 and says in shown.stderr and "Traceback" not in shown.output


def test_the_target_picks_the_default_format_and_gets_its_exact_form(make_project, run_cli):
    root = _project(make_project, "0 0 * * 5L", "systemd")
    assert run_cli("check", cwd=root).exit_code == 0
    units = json.loads(run_cli("--json", "schedule", cwd=root).stdout)
    assert units["format"] == "systemd"
    assert "OnCalendar=Fri *-*~07/1 00:00:00 Europe/Berlin\n" in units["artefact"]["envfence-development-nightly.timer"]
    root = _project(make_project, "0 0 * * 1/3", "kubernetes")
    [job, health] = json.loads(run_cli("schedule", cwd=root).stdout)["items"]
    assert job["spec"]["schedule"] == "0 0 * * 0,1,4"
    assert health["metadata"]["name"] == "envfence-health-development"
    assert re.fullmatch(r"(\*|[0-4]-59)/5 \* \* \* \*", health["spec"]["schedule"])  # staggered within its five minutes


def test_an_unknown_target_is_a_clear_error(make_project, run_cli):
    root = _project(make_project, "0 2 * * *", "launchd")
    checked = run_cli("check", cwd=root)
    assert checked.exit_code == 1 and "launchd" in checked.output and "one of 'crontab', 'systemd', 'kubernetes'" in checked.output


def _health_at(run_cli, root, now, monkeypatch):
    monkeypatch.setattr("envfence_builtins.operations.health_checks.utcnow", lambda: now)
    result = run_cli("--json", "health", cwd=root)
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}["nightly.expected_every"]


def _record(root, started: dt.datetime) -> None:
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root)
    outcome = RunOutcome(f"run-nightly-{started:%m%d%H%M}", "nightly", "development", "succeeded", 0, started,
                         started + dt.timedelta(seconds=5), metrics={"host": "build-box-01"})
    history.on_run_finish(session, RunRequest(Automation("nightly")), outcome)


def test_health_never_calls_missed_a_run_systemd_legitimately_skipped(make_project, run_cli, monkeypatch):
    # 29 March 2026, 03:20 in Berlin: 02:30 never happened. cronie ran it at 03:00; systemd made no run.
    now = dt.datetime(2026, 3, 29, 1, 20, tzinfo=UTC)
    for target, state in (("crontab", "CRITICAL"), ("systemd", "OK")):
        root = _project(make_project, "30 2 * * *", target)
        _record(root, dt.datetime(2026, 3, 28, 1, 30, 4, tzinfo=UTC))  # Saturday's 02:30
        check = _health_at(run_cli, root, now, monkeypatch)
        assert check["state"] == state, (target, check)


def test_health_expects_the_second_run_kubernetes_makes_in_the_repeated_hour(make_project, run_cli, monkeypatch):
    # 25 October 2026, 02:50 CET: robfig fired 02:30 in summer time and again in winter time.
    now = dt.datetime(2026, 10, 25, 1, 50, tzinfo=UTC)
    for target, state in (("crontab", "OK"), ("kubernetes", "CRITICAL")):
        root = _project(make_project, "30 2 * * *", target)
        _record(root, dt.datetime(2026, 10, 25, 0, 30, 4, tzinfo=UTC))  # the first 02:30 only
        check = _health_at(run_cli, root, now, monkeypatch)
        assert check["state"] == state, (target, check)


def test_check_says_where_the_target_fires_otherwise_than_cron_across_daylight_saving(make_project, run_cli):
    root = _project(make_project, "30 2 * * *", "systemd")
    checked = run_cli("check", cwd=root)
    assert checked.exit_code == 0, checked.output
    assert "SCHEDULE_DAYLIGHT_SAVING" in checked.output
    assert "systemd fires at no time, where cron would fire at 03:00 CEST" in checked.output  # the spring-forward night
    robfig = run_cli("check", cwd=_project(make_project, "30 2 * * *", "kubernetes", name="k8s"))
    assert "SCHEDULE_DAYLIGHT_SAVING" in robfig.output and "kubernetes fires at" in robfig.output
    midday = run_cli("check", cwd=_project(make_project, "0 12 * * *", "systemd", name="noon"))
    assert midday.exit_code == 0 and "SCHEDULE_DAYLIGHT_SAVING" not in midday.output


def _health_schedules(run_cli, root, env: str) -> dict[str, str]:
    """The health check's schedule as each target writes it: the crontab line's fields, the CronJob's, systemd's OnCalendar."""
    crontab = [line for line in run_cli("--env", env, "schedule", "--format", "crontab", cwd=root).stdout.splitlines()
               if line.endswith("health --alert")]
    [health] = [i for i in json.loads(run_cli("--env", env, "schedule", "--format", "kubernetes", cwd=root).stdout)["items"]
                if i["metadata"]["name"].startswith("envfence-health")]
    units = json.loads(run_cli("--env", env, "--json", "schedule", "--format", "systemd", cwd=root).stdout)["artefact"]
    [timer] = [text for name, text in units.items() if name.endswith("envfence-health.timer")]
    calendars = re.findall(r"^OnCalendar=(.*)$", timer, re.M)
    return {"crontab": " ".join(crontab[0].split()[:5]), "kubernetes": health["spec"]["schedule"], "systemd": "\n".join(calendars)}


def test_the_health_check_is_staggered_per_project_environment_and_host_and_still_fires_every_five_minutes(
        make_project, run_cli, monkeypatch):
    phases, seen = set(), {}
    for project in ("billing", "crm", "warehouse"):
        root = _project(make_project, "0 3 * * *", "crontab", name=project)
        for host in ("build-box-01", "build-box-02", "build-box-03"):
            monkeypatch.setenv("ENVFENCE_HOSTNAME", host)
            for env in ("development", "production"):
                written = _health_schedules(run_cli, root, env)
                assert _health_schedules(run_cli, root, env) == written  # the same host and project: the same minutes
                # cronie and robfig (Kubernetes) read the same twelve minutes an hour, five minutes apart, every hour.
                minutes = sorted(cronie_field(written["crontab"].split()[0], 0, 59, None))
                assert written["crontab"].split()[1:] == ["*", "*", "*", "*"]
                robfig_minutes, robfig_hours, _ = robfig_days(written["kubernetes"])
                assert robfig_minutes == set(minutes) and robfig_hours == set(range(24))
                assert len(minutes) == 12 and {(b - a) % 60 for a, b in zip(minutes, minutes[1:] + minutes[:1])} == {5}
                phases.add(minutes[0])
                seen[(project, host, env)] = minutes[0]
    # Eighteen checks no longer all fire at :00, :05, ...: they are spread over the five minutes of the period.
    assert len(phases) >= 3, seen


@needs_systemd
def test_systemd_fires_the_staggered_health_check_when_cron_would(make_project, run_cli):
    root = _project(make_project, "0 3 * * *", "crontab", name="billing")
    written = _health_schedules(run_cli, root, "production")
    start = dt.datetime(2027, 12, 30, 12, tzinfo=UTC)
    expected = model_firings(written["crontab"], start, 24, "systemd")
    assert systemd_elapses(written["systemd"].splitlines(), 24, "2027-12-30 12:00 UTC") == expected, written
