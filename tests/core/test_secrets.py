"""A secret value never reaches output: a canary proves it in every mode."""

from __future__ import annotations

import json
import pickle

import pytest

import envfence
from envfence.models import Secret

CANARY = "canary-7f3a9c-never-show-me"
FILES = {
    ".env": f"DEV_AIRTABLE_API_KEY={CANARY}-dev\nPROD_AIRTABLE_API_KEY={CANARY}-prod\nAPP=demo\n",
    ".env.development": f"WEBHOOK_SECRET={CANARY}-hook\nDB_PASSWORD={CANARY}-db\nSERVICE_TOKEN={CANARY}-tok\n",
    ".env.production": f"CUSTOM_CRED={CANARY}-custom\n",
    ".env.local": f"DEV_AIRTABLE_API_KEY={CANARY}-local\nbroken line {CANARY}-in-a-bad-line\n",
}
SETTINGS = 'secrets = ["CUSTOM_CRED"]\n'

MODES = [
    ("config", "show"),
    ("config", "show", "--explain"),
    ("--json", "config", "show"),
    ("--json", "config", "show", "--explain"),
    ("-q", "config", "show"),
    ("--env", "production", "config", "show", "--explain"),
    ("--env", "production", "--json", "config", "show"),
    ("--env", "production", "-v", "config", "show"),
    ("detect",),
    ("--json", "detect"),
    ("--set", f"EXTRA_TOKEN={CANARY}-override", "config", "show", "--explain"),
]


@pytest.mark.parametrize("args", MODES, ids=" ".join)
def test_canary_never_appears(make_project, run_cli, args):
    root = make_project(FILES, settings=SETTINGS)
    result = run_cli(*args, cwd=root, env={"PROD_HOUSECALLPRO_API_KEY": f"{CANARY}-process"})
    assert result.exit_code in (0, 1), result.output
    assert CANARY not in result.stdout
    assert CANARY not in result.stderr


def test_secrets_are_masked_but_keys_shown(make_project, run_cli):
    root = make_project(FILES, settings=SETTINGS)
    values = json.loads(run_cli("--env", "production", "--json", "config", "show", cwd=root).stdout)["values"]
    for key in ("DEV_AIRTABLE_API_KEY", "PROD_AIRTABLE_API_KEY", "CUSTOM_CRED"):
        assert values[key] == "********"
    assert values["APP"] == "demo"


@pytest.mark.parametrize("key", ["AIRTABLE_API_KEY", "SERVICE_TOKEN", "WEBHOOK_SECRET", "DB_PASSWORD", "DEV_SERVICE_TOKEN"])
def test_secret_by_name(make_project, key):
    config = envfence.open_session(make_project({".env": f"{key}=value-{key}\n"}), environ={}).config
    assert config.entry(key).secret


def test_secret_wrapper_never_shows_the_value():
    secret = Secret(CANARY)
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", "%s" % secret, json.dumps({"k": str(secret)})):
        assert CANARY not in shown
    assert secret.reveal() == CANARY
    assert CANARY not in secret.fingerprint() and "27 chars" in secret.fingerprint()
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_session_repr_holds_no_secret(make_project):
    session = envfence.open_session(make_project(FILES, settings=SETTINGS), environ={})
    assert CANARY not in repr(session)
    assert CANARY not in repr(session.config)


def test_plugin_raising_before_the_session_exists_is_reported_masked(make_project, run_cli, envfence_plugin):
    """A firstresult hook's exception names the plugin, is masked, and the next plugin answers."""

    class HostFails:
        @envfence.hookimpl(tryfirst=True)
        def classify_host(self):
            raise RuntimeError(f"boom with {CANARY}-process inside")

    envfence_plugin(HostFails(), "host-fails")
    root = make_project(FILES, settings=SETTINGS)
    env = {"PROD_HOUSECALLPRO_API_KEY": f"{CANARY}-process", "ENVFENCE_HOSTNAME": "web-prod-01"}
    detected = run_cli("detect", cwd=root, env=env)
    assert detected.exit_code == 0 and "production" in detected.stdout  # the hostname plugin answered
    result = run_cli("check", cwd=root, env=env)
    assert "PLUGIN_ERROR" in result.output and "host-fails" in result.output
    assert "boom with ******** inside" in result.output
    assert CANARY not in result.output


def test_plugin_error_while_loading_is_reported_masked(make_project, run_cli, envfence_plugin):
    class LoadFails:
        @envfence.hookimpl
        def load_config(self):
            raise RuntimeError(f"boom with {CANARY}-process inside")

    envfence_plugin(LoadFails(), "load-fails")
    root = make_project(FILES, settings=SETTINGS)
    result = run_cli("config", "show", cwd=root, env={"PROD_HOUSECALLPRO_API_KEY": f"{CANARY}-process"})
    assert "PLUGIN_ERROR" in result.stderr and "load-fails" in result.stderr
    assert "boom with ******** inside" in result.stderr
    assert CANARY not in result.output


def test_a_value_wrapped_onto_its_own_line_is_never_echoed(make_project, run_cli):
    root = make_project({".env": f"HOUSECALLPRO_API_KEY=\n9f8e7d6c5b4a{CANARY}\nAPP=demo\n"})
    result = run_cli("config", "show", cwd=root)
    assert "DOTENV_PARSE_ERROR [.env:2]" in result.stderr
    assert CANARY not in result.output


def test_an_unknown_encryption_prefix_does_not_quote_the_value(make_project, run_cli):
    result = run_cli("config", "show", cwd=make_project({".env": f"DEV_API_KEY=enc:{CANARY}\n"}))
    assert result.exit_code == 4 and "no scheme named" in result.stderr
    assert CANARY not in result.output


def test_declared_secret_held_only_by_the_process_environment_is_masked(make_project):
    root = make_project(settings='secrets = ["DATABASE_URL"]\n')
    session = envfence.open_session(root, environ={"DATABASE_URL": f"postgres://u:{CANARY}@h/db"})
    assert CANARY not in session.redactor()(f"connect failed: postgres://u:{CANARY}@h/db")


def test_a_finding_that_quotes_a_secret_is_masked_by_the_session(make_project, recorded):
    class Careless:
        @envfence.hookimpl
        def validate(self, session):
            token = session.config["SERVICE_TOKEN"].reveal()
            return [envfence.Finding("CARELESS", "error", f"bad token {token}", f"replace {token}", key="SERVICE_TOKEN")]

    recorded.plugins.register(Careless(), "careless")
    session = envfence.open_session(make_project(FILES, settings=SETTINGS), environ={}, plugins=recorded.plugins)
    [finding] = [f for f in session.report.findings if f.code == "CARELESS"]
    assert CANARY not in finding.message + finding.remediation


def test_audit_data_is_masked_whoever_emits_it(make_project, recorded):
    session = envfence.open_session(make_project(FILES, settings=SETTINGS), environ={}, plugins=recorded.plugins)
    session.audit("team.note", text=f"used {CANARY}-tok", nested={"items": [f"{CANARY}-db"]})
    assert CANARY not in repr(recorded.events[-1].data)
