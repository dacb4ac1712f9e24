"""`health` checks memory pressure (Linux PSI, /proc/pressure/memory) beside disk, as a check and as perfdata."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
PSI = "some avg10={some10:.2f} avg60={some:.2f} avg300=0.00 total=123\nfull avg10=0.00 avg60={full:.2f} avg300=0.00 total=45\n"


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    return root


@pytest.fixture
def pressure(tmp_path, monkeypatch):
    from envfence_builtins.operations import health_checks as health

    psi = tmp_path / "memory"
    monkeypatch.setattr(health, "PSI_MEMORY", psi)

    def set_to(some: float, full: float = 0.0) -> None:
        psi.write_text(PSI.format(some10=some * 2, some=some, full=full))

    return set_to


@pytest.mark.skipif(not Path("/proc/pressure/memory").is_file(), reason="this kernel has no pressure stall information")
def test_the_hosts_own_memory_pressure_is_read_and_graphed(project, run_cli):
    result = run_cli("health", cwd=project)
    first = result.stdout.splitlines()[0]
    perf = re.search(r"'memory_pressure'=([0-9.]+)%;10;20;0;100", first)
    assert perf, first
    line = next(x for x in result.stdout.splitlines() if x.split()[1:2] == ["memory:"])
    expected = "OK" if float(perf[1]) < 10 else "WARNING" if float(perf[1]) < 20 else "CRITICAL"
    assert line.startswith(f"{expected} memory: tasks stalled on memory {perf[1]}% of the last minute")


@pytest.mark.parametrize("some, state, code", [(2.5, "OK", 0), (12.0, "WARNING", 1), (31.4, "CRITICAL", 2)])
def test_memory_pressure_warns_and_goes_critical_at_twice_the_maximum(project, run_cli, pressure, some, state, code):
    pressure(some, full=some / 2)
    result = run_cli("health", cwd=project)
    assert result.exit_code == code, result.output
    assert f"'memory_pressure'={some:g}%;10;20;0;100" in result.stdout.splitlines()[0]
    assert f"{state} memory: tasks stalled on memory {some:g}% of the last minute, {some / 2:g}% with every task stalled" in result.stdout


def test_the_maximum_is_a_setting_and_a_bad_one_is_unknown_not_a_crash(make_project, run_cli, pressure):
    pressure(12.0)
    root = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n[health]\nmax_memory_pressure = 40\n')
    assert run_cli("health", cwd=root).exit_code == 0
    bad = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n[health]\nmax_memory_pressure = "lots"\n')
    result = run_cli("health", cwd=bad)
    assert result.exit_code == 3 and "health.max_memory_pressure: must be a number above 0, not 'lots'" in result.stdout
    assert "Traceback" not in result.output


def test_check_and_the_schema_know_the_maximum_the_health_check_reads(make_project, run_cli):
    """One declaration: check accepts what health reads, and both refuse a percentage over 100, naming the key."""
    good = make_project(settings="[health]\nmax_memory_pressure = 40\n")
    result = run_cli("check", cwd=good)
    assert "max_memory_pressure" not in result.stdout, result.stdout
    schema = json.loads(run_cli("config", "schema", cwd=good).stdout)
    assert schema["properties"]["health"]["properties"]["max_memory_pressure"]["default"] == 10
    over = make_project(settings="[health]\nmax_memory_pressure = 400\n")
    result = run_cli("check", cwd=over)
    assert result.exit_code == 1 and "health.max_memory_pressure: 400 is more than 100 percent" in result.stdout
    assert "health.max_memory_pressure: 400 is more than 100 percent" in run_cli("health", cwd=over).stdout


def test_without_pressure_information_the_check_says_so_and_no_figure_is_made_up(project, run_cli, tmp_path, monkeypatch):
    from envfence_builtins.operations import health_checks as health

    monkeypatch.setattr(health, "PSI_MEMORY", tmp_path / "absent")
    result = run_cli("health", cwd=project)
    assert result.exit_code == 0
    assert "memory_pressure" not in result.stdout.splitlines()[0]
    assert "OK memory: memory pressure not measured" in result.stdout
