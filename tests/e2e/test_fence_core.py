"""The fence holds in the core: disabled guards, shared secrets, exit codes, development warnings."""

from __future__ import annotations

import json
import sys

import pytest

SETTINGS = """
[automations]
touch = "jobs:touch"

[automations.exits]
run = ["{python}", "-c", "import os, sys; sys.exit(int(os.environ.get('CODE', '0')))"]

[targets]
production = ["appLiveBase000001"]
"""
JOBS = '''
def touch(ctx):
    if not ctx.dry_run:
        ctx.paths.base.joinpath("marker").write_text(ctx.environment)
'''
CANARY = "whsec_c2hhcmVkLWNhbmFyeS12YWx1ZS0xMjM0NTY3OA"


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS.replace("{python}", sys.executable.replace("\\", "/")))


def marker(root, env="production"):
    return root / "var" / env / "marker"


# --- 2. disabling a guard is an override ---------------------------------------------

@pytest.mark.parametrize("how", [
    {"args": ["-p", "no:hostname"]},
    {"args": ["-p", "no:targets"]},
    {"args": ["-p", "no:automations"], "job": "shipped"},
    {"env": {"ENVFENCE_DISABLE_PLUGINS": "hostname"}},
    {"env": {"ENVFENCE_PLUGINS": "automations,dotenv_files,directories,audit,envfence-testing-audit,shipper"}},
])
def test_disabling_a_guard_blocks_a_run_unless_forced_and_is_audited(project, run_cli, audit_events, envfence_plugin, how):
    import envfence
    from envfence.models import Automation

    class Shipper:  # a plugin's own automation, which runs without the automations plugin
        @envfence.hookimpl
        def register_automations(self, session, register):
            register(Automation("shipped", "a plugin's job", function=lambda ctx: None))

    envfence_plugin(Shipper(), "shipper")
    host = {"ENVFENCE_HOSTNAME": "dev-laptop-07"}
    args = [*how.get("args", []), "--env", "prod", "run", how.get("job", "touch")]
    env = {**host, **how.get("env", {})}
    result = run_cli(*args, cwd=project, env=env)
    assert result.exit_code == 3, result.output
    assert "GUARD_DISABLED" in result.stderr
    assert not marker(project).exists()
    assert run_cli(*args, "--force", cwd=project, env=env).exit_code == 3  # production: needs a reason
    audit_events.clear()
    forced = run_cli(*args, "--force", "--reason", "guard under repair", cwd=project, env=env)
    assert forced.exit_code in (0, 3), forced.output  # the guards still loaded may block on their own
    disabled = [e for e in audit_events if e.event == "plugins.disabled"]
    assert disabled and disabled[0].data["names"]


def test_disabling_a_plugin_that_guards_nothing_blocks_nothing(project, run_cli):
    result = run_cli("-p", "no:history", "run", "touch", cwd=project)
    assert result.exit_code == 0, result.output


def test_an_unknown_plugin_name_is_a_warning_and_a_usage_error_under_strict_plugins(project, run_cli):
    result = run_cli("-p", "no:bogus", "run", "touch", cwd=project)
    assert result.exit_code == 0 and "no plugin named 'bogus'" in result.stderr
    strict = run_cli("--strict-plugins", "-p", "no:bogus", "run", "touch", cwd=project)
    assert strict.exit_code == 2 and "no plugin named 'bogus'" in strict.stderr


# --- 6. shared secrets across environment files ----------------------------------------

@pytest.mark.parametrize("env", ["development", "production"])
def test_a_secret_shared_between_environment_files_is_found_in_either(make_project, run_cli, env):
    root = make_project({
        ".env.development": f"DEV_WEBHOOK_SECRET={CANARY}\n",
        ".env.production": f"PROD_WEBHOOK_SECRET={CANARY}\n",
    })
    result = run_cli("--env", env, "--json", "check", cwd=root, env={"ENVFENCE_HOSTNAME": "web-prod-01" if env == "production" else "dev-box"})
    shared = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS"]
    assert len(shared) == 1 and result.exit_code == 1
    assert "DEV_WEBHOOK_SECRET" in shared[0]["message"] and "PROD_WEBHOOK_SECRET" in shared[0]["message"]
    assert CANARY not in result.output


# --- 7. exit codes that cannot collide ---------------------------------------------------

@pytest.mark.parametrize("code", [1, 2, 3, 4, 65])
def test_a_failed_job_exits_1_and_its_own_code_is_on_the_record(project, run_cli, audit_events, code):
    result = run_cli("--set", f"CODE={code}", "run", "exits", cwd=project)
    assert result.exit_code == 1, result.output
    assert f"job exit {code}" in result.stderr
    data = json.loads(run_cli("--set", f"CODE={code}", "--json", "run", "exits", cwd=project).stdout)
    assert data["exit_code"] == 1 and data["job_exit_code"] == code
    finished = [e for e in audit_events if e.event == "run.finished"][-1]
    assert finished.data["job_exit_code"] == code and finished.data["exit_code"] == 1
    runs = json.loads(run_cli("--json", "status", cwd=project).stdout)["runs"]
    assert runs[0]["job_exit_code"] == code


def test_the_jobs_code_is_passed_through_only_when_asked(project, run_cli):
    result = run_cli("--set", "CODE=3", "run", "exits", "--pass-exit-code", cwd=project)
    assert result.exit_code == 3 and "job exit 3" in result.stderr
    assert run_cli("--set", "CODE=0", "run", "exits", "--pass-exit-code", cwd=project).exit_code == 0


def test_envfence_s_own_outcomes_keep_their_codes(project, run_cli):
    assert run_cli("run", "touch", cwd=project).exit_code == 0
    assert run_cli("run", "nosuch", cwd=project).exit_code == 2
    assert run_cli("--env", "development", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"}).exit_code == 3
    (project / ".env").write_text("A='unterminated\n")
    (project / "envfence.toml").write_text("environments = 3\n")
    assert run_cli("run", "touch", cwd=project).exit_code == 4


def test_run_help_links_the_exit_code_table(run_cli, tmp_path):
    result = run_cli("run", "--help", cwd=tmp_path)
    assert "docs/running.md#exit-codes" in result.stdout


# --- 8. development warns before a run with errors ---------------------------------------

def test_development_prints_other_errors_before_a_run_and_goes_on_without_a_terminal(make_project, run_cli):
    # A malformed credential refuses the run (tests/e2e/test_malformed_credentials.py); other errors are shown.
    root = make_project({"jobs.py": JOBS, ".env": "AIRTABLE_BASE_ID=notabase\n"}, settings='[automations]\ntouch = "jobs:touch"\n')
    result = run_cli("run", "touch", cwd=root)
    assert result.exit_code == 0, result.output
    assert "AIRTABLE_BASE_ID_FORMAT" in result.stderr and "before the run" in result.stderr
    assert marker(root, "development").exists()


def test_development_asks_on_a_terminal_before_running_past_errors(make_project, run_cli, monkeypatch):
    import envfence.cli.run as run_module

    root = make_project({"jobs.py": JOBS, ".env": "AIRTABLE_BASE_ID=notabase\n"}, settings='[automations]\ntouch = "jobs:touch"\n')
    monkeypatch.setattr(run_module, "_on_a_terminal", lambda: True)
    declined = run_cli("run", "touch", cwd=root, input="n\n")
    assert declined.exit_code == 3 and not marker(root, "development").exists()
    accepted = run_cli("run", "touch", cwd=root, input="y\n")
    assert accepted.exit_code == 0 and marker(root, "development").exists()
