"""`envfence health` as monitoring reads it: the Monitoring Plugins Development Guidelines.

The guidelines (https://www.monitoring-plugins.org/doc/guidelines.html): exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN and nothing else; "UNKNOWN" for invalid arguments or any failure to check; the first line is
``TEXT | PERFDATA``; each datum is ``'label'=value[UOM];[warn];[crit];[min];[max]`` (a quote in a label
doubled, UOM one of s, %, B, KB, MB, GB, TB, c), separated by spaces; after the first line, a ``|`` starts
more perfdata too.
"""

from __future__ import annotations

import datetime as _dt
import re
import subprocess
import sys

import pytest

from test_health import JOBS, seed

DATUM = re.compile(r"'((?:[^'=]|'')+)'=(-?\d+(?:\.\d+)?)(s|%|B|KB|MB|GB|TB|c)?((?:;[^; ]*){0,4})")


def read_plugin_output(text: str) -> tuple[str, dict[str, tuple[float, str, list[str]]], list[str]]:
    """(status text, perfdata by label, long text lines), as a monitoring system splits a plugin's output."""
    first, *rest = text.split("\n")
    status, _, perf = first.partition("|")
    data = {}
    consumed = []
    for match in DATUM.finditer(perf):
        data[match[1].replace("''", "'")] = (float(match[2]), match[3] or "", match[4][1:].split(";"))
        consumed.append(match[0])
    assert " ".join(consumed) == perf.strip(), f"perfdata a monitoring system cannot read: {perf!r}"
    long_lines = [line for line in rest if line]
    for line in long_lines:
        assert "|" not in line, f"a long-output line starting perfdata: {line!r}"
    return status.strip(), data, long_lines


SETTINGS = """
[automations."a|b c'd=e"]
run = "jobs:ok"
schedule = "0 * * * *"

[automations.sync]
run = "jobs:ok"

[thresholds.sync]
max_duration = "1m"
max_error_rate = 0.2
"""


@pytest.fixture
def project(make_project):
    import envfence

    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    envfence.open_session(root=root).prepare()
    return root


def test_a_name_that_holds_a_pipe_stays_in_the_status_text(project, run_cli):
    result = run_cli("health", "-v", cwd=project)
    assert result.exit_code == 2, result.output  # a|b never ran: missed
    status, perf, long_lines = read_plugin_output(result.stdout)
    assert status.startswith("CRITICAL - development: ") and "a/b c'd=e was due at" in status
    assert all(line.startswith(("CRITICAL ", "OK ", "WARNING ", "UNKNOWN ")) for line in long_lines), long_lines
    assert "disk_free" in perf


def test_a_name_with_a_line_break_is_one_unknown_line_not_two(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations."two\\nlines"]\nrun = "jobs:ok"\nschedule = "0 * * * *"\n')
    result = run_cli("health", cwd=root)
    assert result.exit_code == 3
    [line] = result.stdout.splitlines()
    assert line.startswith("UNKNOWN - cannot check: ") and "two\\nlines" in line


def test_text_made_safe_for_monitoring_keeps_every_character_visible():
    from envfence_builtins.operations.health_checks import nagios_text

    assert nagios_text("a|b\nc\td\x7f") == "a/b\\x0ac\\x09d\\x7f"


def test_perfdata_gives_durations_error_rates_ages_and_free_disk_with_their_limits(project, run_cli):
    for n, status in enumerate(["failed", "succeeded", "succeeded", "succeeded"]):
        seed(project, "sync", ago=_dt.timedelta(minutes=30 + n), status=status, duration=12.5, n=n)
    seed(project, "a|b c'd=e", ago=_dt.timedelta(minutes=5))
    result = run_cli("health", cwd=project)
    _, perf, _ = read_plugin_output(result.stdout)
    value, unit, limits = perf["sync duration"]
    assert (value, unit, limits[0]) == (12.5, "s", "60")
    value, unit, limits = perf["sync error_rate"]
    assert (value, unit, limits[1], limits[3]) == (25.0, "%", "20", "100")
    value, unit, _ = perf["sync last_run_age"]
    assert unit == "s" and 29 * 60 < value < 32 * 60
    assert perf["a/b c'd_e last_run_age"][1] == "s"  # the quote doubled, the = and | kept out of the label
    value, unit, limits = perf["disk_free"]
    warn, crit, low, high = limits
    assert unit == "B" and 0 < value <= float(high) and low == "0"
    assert warn.endswith(":") and crit.endswith(":") and float(crit[:-1]) < float(warn[:-1])  # alert below, per the range syntax


@pytest.mark.parametrize("args", [("health", "--bogus"), ("health", "extra-argument"), ("--json", "health", "--nope")])
def test_a_bad_option_is_unknown_not_critical(project, run_cli, args):
    result = run_cli(*args, cwd=project)
    assert result.exit_code == 3, result.output
    assert "UNKNOWN" in result.stdout.splitlines()[0 if "--json" not in args else 1] or '"UNKNOWN"' in result.stdout


def test_settings_that_cannot_be_read_are_unknown_with_a_first_line_saying_why(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + "[broken\n")
    result = run_cli("health", cwd=project)
    assert result.exit_code == 3
    first = result.stdout.splitlines()[0]
    assert first.startswith("UNKNOWN - cannot check: ") and "envfence.toml" in first and "TOML" in first


def test_health_as_monitoring_runs_it_exits_0_to_3_only(project, tmp_path):
    # As NRPE runs it: a process of its own, its exit status read by the monitoring system.
    def run(*args):
        return subprocess.run([sys.executable, "-m", "envfence", *args], cwd=project, capture_output=True, text=True)

    assert run("health").returncode == 2
    (project / "envfence.toml").write_text("[broken\n")
    broken = run("health")
    assert broken.returncode == 3 and broken.stdout.startswith("UNKNOWN - cannot check: "), broken
    assert run("health", "--all-environments").returncode == 3
