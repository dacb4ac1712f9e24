"""With ``QA`` and ``QA_EU`` both declared, every command reads ``QA_EU_…`` as qa_eu's key, never qa's.

The longest declared prefix decides (``envfence.naming.CredentialNaming``);
each command that takes, shows or names a prefixed key asks it.
"""

from __future__ import annotations

import json
import subprocess

import pytest

SETTINGS = """
[environments.qa]
prefix = "QA"
based_on = "production"

[environments.qa_eu]
prefix = "QA_EU"
based_on = "production"

[webhooks.routes."/orders"]
provider = "standard"
secret = "ORDERS_WEBHOOK_SECRET"
automation = "noop"

[automations]
noop = "jobs:noop"
"""
CANARY = "qa-eu-canary-token-5e1f09"


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": "def noop(ctx):\n    pass\n"}, settings=SETTINGS)


def test_set_get_and_export_treat_a_nested_prefixed_key_as_its_own_environments(project, run_cli):
    made = run_cli("--env", "qa_eu", "set", "QA_EU_REGION", "eu-west-1", cwd=project)
    assert made.exit_code == 0, made.output
    assert made.stdout == "set REGION in .env.qa_eu\n"
    assert (project / ".env.qa_eu").read_text() == "REGION=eu-west-1\n"
    assert run_cli("--env", "qa_eu", "get", "QA_EU_REGION", cwd=project).stdout == "eu-west-1\n"
    assert run_cli("--env", "qa_eu", "get", "REGION", cwd=project).stdout == "eu-west-1\n"
    exported = json.loads(run_cli("--env", "qa_eu", "export", "--format", "json", cwd=project).stdout)
    assert exported["REGION"] == "eu-west-1"


def test_a_nested_prefixed_key_in_a_shared_file_goes_only_to_its_environment(project, run_cli):
    (project / ".env").write_text("QA_EU_REGION=eu-west-1\nQA_REGION=us-east-1\n")
    assert run_cli("--env", "qa_eu", "get", "QA_EU_REGION", cwd=project).stdout == "eu-west-1\n"
    assert run_cli("--env", "qa", "get", "QA_REGION", cwd=project).stdout == "us-east-1\n"
    refused = run_cli("--env", "qa", "get", "QA_EU_REGION", cwd=project)
    assert refused.exit_code == 2 and "QA_EU_REGION belongs to qa_eu, but this is qa" in refused.stderr
    assert "use --env qa_eu, or the plain name REGION" in refused.stderr
    qa = json.loads(run_cli("--env", "qa", "export", "--format", "json", cwd=project).stdout)
    assert qa["REGION"] == "us-east-1" and "EU_REGION" not in qa
    wrong = run_cli("--env", "qa", "set", "QA_EU_REGION", "x", cwd=project)
    assert wrong.exit_code == 2 and "belongs to qa_eu" in wrong.stderr


def test_check_reports_a_plaintext_nested_secret_for_its_own_environment(project, run_cli):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    assert run_cli("--env", "qa_eu", "secret", "keygen", cwd=project).exit_code == 0
    (project / ".env").write_text(f"QA_EU_API_TOKEN={CANARY}\n")
    found = json.loads(run_cli("--json", "--env", "qa_eu", "check", cwd=project).stdout)["findings"]
    assert [f["key"] for f in found if f["code"] == "PLAINTEXT_PROD_SECRET"] == ["QA_EU_API_TOKEN"]
    assert "QA_EU_API_TOKEN is a qa_eu secret" in next(f["message"] for f in found if f["code"] == "PLAINTEXT_PROD_SECRET")
    qa = json.loads(run_cli("--json", "--env", "qa", "check", cwd=project).stdout)["findings"]
    assert [f["message"].split(" in ")[0] for f in qa if f["code"] == "PLAINTEXT_PROD_SECRET"] == [
        ".env:1: QA_EU_API_TOKEN is a qa_eu secret"  # the same finding, whichever environment checks
    ]
    assert CANARY not in json.dumps(found) + json.dumps(qa)


def test_the_webhook_hints_name_the_nested_prefixed_key(project, run_cli):
    pytest.importorskip("waitress")
    (project / ".env.qa_eu").write_text("WEBHOOK_PORT=8731\n")
    checked = run_cli("--env", "qa_eu", "serve", cwd=project)
    assert checked.exit_code == 3 and "QA_EU_ORDERS_WEBHOOK_SECRET is required in qa_eu" in checked.stderr
    # Past the checks (forced, on the record), the receiver names the key it could not read the same way.
    result = run_cli("--env", "qa_eu", "serve", "--force", "--reason", "hint test", cwd=project)
    assert result.exit_code == 4, result.output
    assert "set QA_EU_ORDERS_WEBHOOK_SECRET (or ORDERS_WEBHOOK_SECRET in .env.qa_eu)" in result.stderr
