"""A malformed credential refuses the run in every environment; development asks at a terminal, cron needs a reason."""

from __future__ import annotations

import sys

import pytest

JOBS = """
def touch(ctx):
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
"""
SETTINGS = '[automations]\ntouch = "jobs:touch"\n'
GOOD_TOKEN = "pat" + "A" * 14 + "." + "a" * 64
CANARY = "garbage-canary-Zq81"


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS, ".env.development": f"DEV_AIRTABLE_API_KEY={CANARY}\n"}, settings=SETTINGS)


def marker(project):
    return project / "var" / "development" / "marker"


def test_a_malformed_development_credential_refuses_the_run_without_a_terminal(project, run_cli):
    result = run_cli("--env", "development", "run", "touch", cwd=project)
    assert result.exit_code == 3, result.output
    assert "CREDENTIAL_INVALID" in result.stderr and "DEV_AIRTABLE_API_KEY" in result.stderr
    assert "--force --reason TEXT" in result.stderr
    assert CANARY not in result.output
    assert not marker(project).exists()


def test_force_without_a_reason_is_refused_and_with_one_runs_on_the_record(project, run_cli, audit_events):
    refused = run_cli("--env", "development", "run", "touch", "--force", cwd=project)
    assert refused.exit_code == 3 and "needs --reason" in refused.stderr
    assert not marker(project).exists()
    forced = run_cli("--env", "development", "run", "touch", "--force", "--reason", "testing the importer", cwd=project)
    assert forced.exit_code == 0, forced.output
    assert marker(project).exists()
    event = [e for e in audit_events if e.event == "run.forced"][-1]
    assert event.data["overridden"] == ["CREDENTIAL_INVALID"] and event.data["reason"] == "testing the importer"


def test_a_well_formed_credential_runs(project, run_cli):
    (project / ".env.development").write_text(f"DEV_AIRTABLE_API_KEY={GOOD_TOKEN}\n")
    assert run_cli("--env", "development", "run", "touch", cwd=project).exit_code == 0
    assert marker(project).exists()


def test_a_malformed_production_credential_refuses_the_run(project, run_cli):
    (project / ".env.production").write_text(f"PROD_AIRTABLE_API_KEY={CANARY}\n")
    (project / "envfence.toml").write_text(SETTINGS + '[hostname.production]\nhosts = ["build-box-*"]\n')
    result = run_cli("--env", "production", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "VALIDATION_FAILED_STRICT" in result.stderr


def test_check_names_the_malformed_credential(project, run_cli):
    result = run_cli("--env", "development", "check", cwd=project)
    assert result.exit_code == 1 and "AIRTABLE_TOKEN_FORMAT" in result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_person_at_a_development_terminal_is_asked(project):
    from envfence.testing.project import on_a_terminal

    code, screen = on_a_terminal(["--env", "development", "run", "touch"], project, {"ENVFENCE_HOSTNAME": "build-box-01"}, "nope")
    assert code == 3, screen
    assert "CREDENTIAL_INVALID" in screen and "Type the environment's name" in screen
    assert not marker(project).exists()
    code, screen = on_a_terminal(["--env", "development", "run", "touch"], project, {"ENVFENCE_HOSTNAME": "build-box-01"}, "development")
    assert code == 0, screen
    assert marker(project).exists() and CANARY not in screen
