"""Operations commands under attack: damaged state, hostile crontabs, unwritable targets, bad settings."""

from __future__ import annotations

import json

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SYNC = '[automations.sync]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n'


def _no_traceback(result):
    assert "Traceback" not in result.output


@pytest.mark.parametrize("content", ["[]", '{"incidents": [], "pending": {}}', '{"pending": [{"nonsense": 1}]}', "{bad"])
def test_a_damaged_alert_state_file_is_named_and_the_run_still_counts(make_project, run_cli, content):
    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[thresholds.sync]\nmax_memory = "1KB"\n')
    state = root / "var" / "development" / "state"
    state.mkdir(parents=True)
    (state / "alerts.json").write_text(content)
    ran = run_cli("run", "sync", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code == 0, ran.output
    assert "alerts.json" in ran.stderr and "move it aside" in ran.stderr
    assert (state / "alerts.json").read_text() == content  # nothing lost: the file stays for the user to look at
    shown = run_cli("alerts", "show", cwd=root)
    _no_traceback(shown)
    assert shown.exit_code == 1 and "alerts.json" in shown.stderr


def test_a_smtp_port_that_is_no_number_is_a_delivery_error_and_the_alert_is_kept(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[thresholds.sync]\nmax_memory = "1KB"\n'
                        '[alerts.escalation]\ndevelopment = ["email"]\n[alerts.email]\nhost = "127.0.0.1"\nport = "smtp"\nto = ["a@b"]\n')
    ran = run_cli("run", "sync", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code == 0
    assert "port" in ran.stderr and "kept and retried" in ran.stderr
    [pending] = json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"]
    assert pending["channels"] == ["email"]


@pytest.fixture
def ran_once(make_project, run_cli):
    """A project whose sync ran once (so there are metrics to write)."""
    pytest.importorskip("prometheus_client")
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    return root


def test_metrics_textfile_where_no_file_can_be_written_is_a_clear_error(ran_once, run_cli, tmp_path):
    root = ran_once
    not_a_dir = tmp_path / "collector"
    not_a_dir.write_text("a file where the directory belongs")
    result = run_cli("metrics", "--textfile", str(not_a_dir / "envfence.prom"), cwd=root)
    _no_traceback(result)
    assert result.exit_code == 1 and str(not_a_dir) in result.stderr
    assert not_a_dir.read_text() == "a file where the directory belongs"


def test_metrics_textfile_at_a_symlink_replaces_the_link_never_the_file_it_points_to(ran_once, run_cli, tmp_path):
    root = ran_once
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "out" / "envfence.prom"
    link.parent.mkdir()
    link.symlink_to(victim)
    result = run_cli("metrics", "--textfile", str(link), cwd=root)
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and "envfence_runs" in link.read_text()


def _fake_crontab(tmp_path, monkeypatch, content: str, fail_write: bool = False):
    store = tmp_path / "crontab.txt"
    store.write_text(content)
    program = tmp_path / "crontab"
    write = "echo 'crontab: installing new crontab: disk full' >&2; exit 1" if fail_write else f'cat > "{store}"'
    program.write_text(f'#!/bin/sh\nif [ "$1" = "-l" ]; then cat "{store}"; else {write}; fi\n')
    program.chmod(0o755)
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(program))
    return store


def test_schedule_install_refuses_a_crontab_with_two_blocks_of_the_same_environment(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    begin, end = f"# BEGIN envfence {root} development", f"# END envfence {root} development"
    twice = f"{begin}\n0 1 * * * old-one\n{end}\nMAILTO=me\n{begin}\n0 2 * * * old-two\n{end}\n"
    store = _fake_crontab(tmp_path, monkeypatch, twice)
    result = run_cli("schedule", "install", cwd=root)
    _no_traceback(result)
    assert result.exit_code == 1 and "twice" in result.stderr and "crontab -e" in result.stderr
    assert store.read_text() == twice  # nothing changed


def test_schedule_install_keeps_the_users_cron_tz_for_the_lines_after_the_block(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings='timezone = "Europe/Paris"\n' + SYNC)
    begin, end = f"# BEGIN envfence {root} development", f"# END envfence {root} development"
    store = _fake_crontab(tmp_path, monkeypatch,
                          f"CRON_TZ=America/New_York\n{begin}\n0 1 * * * old\n{end}\n30 6 * * * backup-my-photos\n")
    assert run_cli("schedule", "install", cwd=root).exit_code == 0
    lines = store.read_text().splitlines()

    def zone_of(text):  # the CRON_TZ in force for a line: the last one above it
        return [l for l in lines[: next(i for i, l in enumerate(lines) if text in l)] if l.startswith("CRON_TZ=")][-1]

    assert zone_of("run sync") == "CRON_TZ=Europe/Paris"
    assert zone_of("backup-my-photos") == "CRON_TZ=America/New_York"  # the user's own line keeps the user's zone
    assert run_cli("schedule", "diff", cwd=root).exit_code == 0
    assert run_cli("schedule", "install", cwd=root).stdout.startswith("crontab already up to date")


def test_schedule_without_a_zone_pins_the_machines_zone_against_a_users_cron_tz(make_project, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    store = _fake_crontab(tmp_path, monkeypatch, "CRON_TZ=America/New_York\n30 6 * * * backup-my-photos\n")
    assert run_cli("schedule", "install", cwd=root).exit_code == 0
    lines = store.read_text().splitlines()
    above = [l for l in lines[: next(i for i, l in enumerate(lines) if "run sync" in l)] if l.startswith("CRON_TZ=")]
    assert above[-1] == "CRON_TZ=Asia/Tokyo"  # what `envfence schedule list` promised, not the user's zone
    assert run_cli("schedule", "diff", cwd=root).exit_code == 0


def test_schedule_install_with_a_crontab_program_that_fails_changes_nothing(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    store = _fake_crontab(tmp_path, monkeypatch, "0 1 * * * mine\n", fail_write=True)
    result = run_cli("schedule", "install", cwd=root)
    _no_traceback(result)
    assert result.exit_code == 1 and "disk full" in result.stderr and "nothing was changed" in result.stderr
    assert store.read_text() == "0 1 * * * mine\n"


@pytest.mark.parametrize("args, message", [
    (["pause", "nosuch", "--reason", "x"], "nosuch"),
    (["pause", "sync", "--until", "yesterday-ish", "--reason", "x"], "--until"),
    (["pause", "sync", "--until", "2001-01-01T00:00", "--reason", "x"], "past"),
    (["resume", "nosuch"], "nosuch"),
])
def test_pause_refuses_bad_input_with_a_clear_error(make_project, run_cli, args, message):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    result = run_cli(*args, cwd=root)
    _no_traceback(result)
    assert result.exit_code != 0 and message in result.stderr, result.output
    assert run_cli("run", "sync", cwd=root).exit_code == 0  # nothing was paused


@pytest.mark.parametrize("window", ["sun 25:00-26:00", "someday 01:00-02:00", "sun 02:00", 7])
def test_a_garbage_maintenance_window_is_a_check_finding_and_runs_are_not_silently_allowed(make_project, run_cli, window):
    value = json.dumps(window) if isinstance(window, str) else str(window)
    root = make_project({"jobs.py": JOBS}, settings=SYNC + f"[maintenance]\ndevelopment = [{value}]\n")
    checked = run_cli("check", cwd=root)
    _no_traceback(checked)
    assert "maintenance.development" in checked.output
    ran = run_cli("run", "sync", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code != 0 and "maintenance.development" in ran.stderr


def test_health_with_a_corrupt_history_is_unknown_not_a_traceback(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    (root / "var" / "development" / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    result = run_cli("health", cwd=root)
    _no_traceback(result)
    assert result.exit_code in (2, 3) and "history.sqlite3" in result.output
    data = run_cli("health", "--json", cwd=root)
    _no_traceback(data)


def test_health_with_a_missing_audit_trail_says_so(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    for p in (root / "var" / "development" / "audit").iterdir():
        if p.suffix == ".jsonl":
            p.unlink()
    result = run_cli("health", cwd=root)
    _no_traceback(result)
    assert result.exit_code in (1, 2), result.output


def test_report_escapes_names_and_messages(make_project, run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    root = make_project({"jobs.py": "def bad(ctx):\n    raise RuntimeError('<script>alert(1)</script>')\n"},
                        settings='[automations."x<img src=y>"]\nrun = "jobs:bad"\n')
    run_cli("run", "x<img src=y>", cwd=root)
    out = tmp_path / "r.html"
    result = run_cli("report", "--html", str(out), cwd=root)
    _no_traceback(result)
    if result.exit_code == 0:
        page = out.read_text()
        assert "<img src=y>" not in page and "<script>alert" not in page


def test_report_with_an_empty_history(make_project, run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    out = tmp_path / "r.html"
    result = run_cli("report", "--html", str(out), cwd=root)
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert run_cli("report", "--json", cwd=root).exit_code == 0


def test_an_alert_decided_by_two_processes_is_sent_once(make_project, run_cli, capsys):
    """Two processes that both saw the incident closed both decide to alert; the second, under the lock, sends nothing."""
    import envfence
    from envfence_builtins.operations import alerts_delivery as alerts
    from envfence.thresholds import Crossing

    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    session = envfence.open_session(root=root)
    session.prepare()
    crossing = Crossing("sync", "max_memory", True, "sync peaked at 90 MB (limit 1 KB)", "warning", 90, 1, "run-1")
    first, second = alerts.incidents_from(session, [crossing]), alerts.incidents_from(session, [crossing])
    assert len(first) == len(second) == 1  # both decided before either sent
    assert len(alerts.dispatch(session, first)["sent"]) == 1
    assert alerts.dispatch(session, second)["sent"] == []
    assert capsys.readouterr().err.count("envfence: ALERT") == 1


def test_a_scheduled_automation_whose_name_breaks_lines_is_refused_not_written_into_a_crontab(make_project, run_cli, tmp_path,
                                                                                           monkeypatch):
    name = "sync\n* * * * * rm -rf ~ #"
    root = make_project({"jobs.py": JOBS}, settings=f'[automations."{json.dumps(name)[1:-1]}"]\nrun = "jobs:ok"\n'
                        'schedule = "0 3 * * *"\n')
    store = _fake_crontab(tmp_path, monkeypatch, "0 1 * * * mine\n")
    for args in (("schedule",), ("schedule", "install"), ("schedule", "--format", "systemd")):
        result = run_cli(*args, cwd=root)
        _no_traceback(result)
        assert result.exit_code != 0 and "rm -rf ~" not in result.stdout, result.output
        assert "line break" in result.stderr
    assert store.read_text() == "0 1 * * * mine\n"
    checked = run_cli("check", cwd=root)
    assert checked.exit_code != 0 and "AUTOMATION_INVALID" in checked.output and "line break" in checked.output


def test_percent_and_dollar_reach_cron_and_systemd_as_themselves(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings='[automations."sync-50%-$HOME"]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n',
                        name="proj%h")
    store = _fake_crontab(tmp_path, monkeypatch, "")
    assert run_cli("schedule", "install", cwd=root).exit_code == 0
    [line] = [l for l in store.read_text().splitlines() if " run " in l and not l.startswith("#")]  # not a path holding "run"
    assert "\\%" in line and "%" not in line.replace("\\%", "")  # cron turns a bare % into a line break
    units = tmp_path / "units"
    assert run_cli("schedule", "--format", "systemd", "--output", str(units), cwd=root).exit_code == 0
    [service] = units.glob("*-sync-*.service")
    assert {p.name for p in units.glob("*.service")} == {service.name, "envfence-development-envfence-health.service"}
    text = service.read_text()
    assert "WorkingDirectory=" + str(root).replace("%", "%%") in text  # %h would be the home directory
    health = (units / "envfence-development-envfence-health.service").read_text()
    assert "WorkingDirectory=" + str(root).replace("%", "%%") in health  # the health check runs from the project too
    exec_start = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    assert "sync-50%%-$$HOME" in exec_start


def test_an_automation_name_with_a_line_break_is_refused_at_load_so_it_cannot_inject_mail_headers(make_project, run_cli):
    pytest.importorskip("aiosmtpd")
    from test_alerts import Mailbox, free_port

    port = free_port()
    mailbox = Mailbox(port)
    try:
        name = "sync\nBcc: attacker@example.org"
        key = json.dumps(name)
        root = make_project({"jobs.py": JOBS}, settings=f'[automations.{key}]\nrun = "jobs:ok"\n[thresholds.{key}]\n'
                            'max_memory = "1KB"\n[alerts.escalation]\ndevelopment = ["console", "email"]\n'
                            f'[alerts.email]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\nto = ["ops@example.org"]\ntimeout = 5\n')
        ran = run_cli("run", name, cwd=root)
        _no_traceback(ran)
        assert ran.exit_code == 4 and "automation 'sync\\nBcc: attacker@example.org'" in ran.stderr, ran.output
        assert "control characters" in ran.stderr and mailbox.messages == []
        listed = run_cli("list", cwd=root)
        assert listed.exit_code == 4 and "\nBcc" not in listed.output
    finally:
        mailbox.stop()


@pytest.mark.parametrize("name", ["x<img src=y>", "tab\there", "rtl\u202eexe.sh", " padded", "a" * 101, "nul\x00"])
def test_one_naming_rule_refuses_unsafe_automation_names_wherever_they_come_from(make_project, run_cli, envfence_plugin, name):
    import envfence
    from envfence.models import Automation

    root = make_project({"jobs.py": JOBS}, settings=f'[automations.{json.dumps(name)}]\nrun = "jobs:ok"\n'
                        if "\x00" not in name else "")
    if "\x00" in name:  # TOML cannot hold it: a plugin registers it
        class Registers:
            @envfence.hookimpl
            def register_automations(self, register):
                register(Automation(name, "from a plugin", function=lambda ctx: None))

        envfence_plugin(Registers(), "registers")
    found = json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]
    # One finding for the cause, whichever plugin met the bad name first (automations or schedule).
    assert any(f["severity"] == "error" and "automation '" in f["message"] and "rename it" in f["remediation"] for f in found), found
    ran = run_cli("run", "anything", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code == 4 and "rename it" in ran.stderr


def test_a_channel_that_fails_in_an_unforeseen_way_keeps_its_alert_and_the_others_are_not_sent_twice(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[thresholds.sync]\nmax_memory = "1KB"\n'
                        '[alerts.escalation]\ndevelopment = ["console", "email"]\n[alerts.email]\nhost = "127.0.0.1"\n'
                        'to = ["a@b"]\nport = 25\ntimeout = 0.5\nfrom = "bad\\nheader"\n')
    first = run_cli("run", "sync", cwd=root)
    assert first.exit_code == 0 and first.stderr.count("envfence: ALERT") == 1
    assert "kept and retried" in first.stderr and "failed in on_run_finish" not in first.stderr, first.output
    second = run_cli("run", "sync", cwd=root)
    assert "envfence: ALERT" not in second.stderr  # the console had it; only the email waits
    [pending] = json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"]
    assert pending["channels"] == ["email"]


@pytest.mark.parametrize("damage", ["{bad", "[]", '{"sync": "forever"}', '{"sync": {"until": "next tuesday"}}'])
def test_a_damaged_pauses_file_keeps_the_automation_stopped(make_project, run_cli, damage):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert run_cli("pause", "sync", "--reason", "vendor outage", cwd=root).exit_code == 0
    pauses = root / "var" / "development" / "state" / "pauses.json"
    pauses.write_text(damage)
    ran = run_cli("run", "sync", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code == 3 and "pauses.json" in ran.stderr, ran.output  # fails closed: a pause may be in there
    assert "fine" not in ran.stdout
    for args in (("list",), ("health",), ("resume", "sync")):
        shown = run_cli(*args, cwd=root)
        _no_traceback(shown)
        assert "pauses.json" in shown.output, (args, shown.output)
    assert pauses.read_text() == damage  # kept for the user to look at


def test_a_hand_written_pause_without_a_zone_is_read_as_utc(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    state = root / "var" / "development" / "state"
    state.mkdir(parents=True)
    (state / "pauses.json").write_text('{"sync": {"until": "2099-01-01T00:00:00", "reason": "by hand", "by": "ops"}}')
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 3 and "sync is paused in development until 2099-01-01" in ran.stderr, ran.output


# Kubernetes names carry a digest of the original where they had to change, so they never meet (test_schedule.py).
@pytest.mark.parametrize("form, names", [("systemd", ("a b", "a_b"))])
def test_two_automations_that_would_share_a_unit_or_cronjob_name_are_refused(make_project, run_cli, tmp_path, form, names):
    settings = 'timezone = "UTC"\n[schedule]\nimage = "registry.example/app:1"\n' + "".join(
        f'[automations."{n}"]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n' for n in names)
    root = make_project({"jobs.py": JOBS}, settings=settings)
    result = run_cli("schedule", "--format", form, "--output", str(tmp_path / "out"), cwd=root)
    _no_traceback(result)
    assert result.exit_code != 0 and "one would replace the other" in result.stderr, result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/x", "not a url"])
def test_an_alert_webhook_url_that_is_not_http_keeps_the_alert_instead_of_calling_it_delivered(make_project, run_cli, url):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    root = make_project({"jobs.py": JOBS, ".env": f"DEV_ALERT_WEBHOOK_SECRET={secret}\n"},
                        settings=SYNC + '[thresholds.sync]\nmax_memory = "1KB"\n[alerts.escalation]\ndevelopment = ["webhook"]\n'
                        f'[alerts.webhook]\nurl = "{url}"\n')
    ran = run_cli("run", "sync", cwd=root)
    _no_traceback(ran)
    assert ran.exit_code == 0 and "kept and retried" in ran.stderr and "http" in ran.stderr, ran.output
    [pending] = json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"]
    assert pending["channels"] == ["webhook"]


def test_health_alert_with_a_damaged_alert_state_reports_the_checks_and_unknown(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC.replace("0 3 * * *", "0 * * * *"))
    assert run_cli("health", cwd=root).exit_code == 2
    state = root / "var" / "development" / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "alerts.json").write_text("[]")
    result = run_cli("health", "--alert", cwd=root)
    _no_traceback(result)
    # the missed run is still CRITICAL (it outranks UNKNOWN); the alert state is named, not a crash with exit 1
    assert result.exit_code == 2 and "UNKNOWN alerts" in result.stdout and "alerts.json" in result.stdout, result.output
    data = json.loads(run_cli("health", "--alert", "--json", cwd=root).stdout)
    assert data["exit_code"] == 2 and {c["name"]: c["state"] for c in data["checks"]}["alerts"] == "UNKNOWN"


def test_a_crontab_program_that_hangs_is_a_clear_error(make_project, run_cli, tmp_path, monkeypatch):
    from envfence_builtins.operations import schedule_entries as schedule

    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    program = tmp_path / "crontab"
    program.write_text("#!/bin/sh\nexec sleep 30\n")
    program.chmod(0o755)
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(program))
    monkeypatch.setattr(schedule, "CRONTAB_TIMEOUT", 0.3)
    result = run_cli("schedule", "install", cwd=root)
    _no_traceback(result)
    assert result.exit_code == 1 and "did not answer" in result.stderr and "nothing was changed" in result.stderr


def test_overlapping_maintenance_windows_say_when_the_last_one_closes(make_project):
    import datetime as dt

    import envfence
    from envfence_builtins.operations.maintenance_windows import open_window

    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[maintenance]\ntimezone = "UTC"\n'
                        'development = ["sun 02:00-04:00", "sun 03:30-05:00", "sun 05:00-05:30"]\n')
    settings = envfence.open_session(root=root).settings
    sunday = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.timezone.utc)
    window, closes = open_window(settings, "development", sunday)
    assert window.text == "sun 02:00-04:00" and closes == dt.datetime(2026, 11, 29, 5, 30, tzinfo=dt.timezone.utc)
    assert open_window(settings, "development", sunday.replace(hour=5, minute=30)) is None


def test_backup_and_metrics_never_write_into_another_environments_tree(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SYNC)
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    production = root / "var" / "production"
    production.mkdir(parents=True)
    backup = run_cli("backup", "--output", str(production / "backups"), cwd=root)
    _no_traceback(backup)
    assert backup.exit_code == 3 and "inside the production tree" in backup.stderr, backup.output
    metrics = run_cli("metrics", "--textfile", str(production / "dev.prom"), cwd=root)
    assert metrics.exit_code == 3 and "inside the production tree" in metrics.stderr, metrics.output
    assert list(production.rglob("*")) == []


def test_two_pauses_set_at_once_both_hold(make_project, run_cli, monkeypatch):
    import threading

    import envfence
    from envfence_builtins.operations import maintenance_windows as maintenance
    from envfence_builtins.operations import state_files

    root = make_project({"jobs.py": JOBS}, settings=SYNC + '[automations.other]\nrun = "jobs:ok"\n')
    session = envfence.open_session(root=root)
    session.prepare()
    write = state_files.write_json
    other = threading.Thread(target=maintenance.set_pause, args=(session, "other", {"reason": "second", "by": "b"}))

    def slow_write(paths, path, data):  # the first writer is slow: the second comes in between its read and its write
        if not other.is_alive() and not other.ident:
            other.start()
            other.join(timeout=1.0)  # without a lock it finishes here; with one it waits for this write
        write(paths, path, data)

    monkeypatch.setattr(state_files, "write_json", slow_write)
    maintenance.set_pause(session, "sync", {"reason": "first", "by": "a"})
    other.join()
    monkeypatch.undo()
    assert run_cli("run", "sync", cwd=root).exit_code == 3
    assert run_cli("run", "other", cwd=root).exit_code == 3
