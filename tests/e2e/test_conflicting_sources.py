"""`--env` and the `ENVIRONMENT` variable naming different environments is a usage error naming both."""

from __future__ import annotations

import pytest

JOBS = """
def touch(ctx):
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
"""


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings='[automations]\ntouch = "jobs:touch"\n')


@pytest.mark.parametrize("command", [["run", "touch"], ["detect"], ["check"], ["config", "show"]])
def test_flag_and_variable_naming_different_environments_is_a_usage_error(project, run_cli, command):
    result = run_cli("--env", "dev", *command, cwd=project, env={"ENVIRONMENT": "production"})
    assert result.exit_code == 2, result.output
    assert "--env dev names development" in result.stderr and "ENVIRONMENT=production names production" in result.stderr
    assert not (project / "var" / "development" / "marker").exists()


def test_flag_and_variable_that_agree_through_an_alias_run(project, run_cli):
    result = run_cli("--env", "dev", "run", "touch", cwd=project, env={"ENVIRONMENT": "development"})
    assert result.exit_code == 0, result.output
    assert (project / "var" / "development" / "marker").read_text() == "development"


def test_a_variable_naming_no_environment_beside_the_flag_is_a_usage_error(project, run_cli):
    result = run_cli("--env", "development", "detect", cwd=project, env={"ENVIRONMENT": "prodd"})
    assert result.exit_code == 2
    assert "ENVIRONMENT=prodd names no declared environment" in result.stderr


def test_a_renamed_variable_is_the_one_compared(make_project, run_cli):
    root = make_project(settings='environment_variable = "APP_ENV"\n')
    assert run_cli("--env", "development", "detect", cwd=root, env={"ENVIRONMENT": "production"}).exit_code == 0
    result = run_cli("--env", "development", "detect", cwd=root, env={"APP_ENV": "production"})
    assert result.exit_code == 2 and "APP_ENV=production" in result.stderr


def test_the_library_may_open_another_environment_whatever_the_variable(project, monkeypatch):
    import envfence

    monkeypatch.setenv("ENVIRONMENT", "development")
    assert envfence.open_session(project, env="production").environment.name == "production"
