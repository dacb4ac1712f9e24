"""Values encrypted at rest: one key per environment, never shown, never crossed."""

from __future__ import annotations

import json
import os

import pytest

import envfence

CANARY = "canary-enc-51d0-never-show"


@pytest.fixture
def project(make_project, run_cli):
    """A project with a development and a production key."""
    root = make_project({".env": "APP=sync\n"})
    for env in ("development", "production"):
        result = run_cli("--env", env, "secret", "keygen", cwd=root)
        assert result.exit_code == 0, result.output
    return root


def encrypt(run_cli, root, env, key, value):
    result = run_cli("--env", env, "secret", "encrypt", key, cwd=root, input=value)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_keygen_creates_owner_only_keys_ignored_by_git(project, run_cli):
    key = project / ".envfence" / "keys" / "production.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert (project / ".envfence" / ".gitignore").read_text().splitlines()[-1] == "*"
    again = run_cli("--env", "production", "secret", "keygen", cwd=project)
    assert again.exit_code == 2 and "never overwritten" in again.stderr


def test_encrypted_value_round_trips_as_a_secret(project, run_cli):
    line = encrypt(run_cli, project, "production", "PROD_AIRTABLE_API_KEY", CANARY)
    assert line.startswith("PROD_AIRTABLE_API_KEY=enc:fernet:") and CANARY not in line
    (project / ".env.production").write_text(line + "\n")
    session = envfence.open_session(project, env="production", environ={})
    assert session.credential("AIRTABLE_API_KEY").reveal() == CANARY
    shown = run_cli("--env", "production", "--json", "config", "show", "--explain", cwd=project)
    assert json.loads(shown.stdout)["values"]["PROD_AIRTABLE_API_KEY"] == "********"
    assert CANARY not in shown.output


def test_any_encrypted_key_is_secret_whatever_its_name(project, run_cli):
    (project / ".env.development").write_text(encrypt(run_cli, project, "development", "CUSTOMER_LIST_URL", CANARY) + "\n")
    config = envfence.open_session(project, environ={}).config
    assert config.entry("CUSTOMER_LIST_URL").secret


def test_another_environments_encrypted_credential_is_never_opened(project, run_cli):
    prod_line = encrypt(run_cli, project, "production", "PROD_HCP_TOKEN", CANARY)
    (project / ".envfence" / "keys" / "production.key").unlink()  # this machine is a dev box
    (project / ".env").write_text(f"APP=sync\n{prod_line}\n")
    session = envfence.open_session(project, environ={})
    assert session.config.entry("PROD_HCP_TOKEN").secret
    assert session.config["PROD_HCP_TOKEN"].reveal().startswith("enc:fernet:")
    assert session.config.credential("HCP_TOKEN") is None


def test_value_encrypted_for_another_environment_fails_clearly(project, run_cli):
    line = encrypt(run_cli, project, "production", "SHARED_TOKEN", CANARY)
    (project / ".env.development").write_text(line + "\n")
    result = run_cli("config", "show", cwd=project)
    assert result.exit_code == 4
    assert ".env.development: SHARED_TOKEN cannot be decrypted with the development key" in result.stderr
    assert "--env development secret encrypt SHARED_TOKEN" in result.stderr


def test_missing_key_names_the_variable_and_the_file(make_project, run_cli):
    root = make_project({".env.production": "TOKEN=enc:fernet:gAAAAA\n"})
    result = run_cli("--env", "prod", "config", "show", cwd=root)
    assert result.exit_code == 4
    assert "no production key: set ENVFENCE_KEY_PROD or create" in result.stderr


def test_key_from_the_environment_variable(make_project, run_cli):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    token = Fernet(key).encrypt(CANARY.encode()).decode()
    root = make_project({".env.production": f"PROD_API_TOKEN=enc:fernet:{token}\n"})
    session = envfence.open_session(root, env="production", environ={"ENVFENCE_KEY_PROD": key})
    assert session.credential("API_TOKEN").reveal() == CANARY


