"""The fence holds: each way a run once reached the wrong environment, as a user meets it."""

from __future__ import annotations

import json

import pytest

TARGETS = """
[automations]
touch = "jobs:touch"

[targets]
production = ["appLiveBase000001"]
development = ["appSandboxBase001"]
"""
JOBS = '''
def touch(ctx):
    if not ctx.dry_run:
        ctx.paths.base.joinpath("marker").write_text(ctx.environment)
'''


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=TARGETS)


def _on(monkeypatch, real: str) -> None:
    """The system's own name is ``real`` (the core's seam)."""
    import envfence.opening

    monkeypatch.setattr(envfence.opening, "system_hostname", lambda: real)


# --- 1. unclassified hosts ---------------------------------------------------------------

@pytest.mark.parametrize("host", ["vm", "Johns-MacBook-Pro", "ip-10-0-0-12", "prodserver01"])
def test_production_on_an_unclassified_host_is_blocked_and_says_how_to_enroll(project, run_cli, monkeypatch, host):
    _on(monkeypatch, host)
    result = run_cli("--env", "prod", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": host})
    assert result.exit_code == 3
    assert "HOST_NOT_ENROLLED" in result.stderr and f'add under [hostname.production] in envfence.toml: hosts = ["{host.lower()}"]' in result.stderr
    assert not (project / "var" / "production" / "marker").exists()
    forced = run_cli("--env", "prod", "run", "touch", "--force", "--reason", "first deploy", cwd=project, env={"ENVFENCE_HOSTNAME": host})
    assert forced.exit_code == 0 and (project / "var" / "production" / "marker").exists()


def test_an_enrolled_host_runs_production_and_detect_shows_the_rule(project, run_cli, monkeypatch):
    _on(monkeypatch, "ip-10-0-0-12")
    (project / "envfence.toml").write_text(TARGETS + '\n[hostname.production]\nhosts = ["ip-10-0-0-*"]\n')
    assert run_cli("--env", "prod", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "ip-10-0-0-12"}).exit_code == 0
    shown = run_cli("--json", "detect", cwd=project, env={"ENVFENCE_HOSTNAME": "ip-10-0-0-12"})
    host = json.loads(shown.stdout)["host"]
    assert host["class"] == "production" and host["enrolled"] is True
    assert host["rule"] == "hosts 'ip-10-0-0-*'"


