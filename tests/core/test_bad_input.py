"""Bad input gets a clear message naming the file, line or key, and the right exit code."""

from __future__ import annotations

import json
import os

import pytest


def test_malformed_line_is_a_finding_with_file_and_line(make_project, run_cli):
    root = make_project({".env": "GOOD=1\nthis line is not an assignment\nALSO_GOOD=2\n"})
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 1
    assert "DOTENV_PARSE_ERROR [.env:2]" in result.stderr
    assert "KEY=VALUE" in result.stderr
    # Nothing else is lost.
    shown = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    assert shown == {"GOOD": "1", "ALSO_GOOD": "2"}


def test_malformed_line_in_json(make_project, run_cli):
    root = make_project({".env.development": "A=1\n'unterminated=\n"})
    result = run_cli("--json", "config", "show", cwd=root)
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)["findings"]
    assert (finding["code"], finding["file"], finding["line"]) == ("DOTENV_PARSE_ERROR", ".env.development", 2)


def test_key_without_equals_is_a_warning_naming_the_key(make_project, run_cli):
    result = run_cli("config", "show", cwd=make_project({".env": "A=1\nLONELY\n"}))
    assert result.exit_code == 0
    assert "DOTENV_NO_VALUE [.env:2]" in result.stderr and "LONELY" in result.stderr


def test_non_utf8_file_names_file_and_line(make_project, run_cli):
    root = make_project({".env": b"A=1\nB=caf\xe9\n"})
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4
    assert ".env:2: not valid UTF-8" in result.stderr
    assert "save the file as UTF-8" in result.stderr
    assert "Traceback" not in result.output


def test_bom_is_ignored_and_reported(make_project, run_cli):
    root = make_project({".env": b"\xef\xbb\xbfFIRST=1\nSECOND=2\n"})
    result = run_cli("--json", "config", "show", cwd=root)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["values"] == {"FIRST": "1", "SECOND": "2"}
    assert [f["code"] for f in data["findings"]] == ["DOTENV_BOM"]


def test_crlf_line_endings_leave_no_carriage_returns(make_project, run_cli):
    root = make_project({".env": b'A=1\r\nB="two words"\r\nC=3\r\n'})
    data = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)
    assert data["values"] == {"A": "1", "B": "two words", "C": "3"}


def test_directory_where_a_file_should_be(make_project, run_cli):
    root = make_project()
    (root / ".env.local").mkdir()
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4
    assert ".env.local: is a directory" in result.stderr


def test_unreadable_file_is_named(make_project, run_cli):
    root = make_project()
    (root / ".env").symlink_to(root / "moved-away.env")  # a dangling link cannot be read
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4
    assert f"{root / '.env'}: cannot read" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(make_project, run_cli):
    root = make_project({".env": "A=1\n"})
    (root / ".env").chmod(0)
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4 and "cannot read (Permission denied)" in result.stderr


def test_broken_settings_toml_names_file_and_line(make_project, run_cli):
    root = make_project(settings='[environments.production]\naliases = ["prod",\n')
    result = run_cli("detect", cwd=root)
    assert result.exit_code == 4
    assert "envfence.toml: invalid TOML" in result.stderr and "line" in result.stderr


@pytest.mark.parametrize(
    "settings, key, hint",
    [
        ('[environments.production]\naliases = "prod"\n', "environments.production.aliases", "list of strings"),
        ('[environments.production]\nprefx = "P"\n', "environments.production.prefx", "did you mean 'prefix'?"),
        ('[environments.staging]\nprefix = "STG"\n', "environments.staging.based_on", "based_on ="),
        ('[environments.staging]\nbased_on = "testing"\n', "environments.staging.based_on", "'development' or 'production'"),
        ('default_environment = "qa"\n', "default_environment", "declared environments"),
        ('[environments.staging]\nbased_on = "production"\nprefix = "PROD"\n', "environments.staging", "prefix PROD is also used"),
        ('[environments.production.profile]\nstrict = "yes"\n', "environments.production.profile.strict", "must be bool"),
        ('[environments.production.profile]\nshouty = true\n', "environments.production.profile.shouty", "known settings"),
    ],
)
def test_bad_settings_name_the_key(make_project, run_cli, settings, key, hint):
    result = run_cli("detect", cwd=make_project(settings=settings))
    assert result.exit_code == 4, result.output
    assert key in result.stderr
    assert hint in result.stderr


def test_unknown_top_level_setting_is_a_warning_with_a_suggestion(make_project, run_cli):
    root = make_project(settings='[enviroments.production]\naliases = ["p"]\n')
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 0
    assert "SETTINGS_UNKNOWN_KEY" in result.stderr and "did you mean 'environments'?" in result.stderr


def test_plugin_sections_are_not_unknown(make_project, run_cli):
    root = make_project(settings='[directories]\nbase = "data/{environment}"\n')
    assert "SETTINGS_UNKNOWN_KEY" not in run_cli("config", "show", cwd=root).stderr


def test_settings_in_pyproject_with_errors_name_the_table(make_project, run_cli):
    root = make_project({"pyproject.toml": '[tool.envfence]\ndefault_environment = 3\n'}, settings=None)
    result = run_cli("detect", cwd=root)
    assert result.exit_code == 4
    assert "pyproject.toml: default_environment" in result.stderr


TOKEN = "8f3a9c2e41b85d60a1f4e9c3b7d2086e"


@pytest.mark.parametrize("how", ["--env", "ENVIRONMENT", "--json --env"])
def test_an_unknown_environment_shaped_like_a_token_is_never_echoed(make_project, run_cli, how):
    root = make_project({}, settings="")
    if how == "ENVIRONMENT":
        result = run_cli("detect", cwd=root, env={"ENVIRONMENT": TOKEN})
    else:
        result = run_cli(*how.split(), TOKEN, "detect", cwd=root)
    assert result.exit_code in (2, 4), result.output
    assert TOKEN not in result.output and TOKEN[:8] not in result.output
    assert "not shaped like an environment name" in result.output and "development" in result.output
    named = run_cli("--env", "stagin", "detect", cwd=root)
    assert "unknown environment 'stagin'" in named.output  # a name-shaped typo is still shown, to be corrected
