"""Schedule files under attack: every character cron, sh or systemd treats specially reaches the job as itself.

The crontab line is read the way cronie reads a command: a bare ``%`` ends the
command (the rest is stdin) and ``\\%`` stands for ``%``; every other backslash
is kept (cronie ``src/do_command.c``, the loop under "if a % is present in the
command"). The command then runs under ``/bin/sh -c``, as cron runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


def cron_command(line: str) -> str:
    """The command cronie hands to sh for a five-field crontab line (cronie src/do_command.c)."""
    command = line.split(None, 5)[5]
    out, escaped = [], False
    for ch in command:
        if escaped:
            if ch == "%":
                out[-1] = "%"  # the backslash before a % goes
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "%":
            break  # the rest of the line is the job's stdin
        out.append(ch)
        escaped = ch == "\\"
    return "".join(out)


def _recorder(tmp_path):
    """A stand-in for envfence that writes its working directory and arguments, one per NUL-terminated field."""
    record = tmp_path / "argv.bin"
    program = tmp_path / "bin" / "envfence"
    program.parent.mkdir()
    program.write_text(f'#!/bin/sh\n{{ pwd; printf "%s\\n" "$@"; }} > "{record}"\n')
    program.chmod(0o755)
    return program, record


def _fake_crontab(tmp_path, monkeypatch, content: bytes):
    store = tmp_path / "crontab.bin"
    store.write_bytes(content)
    program = tmp_path / "crontab"
    program.write_text(f'#!/bin/sh\nif [ "$1" = "-l" ]; then cat "{store}"; else cat > "{store}"; fi\n')
    program.chmod(0o755)
    monkeypatch.setenv("ENVFENCE_CRONTAB", str(program))
    return store


@pytest.mark.parametrize("name", ["bs\\%job", "50%off", "it's \"quoted\" $HOME `id`", "end\\", "%%", "a\\\\%%b"])
def test_a_crontab_line_runs_the_automation_it_names_whatever_its_characters(make_project, run_cli, tmp_path, monkeypatch, name):
    program, record = _recorder(tmp_path)
    toml_name = name.replace("\\", "\\\\").replace('"', '\\"')
    root = make_project({"jobs.py": JOBS}, name="pro j%h\\x'",
                        settings=f'[automations."{toml_name}"]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n'
                                 f'[schedule]\nenvfence = "{program}"\n')
    store = _fake_crontab(tmp_path, monkeypatch, b"")
    result = run_cli("schedule", "install", cwd=root)
    assert result.exit_code == 0, result.output
    [line, health] = [l for l in store.read_text().splitlines() if l and not l.startswith(("#", "CRON_TZ"))]
    # the automation's line, then the environment's health check: each runs what it says from the project
    for each, expected in ((line, ["run", name]), (health, ["health", "--alert"])):
        done = subprocess.run(["/bin/sh", "-c", cron_command(each)], capture_output=True, text=True)
        assert done.returncode == 0, (each, done.stderr)
        cwd, *argv = record.read_text().splitlines()
        assert cwd == str(root)
        assert argv == ["--env", "development", "-q", *expected]


def test_the_cron_reader_of_this_test_follows_cronie(tmp_path):
    # The test's reader itself: cronie's documented cases (crontab(5): "Percent-signs (%) in the command, unless
    # escaped with backslash (\), will be changed into newline characters").
    assert cron_command("0 3 * * * echo a%b") == "echo a"
    assert cron_command("0 3 * * * echo a\\%b") == "echo a%b"
    assert cron_command("0 3 * * * echo a\\\\%b") == "echo a\\\\"
    assert cron_command("0 3 * * * echo a\\b") == "echo a\\b"


def test_a_project_path_with_a_line_break_is_refused_and_the_crontab_is_untouched(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, name="proj\n* * * * * touch pwned",
                        settings='[automations.sync]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n')
    store = _fake_crontab(tmp_path, monkeypatch, b"0 1 * * * mine\n")
    for args in (("schedule",), ("schedule", "install"), ("schedule", "--format", "systemd")):
        result = run_cli(*args, cwd=root)
        assert result.exit_code == 4, result.output
        assert "line break" in result.stderr and "Traceback" not in result.output
        assert "touch pwned" not in result.stdout
    assert store.read_bytes() == b"0 1 * * * mine\n"
    checked = run_cli("check", cwd=root)
    assert checked.exit_code == 1 and "SCHEDULE_INVALID" in checked.output


def test_a_latin1_crontab_is_kept_byte_for_byte(make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n')
    mine = "# sauvegarde de l'été\n0 1 * * * /opt/caf\u00e9/backup --d\u00e9j\u00e0\n".encode("latin-1") + b"\xff\xfe raw\n"
    store = _fake_crontab(tmp_path, monkeypatch, mine)
    installed = run_cli("schedule", "install", cwd=root)
    assert installed.exit_code == 0, installed.output
    assert store.read_bytes().startswith(mine) and b"run sync" in store.read_bytes()
    assert run_cli("schedule", "diff", cwd=root).exit_code == 0
    removed = run_cli("schedule", "remove", cwd=root)
    assert removed.exit_code == 0, removed.output
    assert store.read_bytes() == mine


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed; Debian: apt-get install systemd")
def test_systemd_reads_the_program_path_back_as_itself(make_project, run_cli, tmp_path):
    # systemd names the program it would run when it cannot: its own unquoting of ExecStart=, read back.
    odd = "/nonexistent/bs\\%j $x\"q's"
    toml_odd = odd.replace("\\", "\\\\").replace('"', '\\"')
    root = make_project({"jobs.py": JOBS},
                        settings=f'[automations."bs\\\\%job"]\nrun = "jobs:ok"\nschedule = "0 3 * * *"\n[schedule]\nenvfence = "{toml_odd}"\n')
    units = tmp_path / "units"
    assert run_cli("schedule", "--format", "systemd", "--output", str(units), cwd=root).exit_code == 0
    [service] = units.glob("*-bs*.service")
    assert {p.name for p in units.glob("*.service")} == {service.name, "envfence-development-envfence-health.service"}
    verify = subprocess.run(["systemd-analyze", "verify", str(service)], capture_output=True, text=True)
    said = re.search(r"(?:special characters: |Command )(.*?)(?: is not executable|$)", verify.stderr, re.M)
    assert said and said.group(1) == odd, verify.stderr


def test_the_installed_health_line_alerts_a_missed_run_of_its_own_environment_and_is_silent_when_well(
        make_project, run_cli, tmp_path, monkeypatch):
    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\nschedule = "0 * * * *"\n')
    store = _fake_crontab(tmp_path, monkeypatch, b"")
    for env in ("development", "production"):
        assert run_cli("--env", env, "schedule", "install", cwd=root).exit_code == 0
    health = {line.split("--env ", 1)[1].split()[0]: line for line in store.read_text().splitlines() if line.endswith("health --alert")}
    assert set(health) == {"development", "production"}  # one health check per environment with schedules
    assert run_cli("run", "sync", cwd=root).exit_code == 0  # development ran; production never did

    def as_cron_runs(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/sh", "-c", cron_command(line)], capture_output=True, text=True, cwd=tmp_path)

    well = as_cron_runs(health["development"])
    assert (well.returncode, well.stdout, well.stderr) == (0, "", "")  # nothing for cron to mail
    missed = as_cron_runs(health["production"])
    assert missed.returncode == 2, missed.stderr
    assert "ALERT [critical] production sync expected_every" in missed.stderr
    assert missed.stdout.startswith("CRITICAL - production:")
    again = as_cron_runs(health["production"])
    assert again.returncode == 2 and "ALERT" not in again.stderr  # once per incident, every five minutes or not