def test_a_host_enrolled_by_its_machine_id(project, run_cli, monkeypatch, tmp_path):
    import envfence_builtins.hostname as hostname

    machine = tmp_path / "machine-id"
    machine.write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setattr(hostname, "MACHINE_ID_FILES", (str(machine),))
    _on(monkeypatch, "vm")
    (project / "envfence.toml").write_text(TARGETS + '\n[hostname.production]\nmachine_ids = ["0123456789ABCDEF0123456789ABCDEF"]\n')
    result = run_cli("--env", "prod", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "vm"})
    assert result.exit_code == 0, result.output
    # enrollment decides first: the development run is now on a production host
    dev = run_cli("run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "vm"})
    assert dev.exit_code == 0 and json.loads(run_cli("--json", "detect", cwd=project, env={"ENVFENCE_HOSTNAME": "vm"}).stdout)["environment"] == "production"


def test_development_still_runs_on_an_unclassified_host(project, run_cli, monkeypatch):
    _on(monkeypatch, "vm")
    assert run_cli("run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "vm"}).exit_code == 0


def test_check_of_production_on_an_unenrolled_host_says_why_and_the_line_to_add(project, run_cli, monkeypatch):
    _on(monkeypatch, "vm")
    result = run_cli("--env", "production", "--json", "check", cwd=project, env={"ENVFENCE_HOSTNAME": "vm"})
    [finding] = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "HOST_NOT_ENROLLED"]
    assert "matches no rule" in finding["message"] and 'hosts = ["vm"]' in finding["remediation"]


@pytest.mark.parametrize("table, problem", [
    ('[hostname.nowhere]\nhosts = ["x"]\n', "neither an option"),
    ('[hostname.production]\nhosts = 3\n', "must be a list of strings"),
    ('[hostname.production]\nhost = ["x"]\n', "unknown key"),
    ('[hostname]\nallow_stand_in = "yes"\n', "true or false"),
])
def test_malformed_enrollment_is_a_configuration_error_naming_the_key(make_project, run_cli, table, problem):
    root = make_project(settings=table)
    result = run_cli("detect", cwd=root)
    assert result.exit_code == 4 and problem in result.stderr and "[hostname]" in result.stderr


# --- 3. ambiguous hosts ------------------------------------------------------------------

@pytest.mark.parametrize("env, flags, code", [
    ("development", [], 3),
    ("production", [], 3),
    ("production", ["--force"], 3),
    ("production", ["--force", "--reason", "bridge maintenance"], 0),
    ("development", ["--force"], 0),
])
def test_an_ambiguous_host_blocks_every_environment(project, run_cli, env, flags, code):
    result = run_cli("--env", env, "run", "touch", *flags, cwd=project, env={"ENVFENCE_HOSTNAME": "dev-prod-bridge"})
    assert result.exit_code == code, result.output
    if code == 3:
        assert "HOSTNAME_AMBIGUOUS" in result.stderr


# --- 4. the stand-in only tightens -------------------------------------------------------

def test_a_stand_in_development_name_on_a_production_host_blocks_and_is_audited_when_forced(project, run_cli, monkeypatch, audit_events):
    _on(monkeypatch, "web-prod-01")
    result = run_cli("run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "dev-laptop-07"})
    assert result.exit_code == 3
    assert "'web-prod-01' (the system's own name; ENVFENCE_HOSTNAME=dev-laptop-07 stands in for it" in result.stderr
    forced = run_cli("run", "touch", "--force", cwd=project, env={"ENVFENCE_HOSTNAME": "dev-laptop-07"})
    assert forced.exit_code == 0
    detected = [e for e in audit_events if e.event == "environment.detected"][-1]
    assert detected.data["real_host"] == "web-prod-01" and detected.data["host_source"] == "ENVFENCE_HOSTNAME"


def test_a_stand_in_cannot_enroll_a_host(project, run_cli, monkeypatch):
    _on(monkeypatch, "vm")
    result = run_cli("--env", "prod", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert result.exit_code == 3 and "HOST_NOT_ENROLLED" in result.stderr and "'vm'" in result.stderr


def test_allow_stand_in_lets_a_container_name_itself_and_the_trail_says_so(project, run_cli, monkeypatch, audit_events):
    _on(monkeypatch, "3f9c2a7d1b0e")
    (project / "envfence.toml").write_text(TARGETS + "\n[hostname]\nallow_stand_in = true\n")
    result = run_cli("--env", "prod", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert result.exit_code == 0, result.output
    [used] = [e for e in audit_events if e.event == "hostname.stand_in"]
    assert used.data["hostname"] == "web-prod-01" and used.data["real_host"] == "3f9c2a7d1b0e"


# --- 5. targets held as secrets ----------------------------------------------------------

@pytest.mark.parametrize("settings, env_file", [
    ('secrets = ["AIRTABLE_BASE_ID"]\n', "DEV_AIRTABLE_BASE_ID=appLiveBase000001\n"),
    ("", "DEV_AIRTABLE_BASE_TOKEN=appLiveBase000001\n"),
])
def test_a_production_target_held_as_a_secret_is_caught_by_check_and_the_guard(make_project, run_cli, settings, env_file):
    root = make_project({"jobs.py": JOBS, ".env.development": env_file}, settings=settings + TARGETS)
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1 and "TARGET_IN_OTHER_ENVIRONMENT" in check.stdout
    run = run_cli("run", "touch", cwd=root)
    assert run.exit_code == 3 and "TARGET_GUARD" in run.stderr
    for output in (check.output, run.output):
        assert "appLiveBase000001" not in output  # the secret's value is never shown
    assert not (root / "var" / "development" / "marker").exists()


def test_an_encrypted_production_target_is_caught_after_decryption(make_project, run_cli):
    pytest.importorskip("cryptography")
    root = make_project({"jobs.py": JOBS}, settings=TARGETS)
    assert run_cli("secret", "keygen", cwd=root).exit_code == 0
    line = run_cli("secret", "encrypt", "DEV_AIRTABLE_BASE_ID", cwd=root, input="appLiveBase000001").stdout.strip()
    (root / ".env.development").write_text(line + "\n")
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1 and "TARGET_IN_OTHER_ENVIRONMENT" in check.stdout
    run = run_cli("run", "touch", cwd=root)
    assert run.exit_code == 3 and "TARGET_GUARD" in run.stderr
    assert "appLiveBase000001" not in check.output + run.output
