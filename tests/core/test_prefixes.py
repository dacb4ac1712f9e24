"""Credentials are read through the environment's prefix, never another's."""

from __future__ import annotations

import json
import sys

import envfence

ENV_FILE = (
    "DEV_AIRTABLE_API_KEY=dev-token-value\n"
    "PROD_AIRTABLE_API_KEY=prod-token-value\n"
    "PROD_HOUSECALLPRO_API_KEY=prod-hcp-value\n"
    "WEBHOOK_SECRET=shared-plain-secret\n"
    "APP_NAME=sync\n"
)


def test_development_reads_the_dev_prefix(make_project):
    config = envfence.open_session(make_project({".env": ENV_FILE}), environ={}).config
    assert config.credential_key("AIRTABLE_API_KEY") == "DEV_AIRTABLE_API_KEY"
    assert config.credential("AIRTABLE_API_KEY").reveal() == "dev-token-value"


def test_production_reads_the_prod_prefix(make_project):
    config = envfence.open_session(make_project({".env": ENV_FILE}), env="prod", environ={}).config
    assert config.credential("AIRTABLE_API_KEY").reveal() == "prod-token-value"


def test_never_falls_back_to_another_environments_prefix(make_project):
    config = envfence.open_session(make_project({".env": ENV_FILE}), environ={}).config
    # Only production has a HousecallPro key: development must not see it.
    assert config.credential("HOUSECALLPRO_API_KEY") is None


def test_an_unprefixed_credential_is_used_when_no_prefixed_one_exists(make_project):
    config = envfence.open_session(make_project({".env": ENV_FILE}), environ={}).config
    assert config.credential_key("WEBHOOK_SECRET") == "WEBHOOK_SECRET"


def test_prefix_is_a_setting(make_project):
    root = make_project({".env": "LOCAL_API_TOKEN=abc-local\nDEV_API_TOKEN=abc-dev\n"}, settings='[environments.development]\nprefix = "LOCAL"\n')
    assert envfence.open_session(root, environ={}).config.credential("API_TOKEN").reveal() == "abc-local"


def test_environment_view_strips_own_prefix_and_drops_others(make_project):
    view = envfence.open_session(make_project({".env": ENV_FILE}), environ={}).config.environment_view()
    assert view["AIRTABLE_API_KEY"].reveal() == "dev-token-value"
    assert "PROD_AIRTABLE_API_KEY" not in view and "HOUSECALLPRO_API_KEY" not in view
    assert view["APP_NAME"] == "sync"


def test_credential_access_through_the_session_is_audited_without_the_value(make_project, recorded):
    session = envfence.open_session(make_project({".env": ENV_FILE}), environ={}, plugins=recorded.plugins)
    assert session.credential("AIRTABLE_API_KEY", by="sync-job").reveal() == "dev-token-value"
    [event] = [e for e in recorded.events if e.event == "credential.accessed"]
    assert event.data == {"name": "AIRTABLE_API_KEY", "key": "DEV_AIRTABLE_API_KEY", "by": "sync-job", "found": True}
    assert "dev-token-value" not in repr(recorded.events)


def test_config_show_marks_other_environments_credentials_as_unreadable(make_project, run_cli):
    result = run_cli("config", "show", cwd=make_project({".env": ENV_FILE}))
    [line] = [l for l in result.stdout.splitlines() if l.startswith("PROD_AIRTABLE_API_KEY")]
    assert "production credential, not read in development" in line


NESTED_SETTINGS = """
[environments.qa]
prefix = "QA"
based_on = "production"

[environments.qa_eu]
prefix = "QA_EU"
based_on = "production"

[hostname.qa_eu]
hosts = ["qa-eu-box"]   # its name splits into tokens qa, eu: only enrollment can name its hosts

[automations.env-dump]
run = [PYTHON, "-c", "import json, os; open('child-env.json', 'w').write(json.dumps(dict(os.environ)))"]
""".replace("PYTHON", json.dumps(sys.executable))
NESTED_ENV = "QA_EU_API_KEY=eu-token-value-1\nQA_API_KEY=qa-token-value-2\n"


def test_a_nested_prefix_is_read_by_its_own_environment_only(make_project):
    """QA_EU_API_KEY belongs to qa_eu (the longest declared prefix), never to qa as EU_API_KEY."""
    root = make_project({".env": NESTED_ENV}, settings=NESTED_SETTINGS)
    eu = envfence.open_session(root, env="qa_eu", environ={}).config
    qa = envfence.open_session(root, env="qa", environ={}).config
    assert eu.credential("API_KEY").reveal() == "eu-token-value-1"
    assert qa.credential("API_KEY").reveal() == "qa-token-value-2"
    assert "EU_API_KEY" not in qa.environment_view() and qa.credential("EU_API_KEY") is None
    assert set(eu.environment_view()) == {"API_KEY"} and set(qa.environment_view()) == {"API_KEY"}
    assert eu.entry("QA_EU_API_KEY").prefix_environment == "qa_eu"


def test_a_nested_prefix_is_not_reported_unprefixed_or_foreign(make_project, run_cli):
    root = make_project({".env": NESTED_ENV}, settings=NESTED_SETTINGS)
    for env in ("qa", "qa_eu"):
        result = run_cli("--env", env, "check", cwd=root)
        assert "CREDENTIAL_UNPREFIXED" not in result.stdout + result.stderr, env
    import json

    shown = json.loads(run_cli("--json", "--env", "qa", "config", "show", cwd=root).stdout)
    readable = {e["key"]: (e["prefix_environment"], e["readable"]) for e in shown["entries"]}
    assert readable == {"QA_EU_API_KEY": ("qa_eu", False), "QA_API_KEY": ("qa", True)}


def test_a_command_automation_gets_only_its_nested_environments_credential(make_project, run_cli):
    root = make_project({".env": NESTED_ENV}, settings=NESTED_SETTINGS)
    import json

    for env, token in (("qa_eu", "eu-token-value-1"), ("qa", "qa-token-value-2")):
        result = run_cli("--env", env, "run", "env-dump", cwd=root, env={"ENVFENCE_HOSTNAME": f"{env.replace('_', '-')}-box"})
        assert result.exit_code == 0, result.stdout + result.stderr
        child = json.loads((root / "child-env.json").read_text())
        assert child["API_KEY"] == token
        assert not any(k.startswith("QA_") or k == "EU_API_KEY" for k in child), env
