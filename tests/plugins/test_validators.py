"""The built-in validators, offline: each problem a finding with its own code, no value shown."""

from __future__ import annotations

import base64

import pytest

import envfence

TOKEN = "patGoodToken00001." + "0123456789abcdef" * 4


def findings(make_project, files, settings="", env=None):
    session = envfence.open_session(make_project(files, settings=settings), env=env, environ={})
    return session.report.findings


def by_code(found, code):
    return [f for f in found if f.code == code]


# --- Airtable -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, code",
    [
        ("keyAbCdEfGhIjKlMn", "AIRTABLE_LEGACY_API_KEY"),
        ("your-token-here", "AIRTABLE_TOKEN_PLACEHOLDER"),
        ("xxx", "AIRTABLE_TOKEN_PLACEHOLDER"),
        (TOKEN[:-1], "AIRTABLE_TOKEN_FORMAT"),
        (TOKEN.upper().replace("PAT", "pat"), "AIRTABLE_TOKEN_FORMAT"),
        ('"' + TOKEN + ' "', "AIRTABLE_TOKEN_FORMAT"),
    ],
)
def test_bad_airtable_tokens(make_project, token, code):
    found = findings(make_project, {".env": f"DEV_AIRTABLE_API_KEY={token}\n"})
    [finding] = by_code(found, code)
    assert finding.severity == "error" and finding.key == "DEV_AIRTABLE_API_KEY"
    assert token.strip('" ') not in finding.message
    assert "chars)" in finding.message  # the masked fingerprint


