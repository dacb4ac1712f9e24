"""A host whose name holds another environment's keyword inside a word is suspect, and the guard asks or refuses.

`prodserver01` has no `prod` token, so it is not classified; it may still be a
production host. A development run there is refused without a terminal unless
forced with a reason or the host is enrolled in development; a person at a
development terminal is asked. Names are read in NFKC form, in lower case, with
look-alike letters mapped, and environment names with `_` match a run of tokens.
"""

from __future__ import annotations

import json
import sys

import pytest

from envfence.settings import parse_settings
from envfence_builtins.detection.hostname import classify, normal

JOBS = """
def touch(ctx):
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
"""
SETTINGS = '[automations]\ntouch = "jobs:touch"\n'


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def marker(project, env="development"):
    return project / "var" / env / "marker"


@pytest.mark.parametrize("name", ["prodserver01", "myproduction", "PRODSERVER01.example.com", "db-myprod-3"])
def test_a_keyword_inside_a_word_makes_the_host_suspect_not_classified(name):
    host = classify(name, parse_settings({}, None))
    assert host.environment is None
    assert ("production", "prod") in host.suspects


@pytest.mark.parametrize("name", ["nonprod01", "preprod-web", "prodlike-box", "build-box-01", "web-01"])
def test_a_qualified_or_missing_keyword_is_not_suspect(name):
    assert classify(name, parse_settings({}, None)).suspects == ()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pr\u043ed-1", "production"),  # Cyrillic o
        ("\u0440rod-1", "production"),  # Cyrillic er
        ("\uff50\uff52\uff4f\uff44-1", "production"),  # full width
        ("PR\u041eD-DB", "production"),  # Cyrillic capital O
        ("d\u0435v-laptop", "development"),  # Cyrillic ie
    ],
)
def test_look_alike_letters_are_read_as_the_letters_they_imitate(name, expected):
    assert classify(name, parse_settings({}, None)).environment == expected


def test_a_look_alike_name_cannot_escape_its_enrollment():
    settings = parse_settings({"hostname": {"production": {"hosts": ["web-*.example.com"]}}}, None)
    host = classify("w\u0435b-1.\u0435xample.com", settings)
    assert host.enrolled and host.environment == "production"
    assert normal("W\u0435B-1.") == "web-1"


def test_an_environment_name_with_an_underscore_matches_by_tokens():
    settings = parse_settings({"environments": {"qa": {"based_on": "production"}, "qa_eu": {"based_on": "production"}}}, None)
    assert classify("web-qa-eu-1", settings).environment == "qa_eu"
    assert classify("qa_eu07", settings).environment == "qa_eu"
    assert classify("web-qa-1", settings).environment == "qa"
    assert classify("myqaeubox", settings).suspects == (("qa_eu", "qaeu"),)


def test_suspect_keywords_are_configurable(make_project):
    settings = parse_settings({"hostname": {"production": {"suspect": []}}}, None)
    assert classify("prodserver01", settings).suspects == ()
    settings = parse_settings({"hostname": {"production": {"suspect": ["live"]}}}, None)
    assert classify("olive-01", settings).suspects == (("production", "live"),)


def test_development_on_a_production_suspect_host_is_refused_without_a_terminal(project, run_cli):
    result = run_cli("--env", "development", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "prodserver01"})
    assert result.exit_code == 3, result.output
    assert "HOSTNAME_SUSPECT" in result.stderr and "'prod'" in result.stderr
    assert "--force --reason TEXT" in result.stderr
    assert not marker(project).exists()


def test_force_past_a_suspect_host_without_a_terminal_needs_a_reason(project, run_cli, audit_events):
    env = {"ENVFENCE_HOSTNAME": "myproduction"}
    result = run_cli("--env", "development", "run", "touch", "--force", cwd=project, env=env)
    assert result.exit_code == 3 and "needs --reason" in result.stderr
    assert not marker(project).exists()
    result = run_cli("--env", "development", "run", "touch", "--force", "--reason", "lab box", cwd=project, env=env)
    assert result.exit_code == 0, result.output
    assert marker(project).exists()
    forced = [e for e in audit_events if e.event == "run.forced"]
    assert forced and forced[-1].data["overridden"] == ["HOSTNAME_SUSPECT"] and forced[-1].data["reason"] == "lab box"


def test_a_suspect_host_enrolled_in_the_run_environment_runs(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + '[hostname.development]\nhosts = ["prodserver01"]\n')
    result = run_cli("--env", "development", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "prodserver01"})
    assert result.exit_code == 0, result.output
    assert marker(project).exists()


def test_production_on_a_development_suspect_host_is_refused_the_other_way_round(project, run_cli):
    # A token says production, a word inside says development: not enrolled, so refused without a reason.
    env = {"ENVFENCE_HOSTNAME": "web-prod-mydevbox"}
    result = run_cli("--env", "production", "run", "touch", cwd=project, env=env)
    assert result.exit_code == 3 and "HOSTNAME_SUSPECT" in result.stderr and "development" in result.stderr
    assert not marker(project, "production").exists()
    (project / "envfence.toml").write_text(SETTINGS + '[hostname.production]\nhosts = ["web-prod-*"]\n')
    assert run_cli("--env", "production", "run", "touch", cwd=project, env=env).exit_code == 0
    assert marker(project, "production").exists()


def test_a_look_alike_production_name_blocks_a_development_run(project, run_cli):
    result = run_cli("--env", "development", "run", "touch", cwd=project, env={"ENVFENCE_HOSTNAME": "web-pr\u043ed-01"})
    assert result.exit_code == 3 and "HOSTNAME_MISMATCH" in result.stderr
    assert not marker(project).exists()


def test_detect_shows_the_suspect_host(project, run_cli):
    env = {"ENVFENCE_HOSTNAME": "prodserver01"}
    result = run_cli("--json", "--env", "development", "detect", cwd=project, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["host"]["suspects"] == [{"environment": "production", "keyword": "prod"}]
    assert "suspect for production ('prod' inside a word)" in run_cli("--env", "development", "detect", cwd=project, env=env).stdout


def _on_a_terminal(project, args, answer, host):
    from envfence.testing.project import on_a_terminal

    return on_a_terminal(args, project, {"ENVFENCE_HOSTNAME": host}, answer)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_person_at_a_development_terminal_is_asked_about_a_suspect_host(project):
    code, screen = _on_a_terminal(project, ["--env", "development", "run", "touch"], "no", "prodserver01")
    assert code == 3, screen
    assert screen.index("HOSTNAME_SUSPECT") < screen.index("Type the environment's name")
    assert not marker(project).exists()
    code, screen = _on_a_terminal(project, ["--env", "development", "run", "touch"], "development", "prodserver01")
    assert code == 0, screen
    assert marker(project).exists()
