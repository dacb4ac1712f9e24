"""One zone for every schedule: the crontab, systemd timers, the CronJob, health's missed runs and stagger agree with `list`.

The machine runs in Europe/Paris here (``TZ``), so that UTC would be the wrong answer everywhere.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import subprocess
from zoneinfo import ZoneInfo

import pytest

from envfence.cron import parse

UTC = _dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")
JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SETTINGS = """
[automations.nightly]
run = "jobs:ok"
schedule = "30 2 * * *"

[automations.office]
run = "jobs:ok"
schedule = "*/15 8-18 * * mon-fri"
"""
NEW_YORK = 'timezone = "America/New_York"\n'
IMAGE = '\n[schedule]\nimage = "registry.local/app:1.4"\n'


@pytest.fixture(autouse=True)
def paris(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Paris")
    monkeypatch.delenv("CRON_TZ", raising=False)


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def entries(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_crontab_block_fires_in_the_zone_list_shows(project, run_cli):
    local = run_cli("--env", "production", "schedule", cwd=project)
    assert local.exit_code == 0, local.output
    assert "# times are in this machine's zone (Europe/Paris)" in local.stdout
    assert "CRON_TZ" not in local.stdout  # cron already uses the machine's zone

    (project / "envfence.toml").write_text(NEW_YORK + SETTINGS)
    block = run_cli("--env", "production", "schedule", cwd=project).stdout
    lines = entries(block)
    # CRON_TZ comes before the entries; the lines after the block get the machine's zone back.
    assert lines[0] == "CRON_TZ=America/New_York" and lines[-1] == "CRON_TZ=Europe/Paris"
    assert [line.split("-q ", 1)[1] for line in lines[1:-1]] == ["run nightly", "run office", "health --alert"]
    listed = {a["name"]: a for a in json.loads(run_cli("--json", "--env", "production", "list", cwd=project).stdout)["automations"]}
    upcoming = _dt.datetime.fromisoformat(listed["nightly"]["next_run"])
    assert upcoming.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "02:30"  # the time cron will fire it

    override = run_cli("--env", "production", "schedule", cwd=project, env={"CRON_TZ": "Asia/Tokyo"})
    assert entries(override.stdout)[0] == "CRON_TZ=Asia/Tokyo"


def test_an_unknown_zone_is_a_clear_error_not_a_broken_crontab(project, run_cli):
    (project / "envfence.toml").write_text('timezone = "Mars/Olympus"\n' + SETTINGS)
    result = run_cli("--env", "production", "schedule", cwd=project)
    assert result.exit_code == 4
    assert "'Mars/Olympus' is no time zone" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this host")
def test_systemd_timers_carry_the_zone_and_fire_when_cron_does(project, run_cli, tmp_path):
    (project / "envfence.toml").write_text(NEW_YORK + SETTINGS)
    units = tmp_path / "units"
    assert run_cli("--env", "production", "schedule", "--format", "systemd", "--output", str(units), cwd=project).exit_code == 0
    verify = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    timer = (units / "envfence-production-office.timer").read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", timer, re.M)[1]
    assert calendar.endswith(" America/New_York")
    # systemd's parser (elapses printed in UTC) agrees with cron's next firings in New York.
    out = subprocess.run(["systemd-analyze", "calendar", "--iterations=5", calendar], capture_output=True, text=True,
                         env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}, check=True).stdout
    systemd = [_dt.datetime.fromisoformat(t).replace(tzinfo=UTC)
               for t in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", out)]
    cron, moment, expected = parse("*/15 8-18 * * mon-fri"), _dt.datetime.now(ZoneInfo("America/New_York")), []
    for _ in range(5):
        moment = cron.next_after(moment)
        expected.append(moment.astimezone(UTC))
    assert systemd == expected


def test_the_cronjob_names_its_zone_or_says_it_fires_in_utc(project, run_cli):
    from kubernetes.client import ApiClient

    (project / "envfence.toml").write_text(SETTINGS + IMAGE)
    plain = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=project)
    assert plain.exit_code == 0, plain.output
    assert all("timeZone" not in item["spec"] for item in json.loads(plain.stdout)["items"])
    assert "fire in UTC, the cluster's default" in plain.stderr and "Europe/Paris" in plain.stderr

    (project / "envfence.toml").write_text(NEW_YORK + SETTINGS + IMAGE)
    zoned = run_cli("--env", "production", "schedule", "--format", "kubernetes", cwd=project)
    assert "UTC" not in zoned.stderr
    client = ApiClient()
    for item in json.loads(zoned.stdout)["items"]:
        job = client.deserialize(json.dumps(item), "V1CronJob", "application/json")
        assert job.spec.time_zone == "America/New_York"
        assert client.sanitize_for_serialization(job) == item


# --- health: the last expected firing in the schedules' zone ----------------------


def record(root, automation: str, started: _dt.datetime, env: str = "development") -> None:
    """A run that started at ``started``, recorded through the history plugin as a run would be."""
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env)
    outcome = RunOutcome(f"run-{automation}-{started:%Y%m%d%H%M}", automation, env, "succeeded", 0, started,
                         started + _dt.timedelta(seconds=5), metrics={"host": "build-box-01"})
    history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


def nightly(run_cli, root, now: _dt.datetime, monkeypatch, env: str = "development") -> tuple[int, dict]:
    monkeypatch.setattr("envfence_builtins.operations.health_checks.utcnow", lambda: now)
    result = run_cli("--json", "--env", env, "health", cwd=root)
    data = json.loads(result.stdout)
    return result.exit_code, {c["name"]: c for c in data["checks"]}["nightly.expected_every"]


@pytest.fixture
def single(make_project):
    return make_project({"jobs.py": JOBS}, settings='[automations.nightly]\nrun = "jobs:ok"\nschedule = "30 2 * * *"\n')


def test_a_run_missed_in_the_local_zone_is_critical_though_utc_would_call_it_on_time(single, run_cli, monkeypatch):
    now = _dt.datetime(2026, 6, 10, 1, 0, tzinfo=UTC)  # 03:00 in Paris: tonight's 02:30 (00:30 UTC) is due
    record(single, "nightly", _dt.datetime(2026, 6, 9, 2, 30, tzinfo=UTC))  # 02:30 UTC is 04:30 in Paris
    code, check = nightly(run_cli, single, now, monkeypatch)
    assert code == 2 and check["state"] == "CRITICAL"
    assert "was due at 2026-06-10 02:30 CEST" in check["message"]
    assert _dt.datetime.fromisoformat(check["limit"]) == _dt.datetime(2026, 6, 10, 0, 30, tzinfo=UTC)
    record(single, "nightly", _dt.datetime(2026, 6, 10, 0, 30, 5, tzinfo=UTC))
    assert nightly(run_cli, single, now, monkeypatch)[0] == 0


def test_missed_runs_across_daylight_saving_follow_cron(single, run_cli, monkeypatch):
    # 29 March 2026: 02:00 becomes 03:00 in Paris; cron runs the skipped 02:30 at 03:00 (01:00 UTC).
    spring = _dt.datetime(2026, 3, 29, 1, 20, tzinfo=UTC)
    record(single, "nightly", _dt.datetime(2026, 3, 28, 1, 30, tzinfo=UTC))
    code, check = nightly(run_cli, single, spring, monkeypatch)
    assert code == 2 and "was due at 2026-03-29 03:00 CEST" in check["message"]
    record(single, "nightly", _dt.datetime(2026, 3, 29, 1, 0, 2, tzinfo=UTC))
    code, check = nightly(run_cli, single, spring, monkeypatch)
    assert code == 0, check
    # 25 October 2026: 02:00-03:00 happens twice; cron fires 02:30 once, in summer time (00:30 UTC).
    record(single, "nightly", _dt.datetime(2026, 10, 25, 0, 30, 3, tzinfo=UTC))
    code, check = nightly(run_cli, single, _dt.datetime(2026, 10, 25, 1, 50, tzinfo=UTC), monkeypatch)  # 02:50 CET
    assert code == 0, check
    assert "was due at 2026-10-25 02:30 CEST" in check["message"]


def test_a_staggered_schedule_is_expected_when_it_is_installed(single, run_cli, monkeypatch):
    shared = '\n[hostname.development]\nhosts = ["build-box-*"]\n\n[hostname.production]\nhosts = ["build-box-*"]\n'
    (single / "envfence.toml").write_text('[automations.nightly]\nrun = "jobs:ok"\nschedule = "30 2 * * *"\n'
                                          "[schedule]\nstagger = true\n" + shared)
    moved = {env: json.loads(run_cli("--json", "--env", env, "schedule", cwd=single).stdout)["entries"][0]
             for env in ("development", "production")}
    env = next(e for e, entry in moved.items() if entry["stagger_minutes"] == 1)
    assert moved[env]["schedule"] == "31 2 * * *"
    now = _dt.datetime(2026, 6, 10, 1, 0, tzinfo=UTC)
    record(single, "nightly", _dt.datetime(2026, 6, 10, 0, 31, 4, tzinfo=UTC), env=env)  # 02:31 in Paris, as installed
    code, check = nightly(run_cli, single, now, monkeypatch, env)
    assert code == 0 and "was due at 2026-06-10 02:31 CEST (31 2 * * *) and ran" in check["message"]


def test_maintenance_windows_default_to_the_schedules_zone(make_project, run_cli, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings=NEW_YORK + '[automations]\nnightly = "jobs:ok"\n'
                        '[maintenance]\ndevelopment = ["daily 00:00-23:59"]\n')
    result = run_cli("run", "nightly", cwd=root)
    assert result.exit_code == 3
    assert "(America/New_York)" in result.stderr