def test_good_airtable_settings_have_no_finding(make_project):
    found = findings(make_project, {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nAIRTABLE_BASE_ID=appAbCdEfGhIjKlMn\nAIRTABLE_TABLE=tblAbCdEfGhIjKlMn\n"}, "[airtable]\n")
    assert [f.code for f in found] == []


def test_airtable_base_table_and_endpoint_shapes(make_project):
    found = findings(
        make_project,
        {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nAIRTABLE_BASE_ID=app123\nAIRTABLE_TABLE=tblShort\nAIRTABLE_ENDPOINT_URL=ftp://x\n"},
    )
    assert {"AIRTABLE_BASE_ID_FORMAT", "AIRTABLE_TABLE_ID_FORMAT", "AIRTABLE_ENDPOINT_URL_INVALID"} <= {f.code for f in found}
    assert by_code(found, "AIRTABLE_TABLE_ID_FORMAT")[0].severity == "warning"


def test_plain_http_endpoint_is_a_warning_in_development_and_an_error_in_production(make_project):
    files = {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nPROD_AIRTABLE_API_KEY={TOKEN[:-4]}beef\nAIRTABLE_ENDPOINT_URL=http://proxy.example.com\n"}
    assert by_code(findings(make_project, files), "AIRTABLE_ENDPOINT_INSECURE")[0].severity == "warning"
    assert by_code(findings(make_project, files, env="production"), "AIRTABLE_ENDPOINT_INSECURE")[0].severity == "error"
    local = {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nAIRTABLE_ENDPOINT_URL=http://127.0.0.1:8765\n"}
    assert not by_code(findings(make_project, local), "AIRTABLE_ENDPOINT_INSECURE")


def test_airtable_section_makes_token_and_base_required(make_project):
    found = findings(make_project, {}, '[airtable]\nrequired_in = ["production"]\n', env="production")
    assert {f.key for f in by_code(found, "SETTING_REQUIRED_MISSING")} == {"PROD_AIRTABLE_API_KEY", "PROD_AIRTABLE_BASE_ID"}
    assert not by_code(findings(make_project, {}, '[airtable]\nrequired_in = ["production"]\n'), "SETTING_REQUIRED_MISSING")


def test_a_project_without_airtable_gets_no_airtable_finding(make_project):
    assert findings(make_project, {".env": "APP_NAME=x\n"}) == ()


# --- HousecallPro ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, code",
    [("changeme", "HOUSECALLPRO_TOKEN_PLACEHOLDER"), ("abc def 0123456789abcdef", "HOUSECALLPRO_TOKEN_FORMAT"), ("abc123", "HOUSECALLPRO_TOKEN_LENGTH")],
)
def test_bad_housecallpro_keys(make_project, key, code):
    [finding] = by_code(findings(make_project, {".env": f'DEV_HOUSECALLPRO_API_KEY="{key}"\n'}), code)
    assert finding.severity == "error" and key not in finding.message


# --- webhooks -------------------------------------------------------------------------

STANDARD = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    "secret, code, severity",
    [
        ("whsec_tooshort", "WEBHOOK_SECRET_FORMAT", "error"),
        ("0123456789abcdef-0123456789abcdef", "WEBHOOK_SECRET_FORMAT", "error"),  # not base64 (whsec_ is optional)
        ("replace-me", "WEBHOOK_SECRET_PLACEHOLDER", "error"),
    ],
)
def test_standard_webhook_secrets(make_project, secret, code, severity):
    found = findings(make_project, {".env": f"DEV_ORDERS_WEBHOOK_SECRET={secret}\n"}, '[webhooks.orders]\nscheme = "standard"\n')
    [finding] = by_code(found, code)
    assert finding.severity == severity and "orders webhook secret" in finding.message


def test_good_standard_secret_passes(make_project):
    found = findings(make_project, {".env": f"DEV_ORDERS_WEBHOOK_SECRET={STANDARD}\n"}, '[webhooks.orders]\nscheme = "standard"\n')
    assert [f.code for f in found if f.code.startswith("WEBHOOK")] == []


def test_shared_secret_must_be_long_and_random(make_project):
    settings = "[webhooks.github]\n"
    assert by_code(findings(make_project, {".env": "DEV_GITHUB_WEBHOOK_SECRET=abc123abc123\n"}, settings), "WEBHOOK_SECRET_SHORT")
    weak = {".env": "DEV_GITHUB_WEBHOOK_SECRET=" + "abab" * 10 + "\n"}
    assert by_code(findings(make_project, weak, settings), "WEBHOOK_SECRET_WEAK")[0].severity == "warning"
    weak_prod = {".env": "PROD_GITHUB_WEBHOOK_SECRET=" + "abab" * 10 + "\n"}
    assert by_code(findings(make_project, weak_prod, settings, env="prod"), "WEBHOOK_SECRET_WEAK")[0].severity == "error"
    good = {".env": "DEV_GITHUB_WEBHOOK_SECRET=9f2c4e7a1b3d5f6e8a0c2e4f6a8b0d1c3e5f7a9b\n"}
    assert [f.code for f in findings(make_project, good, settings) if f.code.startswith("WEBHOOK")] == []


def test_unknown_webhook_scheme_names_the_table(make_project):
    [finding] = by_code(findings(make_project, {}, '[webhooks.orders]\nscheme = "sha1"\n'), "SETTINGS_INVALID")
    assert "webhooks.orders.scheme: must be one of 'housecallpro', 'standard', 'github', not 'sha1'" in finding.message
    assert finding.key == "webhooks.orders.scheme" and "envfence.toml" in finding.message


# --- cross-environment ---------------------------------------------------------------


def test_other_environments_credential_in_this_environments_file(make_project):
    found = findings(make_project, {".env.production": f"DEV_AIRTABLE_API_KEY={TOKEN}\n"}, env="production")
    [finding] = by_code(found, "CREDENTIAL_OTHER_PREFIX")
    assert finding.severity == "error" and "PROD_AIRTABLE_API_KEY" in finding.remediation


def test_plain_secret_shared_with_a_prefixed_one_is_not_isolated(make_project):
    found = findings(make_project, {".env": f"AIRTABLE_API_KEY={TOKEN}\nPROD_AIRTABLE_API_KEY={TOKEN}\n"})
    [finding] = by_code(found, "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS")
    assert "AIRTABLE_API_KEY (development)" in finding.message and "PROD_AIRTABLE_API_KEY (production)" in finding.message
    assert TOKEN not in finding.message


def test_a_secret_shared_among_many_environments_is_reported_once_per_pair_of_keys(make_project):
    names = [f"qa{i}" for i in range(8)]
    settings = "".join(f'[environments.{n}]\nprefix = "{n.upper()}"\nbased_on = "development"\n' for n in names)
    files = {".env": f"AIRTABLE_API_KEY={TOKEN}\nQA3_AIRTABLE_API_KEY={TOKEN}\nQA5_AIRTABLE_API_KEY={TOKEN[:-4]}beef\n"
                     f"PROD_AIRTABLE_API_KEY={TOKEN[:-4]}beef\n"}
    found = by_code(findings(make_project, files, settings), "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS")
    # development and seven qa environments read the plain key; qa3 reads its own with the same value: one finding.
    # qa5 and production read their own keys with another value they share: one more. Nothing else is shared.
    assert sorted(f.message.split(" hold")[0] for f in found) == [
        "AIRTABLE_API_KEY (development) and QA3_AIRTABLE_API_KEY (qa3)",
        "PROD_AIRTABLE_API_KEY (production) and QA5_AIRTABLE_API_KEY (qa5)",
    ]
    assert all(TOKEN not in f.message for f in found)


def test_different_secrets_per_environment_are_fine(make_project):
    found = findings(make_project, {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nPROD_AIRTABLE_API_KEY={TOKEN[:-4]}beef\n"})
    # Nothing is shared; what remains is that this host (not production's) holds production's plaintext secret.
    assert [f.code for f in found] == ["PRODUCTION_SECRETS_ON_HOST"]


# --- declared settings ---------------------------------------------------------------


def test_misspelled_keys_are_reported_with_the_likely_name(make_project):
    found = findings(make_project, {".env": f"DEV_AIRTABLE_API_KEY={TOKEN}\nAIRTABLE_BASE_IDD=appAbCdEfGhIjKlMn\nHOUSECALLPRO_API_URK=https://x\n"})
    assert {f.key: f.remediation for f in by_code(found, "SETTING_MISSPELLED")} == {
        "AIRTABLE_BASE_IDD": "rename it AIRTABLE_BASE_ID",
        "HOUSECALLPRO_API_URK": "rename it HOUSECALLPRO_API_URL",
    }


def test_declared_format_is_checked_without_showing_a_secret(make_project, envfence_plugin):
    from envfence.models import SettingSpec

    class Declares:
        @envfence.hookimpl
        def declare_settings(self):
            return [SettingSpec("REGION", format=r"[a-z]{2}-[a-z]+-\d", plugin="declares"),
                    SettingSpec("PIN_SECRET", secret=True, format=r"\d{6}", plugin="declares")]

    envfence_plugin(Declares(), "declares")
    found = findings(make_project, {".env": "REGION=Europe\nPIN_SECRET=canary-pin-77\n"})
    messages = {f.key: f.message for f in by_code(found, "SETTING_FORMAT")}
    assert "'Europe'" in messages["REGION"]
    assert "canary-pin-77" not in messages["PIN_SECRET"]


def test_the_misspelling_check_answers_as_difflib_does():
    import difflib
    import itertools

    from envfence_builtins.configuration.declared_settings import close_match

    names = ["AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "HOUSECALLPRO_API_URL", "WEBHOOK_SECRET", "HCP_API_KEY", "ACME_X"]
    typos = {name[:i] + name[i + 1:] for name in names for i in range(len(name))}  # a character left out
    typos |= {name[:i] + name[i + 1] + name[i] + name[i + 2:] for name in names for i in range(len(name) - 1)}  # swapped
    typos |= {a[: len(a) // 2] + b[len(b) // 2:] for a, b in itertools.permutations(names, 2)}  # halves of two names
    others = {"DATABASE_URL", "SETTING_00042", "AIRTABLE_KEY", "WEBHOOK_PORT", "HCP_APIKEY", "X", ""}
    for word in sorted(typos | others):
        assert close_match(word, names) == difflib.get_close_matches(word, names, n=1, cutoff=0.85), word
