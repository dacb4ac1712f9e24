"""Which environment: --env, then ENVIRONMENT, then the hostname, then the default."""

from __future__ import annotations

import json

import pytest

import envfence


def detect(run_cli, root, *args, **env):
    result = run_cli(*args, "--json", "detect", cwd=root, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_default_is_development_when_nothing_decides(make_project, run_cli):
    data = detect(run_cli, make_project())
    assert (data["environment"], data["method"]) == ("development", "default")


def test_hostname_decides_when_no_variable(make_project, run_cli):
    data = detect(run_cli, make_project(), ENVFENCE_HOSTNAME="sync-prod-02")
    assert (data["environment"], data["method"]) == ("production", "hostname")
    assert "sync-prod-02" in data["evidence"]


def test_variable_beats_hostname(make_project, run_cli):
    data = detect(run_cli, make_project(), ENVFENCE_HOSTNAME="sync-prod-02", ENVIRONMENT="dev")
    assert (data["environment"], data["method"]) == ("development", "ENVIRONMENT variable")
    assert data["evidence"] == "ENVIRONMENT=dev"


def test_flag_beats_a_variable_that_agrees(make_project, run_cli):
    data = detect(run_cli, make_project(), "--env", "live", ENVIRONMENT="production")
    assert (data["environment"], data["method"], data["evidence"]) == ("production", "flag", "--env live")


def test_flag_and_a_variable_that_disagree_are_a_usage_error(make_project, run_cli):
    result = run_cli("--env", "live", "detect", cwd=make_project(), env={"ENVIRONMENT": "development"})
    assert result.exit_code == 2 and "--env live names production" in result.stderr


@pytest.mark.parametrize("alias", ["prod", "PROD", "live", "production", " Production "])
def test_aliases_normalise_to_the_declared_name(make_project, run_cli, alias):
    data = detect(run_cli, make_project(), ENVIRONMENT=alias)
    assert data["environment"] == "production"


def test_variable_name_is_a_setting(make_project, run_cli):
    root = make_project(settings='environment_variable = "APP_ENV"\n')
    assert detect(run_cli, root, APP_ENV="prod")["environment"] == "production"
    assert detect(run_cli, root, ENVIRONMENT="prod")["environment"] == "development"


def test_empty_variable_is_ignored(make_project, run_cli):
    assert detect(run_cli, make_project(), ENVIRONMENT="")["method"] == "default"


def test_unknown_env_flag_is_a_usage_error_listing_environments(make_project, run_cli):
    result = run_cli("--env", "prodd", "detect", cwd=make_project())
    assert result.exit_code == 2
    assert "unknown environment 'prodd'" in result.stderr
    assert "development" in result.stderr and "production" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_variable_value_is_a_configuration_error(make_project, run_cli):
    result = run_cli("detect", cwd=make_project(), env={"ENVIRONMENT": "qa"})
    assert result.exit_code == 4
    assert "ENVIRONMENT=qa" in result.stderr
    assert "declare it under [environments.qa]" in result.stderr


def test_unknown_env_in_json_mode_is_a_json_error(make_project, run_cli):
    result = run_cli("--json", "--env", "nope", "detect", cwd=make_project())
    assert result.exit_code == 2
    assert json.loads(result.stdout)["exit_code"] == 2


def test_declared_environment_with_its_aliases(make_project, run_cli):
    root = make_project(settings='[environments.staging]\nbased_on = "production"\naliases = ["stage", "stg"]\nprefix = "STG"\n')
    data = detect(run_cli, root, ENVIRONMENT="stage")
    assert data["environment"] == "staging"
    assert data["profile"] == {"name": "staging", "based_on": "production", "strict": True}


def test_detection_is_recorded_with_time_method_and_evidence(make_project, recorded):
    session = envfence.open_session(make_project(), environ={"ENVIRONMENT": "prod"}, plugins=recorded.plugins)
    detected = [e for e in recorded.events if e.event == "environment.detected"]
    assert len(detected) == 1
    assert detected[0].environment == "production"
    assert detected[0].data["method"] == "ENVIRONMENT variable"
    assert detected[0].data["evidence"] == "ENVIRONMENT=prod"
    assert detected[0].data["at"] == session.environment.decided_at.isoformat()


def test_a_stand_in_hostname_is_on_the_record(make_project, recorded, monkeypatch):
    import socket

    import envfence.opening

    monkeypatch.setattr(envfence.opening, "system_hostname", socket.gethostname)  # the machine's own name
    envfence.open_session(make_project(), environ={"ENVFENCE_HOSTNAME": "dev-laptop"}, plugins=recorded.plugins)
    [detected] = [e for e in recorded.events if e.event == "environment.detected"]
    assert detected.data["host"] == "dev-laptop"
    assert detected.data["host_source"] == "ENVFENCE_HOSTNAME"
    assert detected.data["real_host"] == socket.gethostname()


def test_production_output_is_terse_and_development_verbose(make_project, run_cli):
    root = make_project()
    prod = run_cli("--env", "prod", "detect", cwd=root)
    assert prod.stdout.strip().startswith("environment=production method=flag")
    assert len(prod.stdout.strip().splitlines()) == 1
    dev = run_cli("detect", cwd=root)
    assert "decided by" in dev.stdout
    assert run_cli("-v", "--env", "prod", "detect", cwd=root).stdout.count("\n") > 3


def test_detect_without_the_hostname_plugin_says_the_machine_id_was_not_read(make_project, run_cli):
    root = make_project()
    result = run_cli("-p", "no:hostname", "detect", cwd=root)
    assert result.exit_code == 0, result.output
    assert "machine id not read (no plugin classifies hosts)" in result.stdout
    assert "no /etc/machine-id" not in result.stdout


def test_detect_notes_that_the_host_is_not_enrolled_in_a_strict_environment(make_project, run_cli):
    data = detect(run_cli, make_project(), "--env", "production", ENVFENCE_HOSTNAME="vm")
    [note] = [n for n in data["notes"] if n["code"] == "HOST_NOT_ENROLLED"]
    assert 'hosts = ["vm"]' in note["remediation"] + note["message"]
