"""A command line that adapts to its environment: help, options, DEBUG records, checks and status follow the profile.

Development (a profile with ``debug``) is for the person debugging: help with
the debugging options and examples, ``--trace``, DEBUG records of every
decision in the log, development-only checks, a detailed ``status``.
Production is for the operator: help with exit codes, forcing and where the
logs and the trail are, no development options, no DEBUG records, the
monitoring form of ``status``.
"""

from __future__ import annotations

import subprocess

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n\ndef broken(ctx):\n    raise RuntimeError('the vendor said no')\n"
SETTINGS = """
[automations]
ok = "jobs:ok"
broken = "jobs:broken"

[environments.staging]
based_on = "production"
profile = { debug = true, log_level = "DEBUG" }
"""
PROD = {"ENVFENCE_HOSTNAME": "web-prod-01"}


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


# --- --help ------------------------------------------------------------------------------------------------

def test_development_help_shows_the_debugging_options_then_the_examples(project, run_cli):
    shown = run_cli("run", "--help", cwd=project).stdout
    assert "Debugging in development:" in shown and "--trace" in shown
    assert shown.index("Debugging in development:") < shown.index("Examples:")
    assert "DEBUG records of the decisions" in shown and str(project / "var" / "development" / "logs") in shown
    assert "In development (profile" not in shown


@pytest.mark.parametrize("args", [
    ("--env", "production", "run", "--help"),
    ("run", "--help", "--env", "production"),  # a global option after the command, even after --help
    ("run", "--env=production", "--help"),
])
def test_production_help_is_the_operators_form(project, run_cli, args):
    shown = run_cli(*args, cwd=project, env=PROD).stdout
    assert "In production (profile production):" in shown
    assert "Exit codes: 0 ok, 1 findings at error level or a failed run, 2 usage," in shown
    assert "A blocked run goes ahead only with --force --reason TEXT; every override is audited." in shown
    assert f"Log: {project / 'var' / 'production' / 'logs' / 'automation_production.log'}" in shown
    assert f"Audit trail: {project / 'var' / 'production' / 'audit'}" in shown
    assert "--trace" not in shown and "Examples:" not in shown and "Debugging" not in shown
    assert "--dry-run" in shown  # the command's own options stay


def test_the_environment_variable_and_the_host_choose_the_help_too(project, run_cli):
    assert "In production" in run_cli("status", "--help", cwd=project, env={**PROD, "ENVIRONMENT": "prod"}).stdout
    assert "In production" in run_cli("--help", cwd=project, env={**PROD, "ENVIRONMENT": "production"}).stdout
    # A declared environment based on production that keeps the development tooling on.
    assert "Debugging in staging:" in run_cli("--env", "staging", "check", "--help", cwd=project, env=PROD).stdout


def test_help_where_the_project_cannot_load_is_the_plain_help(make_project, run_cli):
    root = make_project(settings="[environments.production\nbroken = ")
    shown = run_cli("run", "--help", cwd=root)
    assert shown.exit_code == 0
    assert "Usage: " in shown.stdout and "Examples:" in shown.stdout
    assert "Debugging" not in shown.stdout and "In production" not in shown.stdout


# --- --trace -----------------------------------------------------------------------------------------------

def test_trace_prints_each_hook_call_in_development(project, run_cli):
    result = run_cli("--trace", "detect", cwd=project)
    assert result.exit_code == 0
    assert "envfence: trace: detect_environment" in result.stderr
    assert "envfence: trace: classify_host" in result.stderr and "(answered)" in result.stderr


def test_trace_is_refused_in_production_and_traces_nothing(project, run_cli):
    result = run_cli("--env", "production", "detect", "--trace", cwd=project, env=PROD)
    assert result.exit_code == 2
    assert "--trace: development only, not offered in production" in result.stderr
    assert "envfence: trace:" not in result.stderr and not result.stdout
    after = run_cli("--env", "production", "detect", cwd=project, env=PROD)  # the refusal left no tracing behind
    assert after.exit_code == 0 and "envfence: trace:" not in after.stderr


# --- DEBUG records of the decisions --------------------------------------------------------------------------

def log_text(project, env: str) -> str:
    return (project / "var" / env / "logs" / f"automation_{env}.log").read_text()


def test_development_logs_the_decisions_at_debug_level(project, run_cli):
    ran = run_cli("run", "ok", cwd=project)
    assert ran.exit_code == 0
    assert "decision:" not in ran.output  # the log file's, not the screen's
    log = log_text(project, "development")
    assert "DEBUG" in log
    assert "decision: environment development decided by default" in log
    assert "decision: hook detect_environment answered by" in log and " ms" in log
    assert "decision: hook classify_host answered by hostname in" in log
    assert "decision: guard hostname passed for ok in development" in log


