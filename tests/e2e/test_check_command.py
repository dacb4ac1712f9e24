"""``envfence check [--live] [--json]`` as a user runs it, against the fake services."""

from __future__ import annotations

import json
import socket

import pytest

from envfence.testing import DEMO_DEV_BASE, DEMO_DEV_KEY, DEMO_DEV_TOKEN, DEMO_PROD_BASE

SETTINGS = f"""
[airtable]
tables = ["Jobs"]

[housecallpro]

[webhooks.housecallpro]

[targets]
production = ["{DEMO_PROD_BASE}"]
development = ["{DEMO_DEV_BASE}"]
"""

# Canaries: valid-shaped, distinctive, and never to be printed.
CANARY_TOKEN = "patCanaryQz7Xw9Lk." + "cafe5eed" * 8
CANARY_HCP = "hcpcanary5eed" + "0a1b2c3d" * 3
CANARY_HOOK = "hookcanary5eed" + "9f8e7d6c5b4a" * 3
CANARY_MARKS = ("cafe5eed", "canary5eed", "patCanary", "9f8e7d6c5b4a")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project(make_project, airtable_url, hcp_url, token=DEMO_DEV_TOKEN, key=DEMO_DEV_KEY, base=DEMO_DEV_BASE, extra=""):
    env = (
        f"DEV_AIRTABLE_API_KEY={token}\n"
        f"DEV_HOUSECALLPRO_API_KEY={key}\n"
        f"DEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY_HOOK}\n"
        f"AIRTABLE_ENDPOINT_URL={airtable_url}\n"
        f"HOUSECALLPRO_API_URL={hcp_url}\n"
        f"AIRTABLE_TIMEOUT=0.3\nHOUSECALLPRO_TIMEOUT=0.3\n" + extra
    )
    return make_project({".env": env, ".env.development": f"AIRTABLE_BASE_ID={base}\n"}, settings=SETTINGS)


def check(run_cli, root, *args):
    plain = run_cli("check", *args, cwd=root)
    as_json = run_cli("--json", "check", *args, cwd=root)
    for result in (plain, as_json):
        for mark in CANARY_MARKS:
            assert mark not in result.stdout and mark not in result.stderr, (mark, result.output)
    return plain, json.loads(as_json.stdout)


def test_good_credentials_pass_live(make_project, run_cli, fake_airtable, fake_housecallpro):
    root = project(make_project, fake_airtable.url, fake_housecallpro.url)
    plain, data = check(run_cli, root, "--live")
    assert plain.exit_code == 0, plain.output
    assert "check passed" in plain.stdout
    assert {f["code"] for f in data["findings"]} == {"AIRTABLE_LIVE_OK", "HOUSECALLPRO_LIVE_OK"}
    assert data["ok"] is True and data["live"] is True and data["environment"] == "development"
    assert "tables Jobs found" in plain.stdout and "Acme Home Services" in plain.stdout


def test_offline_check_calls_no_service(make_project, run_cli, fake_airtable, fake_housecallpro):
    root = project(make_project, fake_airtable.url, fake_housecallpro.url)
    plain, data = check(run_cli, root)
    assert plain.exit_code == 0 and data["live"] is False
    assert fake_airtable.requests == [] and fake_housecallpro.requests == []


LIVE_FAILURES = {
    "401": ("AIRTABLE_TOKEN_REJECTED", "airtable.com/create/tokens"),
    "403": ("AIRTABLE_BASE_INACCESSIBLE", "give the token access to that base"),
    "404": ("AIRTABLE_NOT_FOUND", "points at the Airtable API"),
    "429": ("AIRTABLE_RATE_LIMITED", "wait 30 seconds"),
    "timeout": ("AIRTABLE_TIMEOUT", "raise AIRTABLE_TIMEOUT"),
    "refused": ("AIRTABLE_UNREACHABLE", "is the service (or `envfence emulate`) running?"),
    "table": ("AIRTABLE_TABLE_NOT_FOUND", "names are case-sensitive"),
}


