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
    import envfence_builtins.detection.hostname as hostname

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
    assert result.exit_code == 4 and problem in result.stderr and ("[hostname]" in result.stderr or "hostname.allow_stand_in:" in result.stderr)


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


# --- tried as an adversary: names, globs, stand-ins, targets and the record that once slipped through ---

def _ran(project, env: str = "development") -> bool:
    return (project / "var" / env / "marker").exists()


# --- host names -------------------------------------------------------------------------

@pytest.mark.parametrize("glob", ["web-*.example.com", "WEB-*.example.com."])
@pytest.mark.parametrize("real", ["web-01.example.com.", "WEB-01.Example.COM", " web-01.example.com"])
def test_an_enrolled_production_host_is_production_whatever_the_spelling_of_its_name(project, run_cli, monkeypatch, real, glob):
    """A fully qualified name ends in a dot; without care it escaped its enrollment and ran development."""
    _on(monkeypatch, real)
    (project / "envfence.toml").write_text(TARGETS + f'\n[hostname.production]\nhosts = ["{glob}"]\n')
    result = run_cli("--env", "dev", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "HOSTNAME_MISMATCH" in result.stderr, result.output
    assert not _ran(project)


@pytest.mark.parametrize("glob", ["*", "?*", "[a-z]*", "**"])
@pytest.mark.parametrize("env", ["production", "development"])
def test_a_glob_that_enrolls_every_host_is_refused(project, run_cli, monkeypatch, glob, env):
    """``hosts = ["*"]`` in production would run production anywhere; in development, development on production hosts."""
    _on(monkeypatch, "web-prod-01")
    (project / "envfence.toml").write_text(TARGETS + f'\n[hostname.{env}]\nhosts = ["{glob}"]\n')
    for args in (("--env", "dev", "run", "touch"), ("--env", "prod", "run", "touch"), ("check",)):
        result = run_cli(*args, cwd=project)
        assert result.exit_code == 4, (args, result.output)
        assert f"[hostname].{env}.hosts" in result.stderr and "matches every host" in result.stderr
    assert not _ran(project) and not _ran(project, "production")


def test_a_hostname_pattern_that_matches_every_name_is_refused(project, run_cli, monkeypatch):
    _on(monkeypatch, "dev-laptop-07")
    (project / "envfence.toml").write_text(TARGETS + '\n[environments.production]\nhostname_patterns = ["*"]\n')
    result = run_cli("--env", "prod", "run", "touch", cwd=project)
    assert result.exit_code == 4 and "hostname_patterns" in result.stderr and "matches every name" in result.stderr
    assert not _ran(project, "production")


@pytest.mark.parametrize("blank", ["", " ", "\t \n"])
def test_a_blank_stand_in_is_no_name_even_where_stand_ins_are_allowed(project, run_cli, monkeypatch, blank):
    """A stand-in of blanks once counted as an unclassified name and let development run on a production host."""
    _on(monkeypatch, "web-prod-01")
    (project / "envfence.toml").write_text(TARGETS + "\n[hostname]\nallow_stand_in = true\n")
    result = run_cli("--env", "dev", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": blank})
    assert result.exit_code == 3 and "HOSTNAME_MISMATCH" in result.stderr, result.output
    assert "'web-prod-01'" in result.stderr and not _ran(project)


# --- targets ----------------------------------------------------------------------------

def test_a_production_target_given_by_set_under_a_plain_name_is_guarded(project, run_cli, monkeypatch):
    """``DEV_AIRTABLE_BASE_ID`` shadows the plain key in a command's environment, but a function reads ``ctx.config``."""
    _on(monkeypatch, "dev-laptop-07")
    (project / ".env.development").write_text("DEV_AIRTABLE_BASE_ID=appSandboxBase001\n")
    result = run_cli("run", "touch", "--set", "AIRTABLE_BASE_ID=appLiveBase000001", cwd=project)
    assert result.exit_code == 3 and "TARGET_GUARD [AIRTABLE_BASE_ID]" in result.stderr, result.output
    assert not _ran(project)


def test_a_production_target_shadowed_in_a_dotenv_file_is_a_check_error(project, run_cli, monkeypatch):
    _on(monkeypatch, "dev-laptop-07")
    (project / ".env").write_text("AIRTABLE_BASE_ID=appLiveBase000001\n")
    (project / ".env.development").write_text("DEV_AIRTABLE_BASE_ID=appSandboxBase001\n")
    check = run_cli("check", cwd=project)
    assert check.exit_code == 1 and "TARGET_IN_OTHER_ENVIRONMENT [AIRTABLE_BASE_ID]" in check.stdout, check.output
    assert run_cli("run", "touch", cwd=project).exit_code == 3 and not _ran(project)


@pytest.mark.parametrize("value", ["applivebase000001", "APPLIVEBASE000001", "https://airtable.com/APPLIVEBASE000001/tblJobs"])
def test_a_production_target_in_another_case_is_still_production_s(project, run_cli, monkeypatch, value):
    _on(monkeypatch, "dev-laptop-07")
    (project / ".env.development").write_text(f"DEV_AIRTABLE_BASE_ID={value}\n")
    result = run_cli("run", "touch", cwd=project)
    assert result.exit_code == 3 and "TARGET_GUARD" in result.stderr and not _ran(project)


# --- switching the record off -----------------------------------------------------------

@pytest.mark.parametrize(
    "how",
    [
        {"args": ("-p", "no:audit")},
        {"env": {"ENVFENCE_DISABLE_PLUGINS": " hostname , audit "}},
        {"env": {"ENVFENCE_PLUGINS": "project_root,dotenv_files,directories,hostname,targets,automations"}},
    ],
)
def test_an_override_is_refused_when_the_audit_trail_is_switched_off(project, run_cli, monkeypatch, how):
    """``-p no:audit --force`` once ran production forced, said "recorded in the audit trail", and recorded nothing."""
    _on(monkeypatch, "dev-laptop-07")
    assert run_cli("--env", "prod", "init", cwd=project).exit_code == 0
    trail = project / "var" / "production" / "audit" / "audit_production.jsonl"
    before = trail.read_bytes()
    result = run_cli(*how.get("args", ()), "--env", "prod", "run", "touch", "--force", "--reason", "quietly", cwd=project, env=how.get("env"))
    assert result.exit_code == 3, result.output
    assert "could not be recorded" in result.stderr
    assert not _ran(project, "production") and trail.read_bytes() == before


class _Liar:
    """A third-party plugin that answers classify_host first and says every host is a development one."""

    from envfence import hookimpl

    @hookimpl(tryfirst=True)
    def classify_host(self, hostname, settings):
        from envfence.models import HostInfo

        return HostInfo(hostname=hostname, matches=(("development", "everything"),))


def test_a_plugin_that_answers_classify_host_first_can_tighten_the_guard_but_not_loosen_it(project, run_cli, monkeypatch, envfence_plugin):
    _on(monkeypatch, "web-prod-01")
    envfence_plugin(_Liar(), "liar")
    result = run_cli("--env", "dev", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "HOSTNAME_MISMATCH" in result.stderr, result.output
    assert "'web-prod-01'" in result.stderr and "token 'prod'" in result.stderr and not _ran(project)


def test_one_secret_under_two_names_in_two_environments_is_found_without_showing_it(project, run_cli, monkeypatch):
    """Shared secrets were compared by name only: DEV_API_PASSWORD and PROD_DB_PASSWORD holding one value passed."""
    _on(monkeypatch, "dev-laptop-07")
    secret = "s3cr3t-Canary-value-42"
    (project / ".env.development").write_text(f"DEV_API_PASSWORD={secret}\n")
    (project / ".env.production").write_text(f'PROD_DB_PASSWORD="{secret}"\n')
    for env in ("dev", "prod"):
        check = run_cli("--env", env, "check", cwd=project)
        assert "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS" in check.stdout, check.output
        assert "DEV_API_PASSWORD (development) and PROD_DB_PASSWORD (production)" in check.stdout
        assert "Canary" not in check.output


@pytest.mark.parametrize("reason", ["deploy\n2026-11-30 02:00:00  touch  succeeded", "tab\tand\x1b[2Jescape"])
def test_a_reason_that_would_forge_a_line_of_its_own_is_refused(project, run_cli, monkeypatch, reason):
    _on(monkeypatch, "vm")  # production is blocked here (not enrolled), and development is not
    for env in ("prod", "dev"):
        result = run_cli("--env", env, "run", "touch", "--force", "--reason", reason, cwd=project)
        assert result.exit_code == 3 and "one line of text" in result.stderr, result.output
    assert not _ran(project, "production") and not _ran(project)


class _Unregisterer:
    """A third-party plugin that takes the hostname guard out of the manager while the run validates."""

    from envfence import hookimpl

    @hookimpl
    def validate(self, session):
        plugin = session.plugins.pm.get_plugin("hostname")
        if plugin is not None:
            session.plugins.pm.unregister(plugin)
        return []


def test_a_guard_another_plugin_unregisters_counts_as_disabled(project, run_cli, monkeypatch, envfence_plugin):
    _on(monkeypatch, "web-prod-01")
    envfence_plugin(_Unregisterer(), "unregisterer")
    result = run_cli("--env", "dev", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "GUARD_DISABLED" in result.stderr and "unregistered after loading" in result.stderr, result.output
    assert not _ran(project)


@pytest.mark.parametrize("host", ["non-prod-01", "pre-prod-web-2", "prod-like-01"])
def test_a_host_named_as_no_production_host_does_not_run_production_unenrolled(project, run_cli, monkeypatch, host):
    """``non-prod-01`` once carried the token ``prod`` and so ran production with no enrollment and no override."""
    _on(monkeypatch, host)
    result = run_cli("--env", "prod", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "HOST_NOT_ENROLLED" in result.stderr, result.output
    assert not _ran(project, "production")
    assert run_cli("--env", "dev", "run", "touch", cwd=project).exit_code == 0 and _ran(project)
