"""A format finding never quotes a value that is secret by name, only declared ones."""

from __future__ import annotations

import envfence

CANARY = "canary-format-8812"


def test_format_finding_of_a_name_secret_does_not_quote_it(make_project, recorded):
    class Declares:
        @envfence.hookimpl
        def declare_settings(self):
            return [envfence.SettingSpec("GITHUB_TOKEN", format=r"ghp_\w+")]

    recorded.plugins.register(Declares(), "declares")
    root = make_project({".env": f"GITHUB_TOKEN={CANARY}\n"})
    session = envfence.open_session(root, environ={}, plugins=recorded.plugins)
    [finding] = [f for f in session.report.findings if f.code == "SETTING_FORMAT"]
    assert "holds a value that does not match" in finding.message


def test_a_base_id_declared_secret_is_checked_by_its_value_not_its_mask(make_project):
    root = make_project(
        {".env": "DEV_AIRTABLE_BASE_ID=appAbcdefghijklmn\n"}, settings='secrets = ["AIRTABLE_BASE_ID"]\n[airtable]\n'
    )
    codes = envfence.open_session(root, environ={}).report.codes()
    assert "AIRTABLE_BASE_ID_FORMAT" not in codes