@pytest.mark.parametrize("mode", sorted(LIVE_FAILURES))
def test_each_live_airtable_failure_is_a_finding_with_remediation_and_no_secret(mode, make_project, run_cli, fake_airtable, fake_housecallpro):
    fake_airtable.add_token(CANARY_TOKEN, bases=[DEMO_DEV_BASE])
    url, base = fake_airtable.url, DEMO_DEV_BASE
    if mode == "403":
        base = DEMO_PROD_BASE
    elif mode == "404":
        url += "/nope"
    elif mode == "429":
        fake_airtable.rate_limit = 0
    elif mode == "timeout":
        fake_airtable.delay = 1.0
    elif mode == "refused":
        url = f"http://127.0.0.1:{closed_port()}"
    elif mode == "table":
        fake_airtable.bases[DEMO_DEV_BASE]["tables"].clear()
        fake_airtable.add_table(DEMO_DEV_BASE, "Invoices")
    token = "patCanaryWrong001." + "cafe5eed" * 8 if mode == "401" else CANARY_TOKEN
    root = project(make_project, url, fake_housecallpro.url, token=token, base=base)
    if mode == "403":  # the production base is the development token's blind spot, not a target mix-up
        (root / "envfence.toml").write_text(SETTINGS.split("[targets]")[0], encoding="utf-8")
    plain, data = check(run_cli, root, "--live")
    code, remedy = LIVE_FAILURES[mode]
    [finding] = [f for f in data["findings"] if f["code"] == code]
    assert remedy in finding["remediation"]
    assert plain.exit_code == (0 if mode == "429" else 1), plain.output
    assert code in plain.stdout and remedy in plain.stdout
    assert "Traceback" not in plain.output
    if mode in ("401", "403"):
        assert "Airtable personal access token, 82 chars" in finding["message"]


@pytest.mark.parametrize("mode", ["401", "timeout", "refused", "404"])
def test_each_live_housecallpro_failure_is_a_finding(mode, make_project, run_cli, fake_airtable, fake_housecallpro):
    url, key = fake_housecallpro.url, DEMO_DEV_KEY
    if mode == "401":
        key = CANARY_HCP
    elif mode == "timeout":
        fake_housecallpro.delay = 1.0
    elif mode == "refused":
        url = f"http://127.0.0.1:{closed_port()}"
    elif mode == "404":
        url += "/v9"
    root = project(make_project, fake_airtable.url, url, key=key)
    plain, data = check(run_cli, root, "--live")
    code = {"401": "HOUSECALLPRO_TOKEN_REJECTED", "timeout": "HOUSECALLPRO_TIMEOUT", "refused": "HOUSECALLPRO_UNREACHABLE", "404": "HOUSECALLPRO_NOT_FOUND"}[mode]
    assert code in [f["code"] for f in data["findings"]]
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    if mode == "401":
        assert fake_housecallpro.requests[-1].scheme == "Token"


def test_findings_are_grouped_by_severity_errors_first(make_project, run_cli, fake_airtable, fake_housecallpro):
    root = project(make_project, fake_airtable.url, fake_housecallpro.url, token="keyLegacyKey00001",
                   extra="UNRELATED_TOKEN=plainvalue-1234\n")
    plain, data = check(run_cli, root)
    out = plain.stdout
    assert plain.exit_code == 1
    assert out.index("errors (") < out.index("warnings (")
    assert "AIRTABLE_LEGACY_API_KEY" in out and "1 February 2024" in out
    assert "CREDENTIAL_UNPREFIXED" in out  # UNRELATED_TOKEN is read by every environment
    severities = [f["severity"] for f in data["findings"]]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert data["counts"]["error"] >= 1 and data["ok"] is False


def test_every_finding_is_reported_not_only_the_first(make_project, run_cli):
    root = make_project(
        {".env": "DEV_AIRTABLE_API_KEY=changeme\nAIRTABLE_BASE_ID=base-one\nDEV_HOUSECALLPRO_API_KEY=your-token-here\n"},
        settings="[airtable]\n[housecallpro]\n[webhooks.github]\n",
    )
    data = json.loads(run_cli("--json", "check", cwd=root).stdout)
    codes = {f["code"] for f in data["findings"]}
    assert {"AIRTABLE_TOKEN_PLACEHOLDER", "AIRTABLE_BASE_ID_FORMAT", "HOUSECALLPRO_TOKEN_PLACEHOLDER", "SETTING_REQUIRED_MISSING"} <= codes
    [missing] = [f for f in data["findings"] if f["code"] == "SETTING_REQUIRED_MISSING"]
    assert missing["key"] == "DEV_GITHUB_WEBHOOK_SECRET"


