"""`envfence get`, `export` and `set`, as a user types them."""

from __future__ import annotations

import json

import pytest

CANARY = "can'ary\\pa$$w\"rd\nsecond-line-7Q"


@pytest.fixture
def project(make_project):
    return make_project({".env": "APP_NAME=sync\nDEV_AIRTABLE_API_KEY=patCanaryToken00000001.abc\n"}, settings="")


def test_get_prints_a_value_and_a_credential_through_its_prefix(project, run_cli):
    assert run_cli("get", "APP_NAME", cwd=project).stdout == "sync\n"
    refused = run_cli("get", "AIRTABLE_API_KEY", cwd=project)
    assert refused.exit_code == 2 and "--reveal" in refused.stderr and "patCanary" not in refused.output
    shown = run_cli("get", "AIRTABLE_API_KEY", "--reveal", cwd=project)
    assert shown.stdout == "patCanaryToken00000001.abc\n"
    trail = run_cli("--json", "audit", "show", "--event", "secret.revealed", cwd=project)
    assert "AIRTABLE_API_KEY" in trail.stdout and "patCanary" not in trail.stdout


def test_get_of_a_missing_key_exits_1_with_a_suggestion(project, run_cli):
    result = run_cli("get", "APP_NAM", cwd=project)
    assert result.exit_code == 1 and "did you mean APP_NAME?" in result.stderr


def test_get_refuses_another_environments_key(project, run_cli):
    result = run_cli("get", "PROD_AIRTABLE_API_KEY", "--reveal", cwd=project)
    assert result.exit_code == 2 and "belongs to production" in result.stderr


@pytest.mark.parametrize("fmt", ["shell", "dotenv", "json"])
def test_export_leaves_secrets_out_unless_revealed(project, run_cli, fmt):
    result = run_cli("export", "--format", fmt, cwd=project)
    assert "APP_NAME" in result.stdout and "patCanary" not in result.stdout
    assert "AIRTABLE_API_KEY" in result.stderr  # named as left out, never shown
    revealed = run_cli("export", "--format", fmt, "--reveal", cwd=project)
    assert "patCanaryToken00000001.abc" in revealed.stdout


def test_export_shell_output_evaluates_back_to_the_same_values(project, run_cli):
    import subprocess

    run_cli("set", "ODD", CANARY, cwd=project)
    script = run_cli("export", "--reveal", cwd=project).stdout
    out = subprocess.run(["bash", "-c", script + '\nprintf %s "$ODD"'], capture_output=True, text=True).stdout
    assert out == CANARY


def test_set_writes_the_environments_file_and_keeps_other_lines(project, run_cli):
    (project / ".env.development").write_text("# mine\nLOG_LEVEL=INFO\nOTHER=1\n")
    result = run_cli("set", "LOG_LEVEL", "DEBUG", cwd=project)
    assert result.exit_code == 0 and result.stdout == "set LOG_LEVEL in .env.development\n"
    assert (project / ".env.development").read_text() == "# mine\nLOG_LEVEL=DEBUG\nOTHER=1\n"
    assert run_cli("--env", "prod", "set", "LOG_LEVEL", "WARNING", cwd=project).exit_code == 0
    assert "LOG_LEVEL=WARNING" in (project / ".env.production").read_text()


def test_set_a_secret_without_a_key_goes_to_the_local_file_and_is_never_echoed(project, run_cli):
    result = run_cli("set", "DB_PASSWORD", cwd=project, input=CANARY)
    assert result.exit_code == 0, result.output
    assert "can'ary" not in result.output and ".env.development.local" in result.stdout
    assert not (project / ".env.development").exists()
    assert run_cli("get", "DB_PASSWORD", "--reveal", cwd=project).stdout == CANARY + "\n"


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_set_refuses_an_empty_stdin_and_writes_nothing(project, run_cli, stdin):
    """A pipe that lost its value (an unset variable, a missing file) is not stored as an empty secret."""
    result = run_cli("set", "DB_PASSWORD", cwd=project, input=stdin)
    assert result.exit_code == 2, result.output
    assert "no value for DB_PASSWORD: stdin was empty" in result.stderr
    assert "printf %s" in result.stderr and "envfence set DB_PASSWORD ''" in result.stderr
    assert not list(project.glob(".env.development*"))
    assert "DB_PASSWORD" not in run_cli("--json", "audit", "show", cwd=project).stdout


