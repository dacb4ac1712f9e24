"""`envfence run`: the verdict of the guards, forcing, dry runs, the lock, failures, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

DEV_HOST, PROD_HOST, NEUTRAL_HOST = "dev-laptop-07", "web-prod-01", "build-box-01"
CANARY_DEV = "canary-dev-Zq8Wx3Lp9"
CANARY_PROD = "canary-prod-Kd71Ms0Qv"

SETTINGS = """
[automations.touch]
run = "jobs:touch"
description = "Write a marker in the environment's tree"

[automations.boom]
run = "jobs:boom"

[automations.dev-only]
run = "jobs:touch"
environments = ["development"]

[automations.needs-base]
run = "jobs:touch"
settings = ["AIRTABLE_BASE_ID"]

[automations.env-dump]
run = ["{python}", "-c", "import json, os; open('child-env.json', 'w').write(json.dumps(dict(os.environ))); print('key is', os.environ.get('API_KEY'))"]

[automations.fail-cmd]
run = ["{python}", "-c", "import sys; print('half done'); sys.exit(65)"]

[automations.slow]
run = "jobs:slow"
"""

JOBS = '''
import pathlib, time

def touch(ctx):
    if ctx.dry_run:
        ctx.say(f"would write a marker in {ctx.paths.base}")
        return
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
    ctx.say(f"wrote a marker in {ctx.environment}")

def boom(ctx):
    key = ctx.credential("API_KEY")
    raise ValueError(f"row 3 rejected while using {key.reveal()}")

def slow(ctx):
    pathlib.Path(ctx.session.root.path, "started").write_text("1")
    time.sleep(1.5)
'''


@pytest.fixture
def project(make_project):
    settings = SETTINGS.replace("{python}", sys.executable.replace("\\", "/"))
    return make_project(
        {
            "jobs.py": JOBS,
            ".env": f"DEV_API_KEY={CANARY_DEV}\nPROD_API_KEY={CANARY_PROD}\nSHARED=plain-value\n",
        },
        settings=settings,
    )


def written(root):
    """Every file under the project that the test did not write itself."""
    ours = {"envfence.toml", "jobs.py", ".env", "child-env.json"}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in ours and "__pycache__" not in p.parts
    )


# The verdict matrix lives in tests/e2e/test_verdict_matrix.py, generated from docs/running.md.


def test_strict_force_without_reason_says_reason_is_needed(project, run_cli):
    result = run_cli("--env", "production", "run", "touch", "--force", cwd=project, env={"ENVFENCE_HOSTNAME": DEV_HOST})
    assert result.exit_code == 3
    assert "needs --reason TEXT" in result.stderr


def test_reason_without_force_is_a_usage_error(project, run_cli):
    result = run_cli("run", "touch", "--reason", "because", cwd=project)
    assert result.exit_code == 2
    assert "--reason goes with --force" in result.stderr


def test_override_is_audited_with_user_host_and_reason(project, run_cli, audit_events):
    result = run_cli(
        "--env", "production", "run", "touch", "--force", "--reason", "hotfix 42",
        cwd=project, env={"ENVFENCE_HOSTNAME": DEV_HOST},
    )
    assert result.exit_code == 0, result.output
    forced = [e for e in audit_events if e.event == "run.forced"]
    assert len(forced) == 1
    data = forced[0].data
    assert data["host"] == DEV_HOST and data["reason"] == "hotfix 42" and data["user"]
    assert data["overridden"] == ["HOSTNAME_MISMATCH"]
    assert {"run.started", "run.finished"} <= {e.event for e in audit_events}


def test_blocked_run_is_audited(project, run_cli, audit_events):
    run_cli("--env", "production", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": DEV_HOST})
    blocked = [e for e in audit_events if e.event == "run.blocked"]
    assert blocked and blocked[0].data["codes"] == ["HOSTNAME_MISMATCH"]


def test_automation_outside_its_environments_is_blocked(project, run_cli):
    result = run_cli("--env", "production", "run", "dev-only", cwd=project)
    assert result.exit_code == 3
    assert "AUTOMATION_NOT_ALLOWED" in result.stderr and "may run in development, not in production" in result.stderr


def test_missing_setting_blocks_until_set(project, run_cli):
    result = run_cli("run", "needs-base", cwd=project)
    assert result.exit_code == 3
    assert "AUTOMATION_SETTING_MISSING" in result.stderr and "AIRTABLE_BASE_ID" in result.stderr
    result = run_cli("run", "needs-base", "--set", "AIRTABLE_BASE_ID=appAAAAAAAAAAAAAA", cwd=project)
    assert result.exit_code == 0, result.output


def test_validation_errors_block_in_strict_profile_only(project, run_cli, envfence_plugin):
    from envfence import hookimpl
    from envfence.models import Finding

    class Broken:
        @hookimpl
        def validate(self, session):
            return [Finding("SOMETHING_WRONG", "error", "the base id is malformed")]

    envfence_plugin(Broken(), "broken-config")
    assert run_cli("run", "touch", cwd=project).exit_code == 0
    result = run_cli("--env", "production", "run", "touch", cwd=project)
    assert result.exit_code == 3
    assert "VALIDATION_FAILED_STRICT" in result.stderr and "SOMETHING_WRONG" in result.stderr


def test_unknown_automation_suggests_a_close_name(project, run_cli):
    result = run_cli("run", "tuch", cwd=project)
    assert result.exit_code == 2
    assert "no automation named 'tuch'" in result.stderr and "did you mean 'touch'" in result.stderr


# --- forcing on a terminal -------------------------------------------------------------


def _on_a_terminal(project, args, answer, host):
    """Run envfence with a pseudo-terminal as stdin/stdout, answer its prompt; return (code, screen)."""
    from envfence.testing.project import on_a_terminal

    return on_a_terminal(args, project, {"ENVFENCE_HOSTNAME": host}, answer)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_development_force_on_a_terminal_asks_for_the_environment_name(project):
    code, screen = _on_a_terminal(project, ["--env", "development", "run", "touch", "--force"], "production", PROD_HOST)
    assert code == 3, screen
    assert "Type the environment's name (development)" in screen and "not confirmed" in screen
    # What is being overridden is said before the name is asked for.
    assert screen.index("HOSTNAME_MISMATCH") < screen.index("Type the environment's name")
    assert not (project / "var" / "development" / "marker").exists()
    code, screen = _on_a_terminal(project, ["--env", "development", "run", "touch", "--force"], "development", PROD_HOST)
    assert code == 0, screen
    assert (project / "var" / "development" / "marker").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_production_on_a_terminal_never_prompts(project):
    code, screen = _on_a_terminal(
        project, ["--env", "production", "run", "touch", "--force", "--reason", "r"], "production", DEV_HOST
    )
    assert code == 0, screen
    assert "Type the environment" not in screen


def test_force_without_a_terminal_never_prompts(project):
    """CI has no stdin: a forced run goes ahead (or is refused) without waiting for input."""
    proc = subprocess.run(
        [sys.executable, "-m", "envfence", "--env", "development", "run", "touch", "--force"],
        cwd=project,
        env={**os.environ, "ENVFENCE_HOSTNAME": PROD_HOST},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Type the environment" not in proc.stderr
    assert "forced past HOSTNAME_MISMATCH" in proc.stderr


# --- dry runs -------------------------------------------------------------------------------


def test_dry_run_writes_nothing(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    calls = []

    class Tracker:
        @hookimpl
        def on_run_start(self, run_id):
            calls.append("start")

        @hookimpl
        def on_run_finish(self, outcome):
            calls.append("finish")

        @hookimpl
        def audit_event(self, event):
            calls.append(event.event)

    envfence_plugin(Tracker(), "tracker")
    result = run_cli("run", "touch", "--dry-run", cwd=project)
    assert result.exit_code == 0, result.output
    assert "would write a marker" in result.stdout
    assert "nothing was written" in result.stderr
    assert written(project) == []  # no directory, no history, no lock, no log
    assert not (project / "var").exists()
    assert calls == []  # no status tracker and no audit record was called


def test_dry_run_of_a_command_shows_the_plan_without_running_it(project, run_cli):
    result = run_cli("run", "env-dump", "--dry-run", cwd=project)
    assert result.exit_code == 0
    assert "would run:" in result.stdout and "API_KEY" in result.stdout
    assert CANARY_DEV not in result.output
    assert written(project) == []


# --- the lock ------------------------------------------------------------------------------


def _start_slow(project):
    return subprocess.Popen(
        [sys.executable, "-m", "envfence", "run", "slow"],
        cwd=project,
        env={**os.environ, "ENVFENCE_HOSTNAME": NEUTRAL_HOST},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.05)


def test_second_run_is_refused_while_the_first_holds_the_lock(project, run_cli):
    first = _start_slow(project)
    try:
        _wait_for(project / "started")
        result = run_cli("run", "slow", cwd=project)
        assert result.exit_code == 3
        assert "already running" in result.stderr
        assert f"pid {first.pid}" in result.stderr and "since 20" in result.stderr
        assert "--wait" in result.stderr
    finally:
        assert first.wait(timeout=60) == 0


def test_wait_starts_when_the_first_run_ends(project, run_cli):
    first = _start_slow(project)
    try:
        _wait_for(project / "started")
        result = run_cli("run", "slow", "--wait", cwd=project)
        assert result.exit_code == 0, result.output
        assert "waiting: slow is already running" in result.stdout
    finally:
        first.wait(timeout=60)


def test_the_lock_is_per_environment(project, run_cli):
    first = _start_slow(project)
    try:
        _wait_for(project / "started")
        other = run_cli("--env", "production", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
        assert other.exit_code == 0, other.output
        prod_slow = run_cli("--env", "production", "run", "slow", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
        assert prod_slow.exit_code == 0, prod_slow.output
    finally:
        first.wait(timeout=60)


# --- subprocess isolation ---------------------------------------------------------------


def test_command_subprocess_sees_only_its_environments_configuration(project, run_cli, monkeypatch):
    monkeypatch.setenv("UNRELATED_PARENT_VARIABLE", "should-not-pass")
    monkeypatch.setenv("PROD_API_KEY", CANARY_PROD)
    result = run_cli("run", "env-dump", cwd=project)
    assert result.exit_code == 0, result.output
    child = json.loads((project / "child-env.json").read_text())
    assert child["API_KEY"] == CANARY_DEV  # the credential under its plain name
    assert child["SHARED"] == "plain-value"
    assert child["ENVIRONMENT"] == "development" and child["ENVFENCE_ENVIRONMENT"] == "development"
    assert not any(k.startswith(("PROD_", "DEV_")) for k in child)
    assert CANARY_PROD not in json.dumps(child)
    assert "UNRELATED_PARENT_VARIABLE" not in child
    assert "PATH" in child
    # the streamed output reached the user with the secret masked
    assert "key is ********" in result.stdout
    assert CANARY_DEV not in result.output


def test_production_subprocess_never_gets_a_development_credential(project, run_cli):
    result = run_cli("--env", "production", "run", "env-dump", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
    assert result.exit_code == 0, result.output
    child = json.loads((project / "child-env.json").read_text())
    assert child["API_KEY"] == CANARY_PROD
    assert CANARY_DEV not in json.dumps(child)


def test_failed_command_exit_code_is_the_runs_and_classified(project, run_cli):
    result = run_cli("run", "fail-cmd", cwd=project)
    assert result.exit_code == 1  # a failed job; its own code is on the record
    assert "half done" in result.stdout
    assert "failed (data)" in result.stderr and "job exit 65" in result.stderr  # EX_DATAERR


# --- failures --------------------------------------------------------------------------------


def test_development_failure_prints_a_redacted_traceback(project, run_cli):
    result = run_cli("run", "boom", cwd=project)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "row 3 rejected" in result.stderr
    assert "failed (data)" in result.stderr
    assert CANARY_DEV not in result.output


def test_production_failure_prints_one_line_whose_error_id_finds_the_detail_in_the_log(project, run_cli):
    result = run_cli("--env", "production", "run", "boom", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    error_id = lines[0].split("error ")[1].split(":")[0]
    log = (project / "var" / "production" / "logs" / "automation_production.log").read_text()
    assert error_id in log and "row 3 rejected" in log and "Traceback" in log
    assert CANARY_PROD not in log and CANARY_PROD not in result.output


def test_every_failure_goes_through_on_error_classified(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    failures = []

    class Collector:
        @hookimpl
        def on_error(self, failure):
            failures.append(failure)

    envfence_plugin(Collector(), "collector")
    run_cli("run", "boom", cwd=project)
    run_cli("--env", "production", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": DEV_HOST})
    run_cli("run", "fail-cmd", cwd=project)
    assert [f.classification for f in failures] == ["data", "configuration", "data"]
    assert all(f.error_id.startswith("E") for f in failures)
    assert all(CANARY_DEV not in f.message for f in failures)


def test_a_classify_error_plugin_refines_the_class(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    class Classifier:
        @hookimpl(tryfirst=True)
        def classify_error(self, error):
            return "credential" if "rejected" in str(error) else None

    envfence_plugin(Classifier(), "classifier")
    result = run_cli("run", "boom", cwd=project)
    assert "failed (credential)" in result.stderr


def test_json_output_of_a_run(project, run_cli):
    result = run_cli("--json", "run", "boom", cwd=project)
    data = json.loads(result.stdout)
    assert data["status"] == "failed" and data["exit_code"] == 1
    assert data["error"]["class"] == "data"
    assert CANARY_DEV not in result.output


# --- the canary ---------------------------------------------------------------------------


def test_canary_secrets_appear_in_no_output_and_no_record(project, run_cli):
    outputs = [
        run_cli("run", "boom", cwd=project),
        run_cli("--env", "production", "run", "boom", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST}),
        run_cli("-v", "--env", "production", "run", "boom", "--force", "--reason", "r", cwd=project, env={"ENVFENCE_HOSTNAME": DEV_HOST}),
        run_cli("run", "env-dump", cwd=project),
        run_cli("run", "env-dump", "--dry-run", cwd=project),
        run_cli("--json", "run", "boom", cwd=project),
        run_cli("status", cwd=project),
        run_cli("--json", "status", cwd=project),
        run_cli("list", cwd=project),
    ]
    for result in outputs:
        assert CANARY_DEV not in result.output and CANARY_PROD not in result.output
    for path in (project / "var").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY_DEV.encode() not in data and CANARY_PROD.encode() not in data, path


# --- the target guard ------------------------------------------------------------------------


def test_a_development_run_touching_a_production_target_is_blocked(make_project, run_cli):
    root = make_project(
        {"jobs.py": JOBS, ".env.development": "AIRTABLE_BASE_ID=appSandboxBase001\n"},
        settings='[automations]\ntouch = "jobs:touch"\nship = "tool --base appLiveBase000001"\n\n'
        '[targets]\nproduction = ["appLiveBase000001"]\ndevelopment = ["appSandboxBase001"]\n',
    )
    assert run_cli("run", "touch", cwd=root).exit_code == 0
    result = run_cli("run", "touch", "--set", "AIRTABLE_BASE_ID=appLiveBase000001", cwd=root)
    assert result.exit_code == 3
    assert "TARGET_GUARD" in result.stderr
    assert "would touch appLiveBase000001, a production target (AIRTABLE_BASE_ID from runtime override)" in result.stderr
    result = run_cli("run", "ship", "--dry-run", cwd=root)
    assert result.exit_code == 3 and "(its command line)" in result.stderr
    forced = run_cli("run", "touch", "--set", "AIRTABLE_BASE_ID=appLiveBase000001", "--force", cwd=root)
    assert forced.exit_code == 0 and "forced past TARGET_GUARD" in forced.stderr


def test_invalid_runs_go_through_on_error_too(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    seen = []

    class Collector:
        @hookimpl
        def on_error(self, session, failure):
            seen.append((session is None, failure.classification, failure.automation))

    envfence_plugin(Collector(), "collector")
    assert run_cli("run", "no-such-job", cwd=project).exit_code == 2
    assert run_cli("--env", "staging", "run", "touch", cwd=project).exit_code == 2
    assert seen == [(False, "configuration", "no-such-job"), (True, "configuration", "touch")]


def test_colliding_schedules_show_in_envfence_check(make_project, run_cli):
    root = make_project(settings='[automations.sync]\nrun = "jobs:sync"\nschedule = "0 2 * * *"\n')
    assert "SCHEDULE_COLLISION" not in run_cli("check", cwd=root).output  # dev... and prod... hosts are different machines
    shared = '[environments.development]\nhostname_patterns = ["box"]\n[environments.production]\nhostname_patterns = ["box"]\n'
    (root / "envfence.toml").write_text('[automations.sync]\nrun = "jobs:sync"\nschedule = "0 2 * * *"\n' + shared)
    result = run_cli("check", cwd=root)
    assert "SCHEDULE_COLLISION" in result.output
    assert "sync in development ('0 2 * * *') and sync in production ('0 2 * * *')" in result.output


def test_a_strategy_without_a_log_file_still_leaves_the_error_id_its_detail(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    class ConsoleOnly:
        """A third-party strategy that answers first and writes no file."""

        @hookimpl(tryfirst=True)
        def configure_logging(self, session, embedded):
            return "console only"

    envfence_plugin(ConsoleOnly(), "console-only")
    result = run_cli("--env", "production", "run", "boom", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
    assert result.exit_code == 1
    error_id = result.stderr.split("error ")[1].split(":")[0]
    # The logging plugin adds its plain file beside the strategy that answered.
    log = (project / "var" / "production" / "logs" / "automation_production.log").read_text()
    assert error_id in log and "Traceback" in log and CANARY_PROD not in log
    assert f"grep {error_id} " in result.stderr and CANARY_PROD not in result.stderr


def test_without_the_logging_plugin_the_error_detail_is_shown_not_lost(project, run_cli):
    result = run_cli("-p", "no:logging", "--env", "production", "run", "boom", cwd=project, env={"ENVFENCE_HOSTNAME": PROD_HOST})
    assert result.exit_code == 1
    # No plugin writes a log, so the terse production report shows the redacted detail instead of pointing nowhere.
    assert "Traceback" in result.stderr and "row 3 rejected" in result.stderr and CANARY_PROD not in result.stderr
    assert "no log file holds it" in result.stderr
    assert not (project / "var" / "production" / "logs" / "automation_production.log").exists()


def test_the_runner_as_a_library(project, monkeypatch):
    import envfence
    from envfence.models import RunRequest
    from envfence.runner import Runner, find_automation

    monkeypatch.setenv("ENVFENCE_HOSTNAME", DEV_HOST)  # the machine's own name is the one given

    session = envfence.open_session(root=project, env="production", hostname=DEV_HOST)
    lines: list[str] = []
    result = Runner(session, echo=lines.append).run(RunRequest(find_automation(session, "touch")))
    assert result.outcome.status == "blocked" and result.exit_code == 3
    assert [f.code for f in result.findings] == ["HOSTNAME_MISMATCH"]
    forced = Runner(session, echo=lines.append).run(RunRequest(find_automation(session, "touch"), force=True, reason="drill"))
    assert forced.outcome.status == "succeeded" and forced.outcome.forced and forced.outcome.reason == "drill"
    assert [f.code for f in forced.overridden] == ["HOSTNAME_MISMATCH"]
    assert lines == ["wrote a marker in production"]
    # as a library envfence adds no log sink: the embedding code owns logging
    assert not (project / "var" / "production" / "logs" / "automation_production.log").exists()
