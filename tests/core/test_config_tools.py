"""Drift between environments, a .env template, and reloading changed files."""

from __future__ import annotations

import json

import envfence

FILES = {
    ".env": "APP=sync\nDEV_API_TOKEN=canary-dev-4471\nPROD_API_TOKEN=canary-prod-4471\n",
    ".env.development": "BASE=appDev\nDEBUG_SQL=1\n",
    ".env.production": "BASE=appLive\nALERT_EMAIL=ops@example.com\n",
}


def test_diff_lists_keys_missing_in_either_environment(make_project, run_cli):
    result = run_cli("config", "diff", "dev", "prod", cwd=make_project(FILES))
    assert result.exit_code == 1
    out = result.stdout
    assert "only in development:\n  DEBUG_SQL" in out
    assert "only in production:\n  ALERT_EMAIL" in out
    assert "different values: BASE" in out
    assert "canary" not in result.output


def test_diff_json_and_no_drift(make_project, run_cli):
    root = make_project({".env": "APP=sync\nDEV_API_TOKEN=a-dev-value\nPROD_API_TOKEN=a-prod-value\n"})
    result = run_cli("--json", "config", "diff", "development", "production", cwd=root)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["only_in"] == {"development": [], "production": []}
    # Credentials compare under their plain names; secrets are never compared.
    assert data["same"] == ["API_TOKEN", "APP"] and data["differ"] == []


def test_diff_of_an_unknown_environment_is_a_usage_error(make_project, run_cli):
    assert run_cli("config", "diff", "dev", "qa", cwd=make_project(FILES)).exit_code == 2


def test_template_lists_keys_with_secrets_empty(make_project, run_cli):
    result = run_cli("config", "template", cwd=make_project(FILES))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "APP=sync" in lines and "DEV_API_TOKEN=" in lines and "PROD_API_TOKEN=" in lines
    assert "canary" not in result.output


def test_template_documents_declared_settings_per_prefix(make_project, run_cli, monkeypatch):
    class Declares:
        @envfence.hookimpl
        def declare_settings(self):
            return [envfence.SettingSpec("HCP_API_KEY", doc="HousecallPro key", secret=True, credential=True, required_in=("production",))]

    from envfence.plugins import add_inline_plugin

    add_inline_plugin(Declares(), "declares")
    try:
        out = run_cli("config", "template", cwd=make_project(FILES)).stdout
    finally:
        from envfence.plugins import remove_inline_plugin

        remove_inline_plugin("declares")
    assert "# HCP_API_KEY: HousecallPro key (credential; secret; required in production)" in out
    assert "DEV_HCP_API_KEY=\nPROD_HCP_API_KEY=" in out


def test_changed_layers_and_reload(make_project):
    root = make_project(FILES)
    session = envfence.open_session(root, environ={})
    assert session.changed_layers() == []
    (root / ".env.development").write_text("BASE=appDev2\n")
    (root / ".env.local").write_text("LOCAL=1\n")
    assert session.changed_layers() == [".env.development", ".env.local"]
    fresh = session.reload()
    assert fresh.config["BASE"] == "appDev2" and fresh.config["LOCAL"] == "1"
    assert fresh.changed_layers() == []


def test_singleton_reloads_only_when_asked_and_audits_it(make_project, monkeypatch, recorded):
    root = make_project(FILES)
    monkeypatch.chdir(root)
    first = envfence.session(plugins=recorded.plugins)
    assert envfence.session(reload_if_changed=True) is first  # nothing changed
    (root / ".env").write_text("APP=renamed\n")
    assert envfence.session().config["APP"] == "sync"
    second = envfence.session(reload_if_changed=True)
    assert second is not first and second.config["APP"] == "renamed"
    [event] = [e for e in recorded.events if e.event == "config.reloaded"]
    assert event.data == {"changed": [".env"]}


def test_json_after_a_command_gives_json_errors_too(make_project, run_cli):
    root = make_project(settings="[environments.production\n")  # broken TOML
    for command in (("list", "--json"), ("status", "--json"), ("run", "x", "--json")):
        result = run_cli(*command, cwd=root)
        assert result.exit_code == 4
        assert json.loads(result.stdout)["exit_code"] == 4, command
