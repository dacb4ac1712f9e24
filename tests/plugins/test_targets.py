"""Environments own their targets: [targets] ties identifiers to environments."""

from __future__ import annotations

import pytest

import envfence
from envfence.errors import ConfigurationError
from envfence.settings import load_settings
from envfence_builtins.configuration.targets import owner_of

SETTINGS = """
[targets]
production = ["appLiveBase000001"]
development = ["appSandboxBase001", "sandbox.example.com"]
"""


def codes(session):
    return [f.code for f in session.report.findings]


def test_owner_of_names_the_environment_that_owns_an_identifier(make_project):
    settings = load_settings(make_project(settings=SETTINGS))
    assert owner_of(settings, "appLiveBase000001") == "production"
    assert owner_of(settings, "https://api.example.com/v0/appLiveBase000001/Jobs") == "production"
    assert owner_of(settings, "appLiveBase0000012") is None  # a longer id is another id
    assert owner_of(settings, "sandbox.example.com") == "development"
    assert owner_of(settings, "appUnknownBase001") is None
    assert owner_of(settings, None) is None


def test_owner_of_accepts_aliases_as_environment_names(make_project):
    settings = load_settings(make_project(settings='[targets]\nprod = ["appLiveBase000001"]\n'))
    assert owner_of(settings, "appLiveBase000001") == "production"


def test_production_base_configured_in_development_is_an_error(make_project):
    root = make_project({".env.development": "AIRTABLE_BASE_ID=appLiveBase000001\n"}, settings=SETTINGS)
    session = envfence.open_session(root, environ={})
    [finding] = [f for f in session.report.findings if f.code == "TARGET_IN_OTHER_ENVIRONMENT"]
    assert finding.severity == "error" and finding.key == "AIRTABLE_BASE_ID"
    assert "production target" in finding.message and ".env.development" in finding.message
    assert "appSandboxBase001" in finding.remediation


def test_development_base_configured_in_production_is_an_error(make_project):
    root = make_project({".env": "AIRTABLE_BASE_ID=appSandboxBase001\n"}, settings=SETTINGS)
    session = envfence.open_session(root, env="production", environ={})
    assert "TARGET_IN_OTHER_ENVIRONMENT" in codes(session)


def test_each_environment_reading_its_own_target_is_fine(make_project):
    root = make_project(
        {".env.development": "AIRTABLE_BASE_ID=appSandboxBase001\n", ".env.production": "AIRTABLE_BASE_ID=appLiveBase000001\n"},
        settings=SETTINGS,
    )
    assert "TARGET_IN_OTHER_ENVIRONMENT" not in codes(envfence.open_session(root, environ={}))
    assert "TARGET_IN_OTHER_ENVIRONMENT" not in codes(envfence.open_session(root, env="prod", environ={}))


def test_another_environments_prefixed_key_is_not_read_so_not_an_error(make_project):
    root = make_project({".env": "PROD_AIRTABLE_BASE_ID=appLiveBase000001\n"}, settings=SETTINGS)
    assert "TARGET_IN_OTHER_ENVIRONMENT" not in codes(envfence.open_session(root, environ={}))


@pytest.mark.parametrize(
    "table, problem",
    [
        ('[targets]\nstaging = ["appX0000000000001"]\n', "not a declared environment"),
        ("[targets]\nproduction = 3\n", "targets.production: must be a list of strings or a non-empty string, not 3"),
        ('[targets]\nproduction = ["appX0000000000001"]\ndevelopment = ["appX0000000000001"]\n', "listed for both"),
        ('[targets]\nproduction = ["appX0000000000001"]\ndevelopment = ["APPX0000000000001"]\n', "listed for both"),
    ],
)
def test_malformed_targets_table_is_a_finding_naming_the_file(make_project, table, problem):
    root = make_project(settings=table)
    session = envfence.open_session(root, environ={})
    [finding] = [f for f in session.report.findings if f.code == "TARGETS_INVALID"]
    assert problem in finding.message and "envfence.toml" in finding.message
    with pytest.raises(ConfigurationError):
        owner_of(session.settings, "anything")


def test_targets_is_a_known_settings_section(make_project):
    session = envfence.open_session(make_project(settings=SETTINGS), environ={})
    assert "SETTINGS_UNKNOWN_KEY" not in codes(session)