def test_production_writes_no_decision_records(project, run_cli):
    assert run_cli("--env", "production", "run", "ok", cwd=project, env=PROD).exit_code == 0
    log = log_text(project, "production")
    assert "ok" in log  # the run is logged
    assert "decision:" not in log and " DEBUG " not in log


def test_a_forced_run_logs_which_guard_was_forced_past(project, run_cli):
    forced = run_cli("--env", "production", "run", "ok", "--force", "--reason", "INC-7 replay", cwd=project,
                     env={"ENVFENCE_HOSTNAME": "laptop-07"})
    assert forced.exit_code == 0, forced.output
    assert "decision:" not in log_text(project, "production")
    # The same in staging, whose profile keeps debug on: the forced guard is named.
    staged = run_cli("--env", "staging", "run", "ok", "--force", "--reason", "INC-7 replay", cwd=project,
                     env={"ENVFENCE_HOSTNAME": "laptop-07"})
    assert staged.exit_code == 0, staged.output
    assert "decision: guard hostname forced past HOST_NOT_ENROLLED" in log_text(project, "staging")


# --- development-only checks ---------------------------------------------------------------------------------

def git(root, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(project):
    pytest.importorskip("shutil").which("git") or pytest.skip("git is not installed (Debian: apt install git)")
    git(project, "init", "-q")
    (project / ".env.local").write_text("LOG_LEVEL=DEBUG\n")
    return project


def test_check_in_development_finds_a_local_file_git_would_commit(repo, run_cli):
    found = run_cli("--json", "check", cwd=repo)
    import json

    codes = {f["code"]: f for f in json.loads(found.stdout)["findings"]}
    assert codes["LOCAL_FILE_NOT_IGNORED"]["file"] == ".env.local"
    assert "LOCAL_FILE_NOT_IGNORED" not in run_cli("--json", "--env", "production", "check", cwd=repo, env=PROD).stdout
    (repo / ".gitignore").write_text(".env*.local\n")
    assert "LOCAL_FILE_NOT_IGNORED" not in run_cli("--json", "check", cwd=repo).stdout


def test_check_in_development_says_the_files_changed_since_the_newest_snapshot(repo, run_cli):
    (repo / ".gitignore").write_text(".env*.local\nvar/\n")
    assert "SNAPSHOT_OUTDATED" not in run_cli("check", cwd=repo).stdout  # no snapshot: nothing to be older
    assert run_cli("config", "snapshot", cwd=repo).exit_code == 0
    assert "SNAPSHOT_OUTDATED" not in run_cli("check", cwd=repo).stdout
    (repo / ".env").write_text("APP_NAME=sync\n")  # a new layer since
    shown = run_cli("check", cwd=repo).stdout
    assert "SNAPSHOT_OUTDATED" in shown and ".env changed since the newest snapshot of development" in shown
    assert "SNAPSHOT_OUTDATED" not in run_cli("--env", "production", "-v", "check", cwd=repo, env=PROD).stdout


# --- status ----------------------------------------------------------------------------------------------------

def test_status_in_development_shows_where_things_are_and_the_last_error(project, run_cli):
    run_cli("run", "ok", cwd=project)
    run_cli("run", "broken", cwd=project)
    shown = run_cli("status", cwd=project).stdout
    assert "# detail" in shown
    assert f"tree        {project / 'var' / 'development'}" in shown
    assert f"settings    {project / 'envfence.toml'}" in shown
    assert "last error" in shown and "broken failed (bug) [E" in shown and "the traceback is in the log" in shown


def test_status_in_production_is_the_monitoring_form(project, run_cli):
    run_cli("--env", "production", "run", "ok", cwd=project, env=PROD)
    run_cli("--env", "production", "run", "broken", cwd=project, env=PROD)
    lines = run_cli("--env", "production", "status", cwd=project, env=PROD).stdout.splitlines()
    assert len(lines) == 2
    by_name = {line.split()[0]: dict(word.split("=", 1) for word in line.split()[1:]) for line in lines}
    assert by_name["ok"]["state"] == "ok" and by_name["ok"]["last"].startswith("succeeded@")
    assert by_name["broken"]["state"] == "failing" and by_name["broken"]["error_rate"] == "100%"
    assert by_name["broken"]["age"].endswith("s") and by_name["broken"]["runs"] == "1"
    # -v gives the people's listing, which the detail of development does not follow.
    verbose = run_cli("-v", "--env", "production", "status", cwd=project, env=PROD).stdout
    assert "# last 2 run(s) in production" in verbose and "# detail" not in verbose
