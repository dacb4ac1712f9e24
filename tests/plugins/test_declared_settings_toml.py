"""Settings a project declares in envfence.toml ([settings.NAME]), as a user meets them."""

from __future__ import annotations

import json

import pytest

SETTINGS = '''
[settings.PORT]
type = "port"
default = 8080
description = "where the hook listens"

[settings.API_URL]
type = "url"
required = ["production"]

[settings.SIGNING_SECRET]
secret = true

[automations.import-jobs]
run = ["python", "-c", "import os; print('csv=' + os.environ['JOBS_CSV'])"]
settings = ["JOBS_CSV"]
'''


def findings(result, code):
    return [f for f in json.loads(result.stdout)["findings"] if f["code"] == code]


def test_an_automation_setting_exported_in_the_process_environment_is_not_blocked(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("run", "import-jobs", cwd=root, env={"JOBS_CSV": "/data/jobs.csv"})
    assert result.exit_code == 0, result.output
    assert "csv=/data/jobs.csv" in result.output


def test_a_declared_setting_is_read_from_the_process_environment(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("--json", "config", "show", "--explain", cwd=root, env={"PORT": "9000", "UNDECLARED": "x"})
    data = json.loads(result.stdout)
    assert data["values"]["PORT"] == "9000"
    assert "UNDECLARED" not in data["values"]


def test_a_value_of_the_wrong_type_is_an_error_naming_key_and_file(make_project, run_cli):
    root = make_project({".env": "PORT=eighty\n"}, settings=SETTINGS)
    result = run_cli("--json", "check", cwd=root)
    assert result.exit_code == 1
    (found,) = findings(result, "SETTING_TYPE")
    assert found["key"] == "PORT" and "(set in .env)" in found["message"] and "not a port" in found["message"]


def test_a_default_applies_and_required_is_per_environment(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    dev = run_cli("--json", "check", cwd=root)
    assert not findings(dev, "SETTING_REQUIRED_MISSING") or all(f["key"] != "API_URL" for f in findings(dev, "SETTING_REQUIRED_MISSING"))
    prod = run_cli("--json", "--env", "production", "check", cwd=root)
    assert "API_URL" in [f["key"] for f in findings(prod, "SETTING_REQUIRED_MISSING")]
    shown = json.loads(run_cli("--json", "config", "show", cwd=root).stdout)
    assert shown["values"]["PORT"] == "8080"


def test_a_declared_secret_is_masked(make_project, run_cli):
    canary = "canary-signing-value-0042"
    root = make_project({".env": f"SIGNING_SECRET={canary}\n"}, settings=SETTINGS)
    result = run_cli("config", "show", "--explain", cwd=root)
    assert "SIGNING_SECRET" in result.stdout and canary not in result.stdout + result.stderr


def test_config_template_lists_declared_settings_with_their_type(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    text = run_cli("config", "template", cwd=root).stdout
    assert "# PORT: where the hook listens (port)\nPORT=8080" in text
    assert "# API_URL (url; required in production)\nAPI_URL=" in text
    assert text.count("\nJOBS_CSV=") == 1
    data = json.loads(run_cli("--json", "config", "template", cwd=root).stdout)
    port = next(s for s in data["settings"] if s["name"] == "PORT")
    assert (port["type"], port["default"]) == ("port", "8080")


def test_a_broken_settings_table_is_a_clear_configuration_error(make_project, run_cli):
    root = make_project(settings='[settings.PORT]\ntype = "number"\n')
    result = run_cli("check", cwd=root)
    assert result.exit_code == 4
    assert "settings.PORT.type: must be one of 'str'" in result.stderr and "'port'" in result.stderr
    assert "not 'number'" in result.stderr
    root = make_project(settings='[settings.PORT]\ntype = "port"\ndefualt = 1\n', name="typo")
    result = run_cli("check", cwd=root)
    assert result.exit_code == 4 and "did you mean 'default'?" in result.stderr


def test_the_shipped_json_schema_is_the_generated_one_and_knows_every_setting_type(run_cli):
    from envfence.schema import SHIPPED, render
    from envfence.setting_types import TYPES

    assert SHIPPED.read_text() == render(), "regenerate: python -c 'from envfence.schema import *; SHIPPED.write_text(render())'"
    printed = json.loads(run_cli("config", "schema").stdout)
    setting = printed["properties"]["settings"]["additionalProperties"]
    assert setting["properties"]["type"]["enum"] == list(TYPES)
    assert {"environments", "secrets", "settings", "snapshots"} <= set(printed["properties"])


def test_typed_access_in_the_api(make_project):
    import envfence
    from envfence.errors import ConfigurationError
    from pathlib import Path

    settings = SETTINGS + '\n[settings.DEBUG]\ntype = "bool"\n\n[settings.JOBS_DIR]\ntype = "path"\ndefault = "var/jobs"\n'
    root = make_project({".env": "DEBUG=yes\nSIGNING_SECRET=canary-signing-value-0042\n"}, settings=settings)
    session = envfence.open_session(root=root)
    assert session.setting("PORT") == 8080 and session.setting("DEBUG") is True
    assert session.setting("JOBS_DIR") == Path("var/jobs")
    assert session.setting("API_URL", "http://localhost") == "http://localhost"
    assert isinstance(session.setting("SIGNING_SECRET"), envfence.Secret)
    bad = envfence.open_session(root=make_project({".env": "PORT=0\n"}, settings=settings, name="bad"))
    with pytest.raises(ConfigurationError, match="PORT .set in .env. is not a port"):
        bad.setting("PORT")
