"""The host's class comes from whole tokens of its name."""

from __future__ import annotations

import json

import pytest

from envfence.settings import parse_settings
from envfence_builtins.detection.hostname import classify, tokens

DEFAULTS = parse_settings({}, None)

MATRIX = [
    # production by token
    ("web-prod-01", "production"),
    ("prod", "production"),
    ("PROD-DB", "production"),
    ("production.example.com", "production"),
    ("api.prod.acme.internal", "production"),
    ("db_prd_3", "production"),
    ("prod01", "production"),
    ("worker3prod", "production"),
    ("live-sync-2", "production"),
    ("ip-10-0-3-17.prod.ec2.internal", "production"),
    ("sync.production", "production"),
    # development by token
    ("dev-laptop", "development"),
    ("dev", "development"),
    ("alice-dev-box", "development"),
    ("DEV01", "development"),
    ("development.local", "development"),
    ("build.dev.acme.io", "development"),
    ("localhost", "development"),
    ("bobs-devel-vm", "development"),
    ("localhost.localdomain", "development"),
    # unclassified: the marker is only part of a token
    ("productivity-box", None),
    ("devops-ci", None),
    ("device-gateway", None),
    ("prodigy", None),
    ("reproduce-7", None),
    ("livestream-encoder", None),
    ("developer-portal", None),
    ("web-01", None),
    ("ip-172-31-5-9", None),
    ("mac-mini", None),
    ("ci-runner-42", None),
    ("devprod", None),
    # a qualifier says the marker beside it is not what it seems
    ("non-prod-01", None),
    ("not-prod", None),
    ("pre-prod-web-2", None),
    ("nonprod", None),
    ("preprod", None),
    ("prod-like-01", None),
    ("production-like", None),
    ("web-nonprod-dev-3", "development"),
    # ambiguous: markers of both environments
    ("dev-prod-bridge", None),
    ("prod-mirror.dev.acme.io", None),
]


@pytest.mark.parametrize("hostname, expected", MATRIX)
def test_hostname_matrix(hostname, expected):
    assert classify(hostname, DEFAULTS).environment == expected


def test_tokens_split_on_separators_and_digits():
    assert tokens("Web-PROD_01.eu2.example.com") == ("web", "prod", "eu", "example", "com")


@pytest.mark.parametrize("hostname", ["dev-prod-bridge", "prod-mirror.dev.acme.io"])
def test_host_with_both_markers_is_ambiguous(hostname):
    info = classify(hostname, DEFAULTS)
    assert info.ambiguous
    assert set(info.environments) == {"development", "production"}


def test_patterns_are_configurable_and_accept_globs():
    settings = parse_settings(
        {
            "environments": {
                "production": {"hostname_patterns": ["prod*", "acme"]},
                "staging": {"based_on": "production", "hostname_patterns": ["stg", "staging"]},
            }
        },
        None,
    )
    assert classify("productivity-box", settings).environment == "production"
    assert classify("acme-17", settings).environment == "production"
    assert classify("stg-web-2", settings).environment == "staging"
    assert classify("web-prod-01", settings).environment == "production"


def test_detect_reports_host_class_even_when_the_flag_decides(make_project, run_cli):
    root = make_project()
    result = run_cli("--env", "development", "--json", "detect", cwd=root, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    data = json.loads(result.stdout)
    assert data["environment"] == "development"
    assert data["method"] == "flag"
    assert data["host"]["class"] == "production"
    assert data["host"]["matches"] == [{"environment": "production", "token": "prod"}]


def test_detect_warns_people_when_host_and_environment_disagree(make_project, run_cli):
    root = make_project()
    result = run_cli("--env", "dev", "detect", cwd=root, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert "this host's name says production" in result.stdout
