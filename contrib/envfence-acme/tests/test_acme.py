"""envfence-acme: naming policy, Acme server names, and nothing at all for projects that do not opt in."""

from __future__ import annotations

import json

import pytest

ACME = '[acme]\ntable_prefix = "acme_"\n'


def _detect(project) -> dict:
    result = project.run("--json", "detect")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "hostname, host_class",
    [
        ("nyc-p01", "production"),
        ("NYC-P01.acme.internal", "production"),
        ("ber-d12.acme.internal", "development"),
        ("web-prod-01", "production"),  # not an Acme name: the built-in matcher decides
        ("lab-x07", None),  # an Acme shape with an unknown code
        ("nyc-p01.example.com", None),  # not Acme's domain
    ],
)
def test_acme_server_names_are_classified_by_their_code(envfence_project, hostname, host_class):
    envfence_project.settings(ACME)
    envfence_project.hostname = hostname
    data = _detect(envfence_project)
    assert data["host"]["class"] == host_class
    if host_class:
        assert data["environment"] == host_class and data["method"] == "hostname"


def test_host_codes_can_name_a_declared_environment(envfence_project):
    envfence_project.settings(
        ACME + 'host_codes = { s = "staging" }\n\n[environments.staging]\nprefix = "STG"\nbased_on = "production"\n'
    )
    envfence_project.hostname = "fra-s03"
    assert _detect(envfence_project)["host"]["class"] == "staging"


def test_without_an_acme_table_server_names_are_left_alone(envfence_project):
    envfence_project.hostname = "nyc-p01"
    assert _detect(envfence_project)["host"]["class"] is None


def test_plugins_hooks_shows_acme_answering_classify_host_first(envfence_project):
    out = envfence_project.run("plugins", "--hooks").stdout
    block = out.split("classify_host (firstresult)\n")[1].split("detect_environment")[0]
    assert block.splitlines()[0] == "    1. acme [tryfirst]"


def test_table_names_without_the_prefix_are_reported(envfence_project):
    envfence_project.settings(ACME)
    envfence_project.write(
        ".env",
        "AIRTABLE_TABLE=Customers\nAIRTABLE_STATUS_TABLE=acme_runs\nAIRTABLE_TABLES=acme_jobs, Invoices, tblAbCdEfGh123456\n",
    )
    findings = [f for f in envfence_project.session().report.findings if f.code == "ACME_TABLE_PREFIX"]
    assert sorted((f.key, f.severity) for f in findings) == [("AIRTABLE_TABLE", "warning"), ("AIRTABLE_TABLES", "warning")]
    customers = next(f for f in findings if f.key == "AIRTABLE_TABLE")
    assert "'Customers'" in customers.message and customers.file == ".env"
    assert "acme_Customers" in customers.remediation


def test_the_naming_policy_is_an_error_in_production(envfence_project):
    envfence_project.settings(ACME)
    envfence_project.write(".env", "PROD_AIRTABLE_TABLE=Customers\n")
    findings = [f for f in envfence_project.session(env="production").report.findings if f.code == "ACME_TABLE_PREFIX"]
    assert [(f.key, f.severity) for f in findings] == [("AIRTABLE_TABLE", "error")]


def test_projects_that_do_not_opt_in_get_no_findings(envfence_project):
    envfence_project.write(".env", "AIRTABLE_TABLE=Customers\n")
    codes = envfence_project.session().report.codes()
    assert not [c for c in codes if c.startswith("ACME_")]


def test_bad_acme_settings_are_findings_and_detection_still_works(envfence_project):
    envfence_project.settings('[acme]\ntable_prefix = ""\nhost_codes = "p"\nkeep_days = 0\n')
    envfence_project.hostname = "web-prod-01"
    session = envfence_project.session()
    assert session.host.environment == "production"
    # The [acme] declaration names each, with the file (envfence check, envfence config schema alike).
    keys = sorted(f.key for f in session.report.findings if f.code == "SETTINGS_INVALID")
    assert keys == ["acme.host_codes", "acme.keep_days", "acme.table_prefix"]


def _processed(project, name: str, days_old: float):
    import os
    import time

    path = project.write(f"var/development/csv/processed/{name}", "id,total\n1,10\n")
    then = time.time() - days_old * 86400
    os.utime(path, (then, then))
    return path


def test_tidy_processed_archives_old_files_and_a_dry_run_moves_nothing(envfence_project):
    envfence_project.settings(ACME + "keep_days = 7\n")
    old = _processed(envfence_project, "2026-01-01.csv", days_old=30)
    fresh = _processed(envfence_project, "today.csv", days_old=0)
    archive = envfence_project.path / "var" / "development" / "archive"

    dry = envfence_project.run("run", "acme-tidy-processed", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would archive 2026-01-01.csv" in dry.stdout and "today.csv" not in dry.stdout
    assert old.exists() and not (archive / old.name).exists()

    result = envfence_project.run("run", "acme-tidy-processed")
    assert result.exit_code == 0, result.output
    assert "archived 2026-01-01.csv" in result.stdout
    assert (archive / "2026-01-01.csv").is_file() and not old.exists() and fresh.exists()


def test_tidy_processed_is_listed_only_for_projects_that_opt_in(envfence_project):
    assert "acme-tidy-processed" not in envfence_project.run("list").stdout
    envfence_project.settings(ACME)
    listing = envfence_project.run("list").stdout
    assert "acme-tidy-processed" in listing and "Move processed CSV files" in listing


def test_check_shows_the_naming_policy(envfence_project):
    envfence_project.settings(ACME)
    envfence_project.write(".env", "AIRTABLE_TABLE=Customers\n")
    dev = envfence_project.run("--json", "check")
    found = [f for f in json.loads(dev.stdout)["findings"] if f["code"] == "ACME_TABLE_PREFIX"]
    assert [(f["severity"], f["key"]) for f in found] == [("warning", "AIRTABLE_TABLE")]
    prod = envfence_project.run("--env", "prod", "--json", "check")
    assert prod.exit_code == 1
    found = [f for f in json.loads(prod.stdout)["findings"] if f["code"] == "ACME_TABLE_PREFIX"]
    assert [f["severity"] for f in found] == ["error"]