def test_set_from_dev_null_is_refused_and_an_explicit_empty_value_is_stored(project, tmp_path):
    import os
    import subprocess
    import sys

    environ = {**os.environ, "ENVFENCE_HOSTNAME": "build-box-01"}
    refused = subprocess.run([sys.executable, "-m", "envfence", "--env", "production", "set", "AIRTABLE_API_KEY"],
                             cwd=project, env=environ, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert refused.returncode == 2 and "no value for AIRTABLE_API_KEY" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and not list(project.glob(".env.production*"))
    stored = subprocess.run([sys.executable, "-m", "envfence", "set", "NOTE", ""], cwd=project, env=environ,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert stored.returncode == 0, stored.stderr
    assert "NOTE=" in (project / ".env.development").read_text()


def test_set_a_secret_is_encrypted_where_the_environment_has_a_key(project, run_cli):
    pytest.importorskip("cryptography")
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    result = run_cli("set", "DB_PASSWORD", CANARY, cwd=project)
    assert "(encrypted)" in result.stdout and "can'ary" not in result.output
    text = (project / ".env.development").read_text()
    assert text.startswith("DB_PASSWORD=enc:fernet:") and "can'ary" not in text
    assert run_cli("get", "DB_PASSWORD", "--reveal", cwd=project).stdout == CANARY + "\n"
    assert "can'ary" not in run_cli("--json", "audit", "show", cwd=project).stdout


def test_set_a_secret_with_the_encryption_plugin_disabled_keeps_it_local_and_says_so(project, run_cli):
    pytest.importorskip("cryptography")
    assert run_cli("secret", "keygen", cwd=project).exit_code == 0
    result = run_cli("-p", "no:encryption", "set", "DB_PASSWORD", CANARY, cwd=project)
    assert result.exit_code == 0, result.output
    assert "set DB_PASSWORD in .env.development.local" in result.stdout and "can'ary" not in result.output
    assert "the encryption plugin is disabled" in result.stderr
    assert not (project / ".env.development").exists()  # never in the shared file in the clear


def test_set_refuses_a_file_that_is_a_symlink_and_changes_nothing(project, run_cli, tmp_path):
    elsewhere = tmp_path / "shared.env"
    elsewhere.write_text("KEEP=1\n")
    (project / ".env.development").symlink_to(elsewhere)
    result = run_cli("set", "LOG_LEVEL", "DEBUG", cwd=project)
    assert result.exit_code == 2 and "symbolic link" in result.stderr
    assert (project / ".env.development").is_symlink() and elsewhere.read_text() == "KEEP=1\n"


@pytest.mark.parametrize("value", ["it's \"quoted\" \\ here", "two\nlines", " padded ", "a #not-a-comment"])
def test_set_values_read_back_exactly_as_given(project, run_cli, value):
    assert run_cli("set", "NOTE", value, cwd=project).exit_code == 0
    result = run_cli("get", "NOTE", cwd=project)
    assert result.exit_code == 0 and result.stdout == value + "\n"


def test_set_refuses_a_value_that_a_dotenv_reader_would_expand(project, run_cli):
    (project / ".env.development").write_text("OTHER=1\n")
    result = run_cli("set", "GREETING", "hello ${USER}", cwd=project)
    assert result.exit_code == 2
    assert "GREETING" in result.output and "${" in result.output
    assert (project / ".env.development").read_text() == "OTHER=1\n"


DEV_PW, PROD_PW = "canaryDevPw-4821", "canaryProdPw-7733"


@pytest.fixture
def url_project(make_project):
    return make_project({
        ".env": f"DEV_DB_PASSWORD={DEV_PW}\nPROD_DB_PASSWORD={PROD_PW}\nDATABASE_URL=postgres://app:{DEV_PW}@db/app\n",
        ".env.production": f"DATABASE_URL=postgres://app:{PROD_PW}@db/app\n",
    }, settings="")


def _revealed(run_cli, root, env):
    trail = run_cli("--env", env, "--json", "audit", "show", "--event", "secret.revealed", cwd=root)
    return [event["data"] for event in json.loads(trail.stdout or "[]")] if trail.exit_code == 0 else []


@pytest.mark.parametrize("env, password", [("development", DEV_PW), ("production", PROD_PW)])
@pytest.mark.parametrize("command", [("export",), ("export", "--format", "dotenv"), ("export", "--format", "json"),
                                     ("get", "DATABASE_URL"), ("--json", "get", "DATABASE_URL")])
def test_a_password_inside_another_value_is_masked_as_config_show_masks_it(url_project, run_cli, env, password, command):
    result = run_cli("--env", env, *command, cwd=url_project)
    assert result.exit_code == 0, result.output
    assert password not in result.output and "postgres://app:********@db/app" in result.stdout
    assert "DATABASE_URL" in result.stderr and "--reveal" in result.stderr  # says what was masked and how to see it
    assert _revealed(run_cli, url_project, env) == []


@pytest.mark.parametrize("command", [("export", "--reveal"), ("get", "DATABASE_URL", "--reveal")])
def test_revealing_a_value_that_holds_a_secret_shows_it_and_is_audited(url_project, run_cli, command):
    result = run_cli("--env", "production", *command, cwd=url_project)
    assert f"postgres://app:{PROD_PW}@db/app" in result.stdout
    [event] = _revealed(run_cli, url_project, "production")
    assert "DATABASE_URL" in event["keys"] and event["by"] == command[0]
    assert PROD_PW not in run_cli("--env", "production", "--json", "audit", "show", cwd=url_project).stdout
