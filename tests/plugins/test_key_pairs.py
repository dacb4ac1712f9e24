"""Per-environment key pairs: anyone encrypts with the public key in the project, only a host with the private key opens.

And what a host holds: on a host that is not production's, `check` warns about
production's plaintext secrets (PRODUCTION_SECRETS_ON_HOST) and its key
(PRODUCTION_KEY_ON_HOST).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

pytest.importorskip("cryptography.hazmat.primitives.hpke")

CANARY = "canary-Prod-Value-8817"
JOBS = "def show(ctx):\n    ctx.paths.base.joinpath('seen').write_text(ctx.credential('API_TOKEN').reveal())\n"
SETTINGS = '[automations]\nshow = "jobs:show"\n[hostname.production]\nhosts = ["web-prod-*"]\n'
PROD_HOST = {"ENVFENCE_HOSTNAME": "web-prod-01"}


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def keygen_pair(run_cli, root, env="production"):
    result = run_cli("--json", "--env", env, "secret", "keygen", "--pair", cwd=root, env=PROD_HOST)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def move_private_key_away(root, tmp_path):
    key = root / ".envfence" / "keys" / "production.private.key"
    shutil.move(key, tmp_path / "production.private.key")
    return tmp_path / "production.private.key"


def test_keygen_pair_puts_the_public_key_in_the_settings_and_the_private_key_in_the_key_ring(project, run_cli):
    made = keygen_pair(run_cli, project)
    assert made["public_key"].startswith("x25519:")
    assert f'production = "{made["public_key"]}"' in (project / "envfence.toml").read_text()
    private = project / ".envfence" / "keys" / "production.private.key"
    assert private.is_file() and (private.stat().st_mode & 0o077) == 0
    again = run_cli("--env", "production", "secret", "keygen", "--pair", cwd=project, env=PROD_HOST)
    assert again.exit_code == 2 and "never replaced" in again.stderr


def test_anyone_sets_a_production_value_without_being_able_to_read_it(project, run_cli, tmp_path):
    keygen_pair(run_cli, project)
    kept = move_private_key_away(project, tmp_path)  # a developer's laptop: the public key only
    laptop = {"ENVFENCE_HOSTNAME": "dev-laptop-07"}
    result = run_cli("--env", "production", "set", "API_TOKEN", input=CANARY + "\n", cwd=project, env=laptop)
    assert result.exit_code == 0, result.output
    line = (project / ".env.production").read_text()
    assert line.startswith("PROD_API_TOKEN=enc:x25519:") and CANARY not in line  # under its prefix in a strict profile
    # It cannot be read back here ...
    reveal = run_cli("--env", "production", "get", "API_TOKEN", "--reveal", cwd=project, env=laptop)
    assert CANARY not in reveal.output
    check = run_cli("--env", "production", "check", "--config-only", cwd=project, env=laptop)
    assert "SECRET_SEALED" in check.stdout
    # ... and it opens on a production host, which holds the private key.
    os.makedirs(project / ".envfence" / "keys", exist_ok=True)
    shutil.move(kept, project / ".envfence" / "keys" / "production.private.key")
    run = run_cli("--env", "production", "run", "show", cwd=project, env=PROD_HOST)
    assert run.exit_code == 0, run.output
    assert (project / "var" / "production" / "seen").read_text() == CANARY
    assert CANARY not in run.output


def test_a_sealed_value_does_not_open_in_another_environment_or_under_another_key(project, run_cli):
    keygen_pair(run_cli, project)
    run_cli("--env", "production", "set", "API_TOKEN", input=CANARY + "\n", cwd=project, env=PROD_HOST)
    sealed = (project / ".env.production").read_text().split("=", 1)[1].strip()
    (project / ".env.production").write_text(f"PROD_API_TOKEN={sealed}\nPROD_OTHER_TOKEN={sealed}\n")
    result = run_cli("--env", "production", "check", cwd=project, env=PROD_HOST)
    assert result.exit_code == 4 and "OTHER_TOKEN does not open with the production private key" in result.stderr


def test_secret_encrypt_seals_to_the_public_key(project, run_cli, tmp_path):
    keygen_pair(run_cli, project)
    move_private_key_away(project, tmp_path)
    result = run_cli("--env", "production", "secret", "encrypt", "PROD_API_TOKEN", input=CANARY, cwd=project)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("PROD_API_TOKEN=enc:x25519:") and CANARY not in result.output


def test_migrate_moves_symmetric_and_plaintext_values_to_a_key_pair(project, run_cli):
    assert run_cli("--env", "production", "secret", "keygen", cwd=project, env=PROD_HOST).exit_code == 0
    old = run_cli("--env", "production", "secret", "encrypt", "PROD_API_TOKEN", input=CANARY, cwd=project, env=PROD_HOST).stdout.strip()
    (project / ".env.production").write_text(f"# production\n{old}\nPROD_DB_PASSWORD=plain-db-secret-42\nLOG_LEVEL=warning\n")
    (project / ".env").write_text("PROD_WEBHOOK_SECRET=plain-hook-secret-7\nDEV_API_TOKEN=dev-token-1234\n")
    result = run_cli("--json", "--env", "production", "secret", "migrate", cwd=project, env=PROD_HOST)
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["made_pair"] and {(s["file"], s["key"], s["was"]) for s in done["sealed"]} == {
        (".env.production", "PROD_API_TOKEN", "fernet"), (".env.production", "PROD_DB_PASSWORD", "plaintext"),
        (".env", "PROD_WEBHOOK_SECRET", "plaintext"),
    }
    text = (project / ".env.production").read_text()
    assert text.startswith("# production\nPROD_API_TOKEN=enc:x25519:") and "LOG_LEVEL=warning" in text and "plain-db" not in text
    assert "DEV_API_TOKEN=dev-token-1234" in (project / ".env").read_text()  # development's own is left alone
    # The symmetric key is no longer needed to open production's values: its private key is.
    (project / ".envfence" / "keys" / "production.key").unlink()
    run = run_cli("--env", "production", "run", "show", cwd=project, env=PROD_HOST)
    assert run.exit_code == 0, run.output
    assert (project / "var" / "production" / "seen").read_text() == CANARY


def test_today_s_symmetric_keys_keep_working(project, run_cli):
    assert run_cli("--env", "production", "secret", "keygen", cwd=project, env=PROD_HOST).exit_code == 0
    line = run_cli("--env", "production", "secret", "encrypt", "PROD_API_TOKEN", input=CANARY, cwd=project, env=PROD_HOST).stdout
    assert line.startswith("PROD_API_TOKEN=enc:fernet:")
    (project / ".env.production").write_text(line)
    assert run_cli("--env", "production", "run", "show", cwd=project, env=PROD_HOST).exit_code == 0
    assert (project / "var" / "production" / "seen").read_text() == CANARY


def test_check_warns_when_a_laptop_holds_production_s_plaintext_secrets(project, run_cli):
    (project / ".env.production").write_text(f"API_TOKEN={CANARY}\n")
    (project / ".env").write_text("PROD_DB_PASSWORD=plain-db-secret-42\nDEV_API_TOKEN=dev-token-1234\n")
    laptop = run_cli("--json", "check", cwd=project, env={"ENVFENCE_HOSTNAME": "dev-laptop-07"})
    found = {f["code"]: f for f in json.loads(laptop.stdout)["findings"]}
    assert "PRODUCTION_SECRETS_ON_HOST" in found
    assert "API_TOKEN (.env.production)" in found["PRODUCTION_SECRETS_ON_HOST"]["message"]
    assert "PROD_DB_PASSWORD (.env)" in found["PRODUCTION_SECRETS_ON_HOST"]["message"]
    assert "DEV_API_TOKEN" not in found["PRODUCTION_SECRETS_ON_HOST"]["message"]
    assert "secret migrate" in found["PRODUCTION_SECRETS_ON_HOST"]["remediation"]
    assert CANARY not in laptop.output
    # On a production host, production's own secrets are where they belong.
    host = run_cli("--json", "--env", "production", "check", cwd=project, env=PROD_HOST)
    assert "PRODUCTION_SECRETS_ON_HOST" not in {f["code"] for f in json.loads(host.stdout)["findings"]}


def test_check_warns_when_a_laptop_holds_production_s_key(project, run_cli, monkeypatch):
    keygen_pair(run_cli, project)
    laptop = run_cli("--json", "check", cwd=project, env={"ENVFENCE_HOSTNAME": "dev-laptop-07"})
    found = {f["code"]: f for f in json.loads(laptop.stdout)["findings"]}
    assert "production.private.key" in found["PRODUCTION_KEY_ON_HOST"]["message"]
    monkeypatch.setenv("ENVFENCE_KEY_PROD", "x" * 44)
    laptop = run_cli("--json", "check", cwd=project, env={"ENVFENCE_HOSTNAME": "dev-laptop-07"})
    message = {f["code"]: f for f in json.loads(laptop.stdout)["findings"]}["PRODUCTION_KEY_ON_HOST"]["message"]
    assert "ENVFENCE_KEY_PROD" in message
    host = run_cli("--json", "--env", "production", "check", cwd=project, env=PROD_HOST)
    assert "PRODUCTION_KEY_ON_HOST" not in {f["code"] for f in json.loads(host.stdout)["findings"]}