def test_key_file_readable_by_others_is_refused(project, run_cli):
    (project / ".env.production").write_text(encrypt(run_cli, project, "production", "PROD_X_TOKEN", CANARY) + "\n")
    (project / ".envfence" / "keys" / "production.key").chmod(0o644)
    result = run_cli("--env", "production", "config", "show", cwd=project)
    assert result.exit_code == 4 and "readable by others" in result.stderr and "chmod 600" in result.stderr


def test_encrypting_another_environments_key_is_refused(project, run_cli):
    result = run_cli("secret", "encrypt", "PROD_AIRTABLE_API_KEY", cwd=project, input=CANARY)
    assert result.exit_code == 2
    assert "belongs to production" in result.stderr and CANARY not in result.output


def test_unknown_scheme_needs_a_plugin(make_project, run_cli):
    result = run_cli("config", "show", cwd=make_project({".env": "A=enc:vault:abc\n"}))
    assert result.exit_code == 4 and "A is encrypted (vault) and no plugin can decrypt it" in result.stderr


def test_encryption_is_audited_without_the_value(project, run_cli, audit_events):
    encrypt(run_cli, project, "development", "DEV_SYNC_TOKEN", CANARY)
    [event] = [e for e in audit_events if e.event == "secret.encrypted"]
    assert event.data == {"key": "DEV_SYNC_TOKEN"} and CANARY not in repr(audit_events)


def test_a_reference_to_an_encrypted_value(project, run_cli):
    prod_line = encrypt(run_cli, project, "production", "PROD_DB_PASSWORD", CANARY)
    (project / ".env").write_text(
        prod_line + "\nPROD_DSN=${PROD_DB_PASSWORD}\nPROD_URL=pg://u:${PROD_DB_PASSWORD}@h/db\nDEV_COPY=${PROD_DB_PASSWORD}\n"
    )
    # In development the reference to production's key is never followed, encrypted or not.
    dev = run_cli("--json", "config", "show", cwd=project)
    assert dev.exit_code == 1
    assert [f["key"] for f in json.loads(dev.stdout)["findings"] if f["code"] == "DOTENV_FOREIGN_REFERENCE"] == ["DEV_COPY"]
    # In production a reference to the whole value is decrypted; one embedded in text cannot be, and says so.
    prod = envfence.open_session(project, env="production", environ={})
    assert prod.config["PROD_DSN"].reveal() == CANARY
    assert prod.config.entries["PROD_URL"].secret
    shown = run_cli("--env", "production", "config", "show", cwd=project)
    assert "DOTENV_ENCRYPTED_REFERENCE [.env:3]" in shown.stderr and "PROD_URL" in shown.stderr
    assert CANARY not in shown.output and "gAAAA" not in shown.output


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_key_file_that_is_not_a_regular_file_is_named_without_blocking(project, run_cli, kind):
    line = encrypt(run_cli, project, "development", "DEV_API_TOKEN", CANARY)
    (project / ".env.development").write_text(line + "\n")
    key = project / ".envfence" / "keys" / "development.key"
    key.unlink()
    if kind == "fifo":
        os.mkfifo(key, 0o600)  # reading it would wait for a writer forever
    else:
        key.mkdir(mode=0o700)
    result = run_cli("config", "show", cwd=project)
    assert result.exit_code == 4
    assert "development.key: is not a regular file" in result.stderr and "secret keygen" in result.stderr
    assert CANARY not in result.output


def test_keygen_never_writes_through_a_linked_keys_directory(make_project, run_cli, tmp_path):
    root = make_project({".env": "APP=sync\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / ".envfence").mkdir()
    os.symlink(elsewhere, root / ".envfence" / "keys")
    result = run_cli("secret", "keygen", cwd=root)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert list(elsewhere.iterdir()) == []


def test_a_value_with_a_nul_byte_is_not_encrypted(project, run_cli):
    result = run_cli("secret", "encrypt", "DEV_API_TOKEN", cwd=project, input="abc\0def")
    assert result.exit_code == 2 and "NUL byte" in result.stderr