def test_production_is_stricter_than_development(make_project, run_cli):
    root = make_project({".env": "SERVICE_TOKEN=abc-0123456789-shared\n"})
    dev = json.loads(run_cli("--json", "check", cwd=root).stdout)
    prod = run_cli("--env", "production", "--json", "check", cwd=root)
    [dev_finding] = [f for f in dev["findings"] if f["code"] == "CREDENTIAL_UNPREFIXED"]
    [prod_finding] = [f for f in json.loads(prod.stdout)["findings"] if f["code"] == "CREDENTIAL_UNPREFIXED"]
    assert dev_finding["severity"] == "warning" and prod_finding["severity"] == "error"
    assert prod.exit_code == 1
    assert run_cli("check", cwd=root).exit_code == 0


def test_production_output_is_terse(make_project, run_cli):
    root = make_project({".env": "PROD_AIRTABLE_API_KEY=changeme\n"})
    result = run_cli("--env", "production", "check", cwd=root)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("error AIRTABLE_TOKEN_PLACEHOLDER [PROD_AIRTABLE_API_KEY]: ")
    assert result.stdout.splitlines()[-1].startswith("check failed: 1 error")


def test_unloadable_configuration_exits_4(make_project, run_cli):
    root = make_project(settings="[environments\n")
    result = run_cli("check", cwd=root)
    assert result.exit_code == 4 and "envfence.toml" in result.stderr


CANARY_FILES = {
    ".env": (
        f"DEV_AIRTABLE_API_KEY={CANARY_TOKEN}\n"
        f"PROD_AIRTABLE_API_KEY={CANARY_TOKEN}\n"  # shared across environments: an error naming both keys
        f"HOUSECALLPRO_API_KEY={CANARY_HCP}\n"
        f"DEV_HOUSECALLPRO_WEBHOOK_SECRET=x{CANARY_HOOK}\n"
        f"PROD_HOUSECALLPRO_WEBHOOK_SECRET=canary5eed\n"
        "AIRTABLE_BASE_ID=appDemoDevBase001\n"
    ),
    ".env.production": f"DEV_SERVICE_TOKEN={CANARY_HCP}x\n",
}


@pytest.mark.parametrize("args", [(), ("--env", "production"), ("-v", "--env", "production"), ("-q",)], ids=str)
def test_canary_never_appears_offline_in_any_mode(make_project, run_cli, args):
    root = make_project(CANARY_FILES, settings=SETTINGS)
    for extra in ((), ("--json",)):
        result = run_cli(*extra, *args, "check", cwd=root)
        assert result.exit_code == 1
        for mark in CANARY_MARKS:
            assert mark not in result.stdout and mark not in result.stderr


def test_same_secret_under_two_prefixes_names_both_keys(make_project, run_cli):
    root = make_project(CANARY_FILES, settings=SETTINGS)
    data = json.loads(run_cli("--json", "check", cwd=root).stdout)
    [shared] = [f for f in data["findings"] if f["code"] == "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS"]
    assert "DEV_AIRTABLE_API_KEY" in shared["message"] and "PROD_AIRTABLE_API_KEY" in shared["message"]
    assert shared["severity"] == "error"


def test_offline_check_imports_no_http_client(make_project):
    import subprocess
    import sys

    root = project(make_project, "http://127.0.0.1:9", "http://127.0.0.1:9")
    script = (
        "import sys, json\nfrom envfence.cli import main\ntry:\n    main(['check'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('pyairtable', 'requests') if m in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1] == "[]", proc.stderr


def test_the_demo_project_passes_live_against_the_seeded_fakes(demo_checkout, run_cli, fake_airtable, fake_housecallpro):
    root = demo_checkout
    env = {"AIRTABLE_ENDPOINT_URL": fake_airtable.url, "HOUSECALLPRO_API_URL": fake_housecallpro.url, "ENVFENCE_HOSTNAME": "dev-laptop-07"}
    data = json.loads(run_cli("--json", "check", "--live", cwd=root, env=env).stdout)
    assert data["ok"], data["findings"]
    assert {"AIRTABLE_LIVE_OK", "HOUSECALLPRO_LIVE_OK"} <= {f["code"] for f in data["findings"]}


def test_a_failing_validator_is_reported_without_the_secret_it_quoted(make_project, run_cli, envfence_plugin):
    import envfence

    class Leaky:
        @envfence.hookimpl
        def validate(self, session):
            raise RuntimeError(f"boom with {session.config['DEV_AIRTABLE_API_KEY'].reveal()}")

    envfence_plugin(Leaky(), "leaky")
    root = project(make_project, "http://127.0.0.1:9", "http://127.0.0.1:9", token=CANARY_TOKEN)
    plain, data = check(run_cli, root)
    assert plain.exit_code == 1
    assert [f["plugin"] for f in data["findings"] if f["code"] == "PLUGIN_ERROR"] == ["leaky"]
