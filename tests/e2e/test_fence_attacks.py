"""The fence tried as an adversary would: names, globs, stand-ins and targets that once slipped through."""

from __future__ import annotations

import pytest

SETTINGS = """
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
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def _on(monkeypatch, real: str) -> None:
    """The system's own name is ``real`` (the core's seam)."""
    import envfence.opening

    monkeypatch.setattr(envfence.opening, "system_hostname", lambda: real)


def _ran(project, env: str = "development") -> bool:
    return (project / "var" / env / "marker").exists()


# --- host names -------------------------------------------------------------------------

@pytest.mark.parametrize("real", ["web-01.example.com.", "WEB-01.Example.COM", " web-01.example.com"])
def test_an_enrolled_production_host_is_production_whatever_the_spelling_of_its_name(project, run_cli, monkeypatch, real):
    """A fully qualified name ends in a dot; without care it escaped its enrollment and ran development."""
    _on(monkeypatch, real)
    (project / "envfence.toml").write_text(SETTINGS + '\n[hostname.production]\nhosts = ["web-*.example.com"]\n')
    result = run_cli("--env", "dev", "run", "touch", cwd=project)
    assert result.exit_code == 3 and "HOSTNAME_MISMATCH" in result.stderr, result.output
    assert not _ran(project)


@pytest.mark.parametrize("glob", ["*", "?*", "[a-z]*", "**"])
@pytest.mark.parametrize("env", ["production", "development"])
def test_a_glob_that_enrolls_every_host_is_refused(project, run_cli, monkeypatch, glob, env):
    """``hosts = ["*"]`` in production would run production anywhere; in development, development on production hosts."""
    _on(monkeypatch, "web-prod-01")
    (project / "envfence.toml").write_text(SETTINGS + f'\n[hostname.{env}]\nhosts = ["{glob}"]\n')
    for args in (("--env", "dev", "run", "touch"), ("--env", "prod", "run", "touch"), ("check",)):
        result = run_cli(*args, cwd=project)
        assert result.exit_code == 4, (args, result.output)
        assert f"[hostname].{env}.hosts" in result.stderr and "matches every host" in result.stderr
    assert not _ran(project) and not _ran(project, "production")


def test_a_hostname_pattern_that_matches_every_name_is_refused(project, run_cli, monkeypatch):
    _on(monkeypatch, "dev-laptop-07")
    (project / "envfence.toml").write_text(SETTINGS + '\n[environments.production]\nhostname_patterns = ["*"]\n')
    result = run_cli("--env", "prod", "run", "touch", cwd=project)
    assert result.exit_code == 4 and "hostname_patterns" in result.stderr and "matches every name" in result.stderr
    assert not _ran(project, "production")


@pytest.mark.parametrize("blank", ["", " ", "\t \n"])
def test_a_blank_stand_in_is_no_name_even_where_stand_ins_are_allowed(project, run_cli, monkeypatch, blank):
    """A stand-in of blanks once counted as an unclassified name and let development run on a production host."""
    _on(monkeypatch, "web-prod-01")
    (project / "envfence.toml").write_text(SETTINGS + "\n[hostname]\nallow_stand_in = true\n")
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


def test_a_plugin_that_answers_classify_host_first_can_tighten_the_guard_but_not_loosen_it(project, run_cli, monkeypatch):
    from envfence.plugins import add_inline_plugin, remove_inline_plugin

    _on(monkeypatch, "web-prod-01")
    name = add_inline_plugin(_Liar(), "liar")
    try:
        result = run_cli("--env", "dev", "run", "touch", cwd=project)
    finally:
        remove_inline_plugin(name)
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
