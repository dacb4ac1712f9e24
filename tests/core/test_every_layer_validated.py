"""Every layer is validated: a malformed value a higher layer overrides is a warning naming both layers."""

from __future__ import annotations

import json

GOOD_TOKEN = "pat" + "A" * 14 + "." + "a" * 64
CANARY = "canary-Lower-Layer-7Qx2"


def findings(run_cli, root, *args):
    result = run_cli("--json", *args, "check", cwd=root)
    return result, json.loads(result.stdout)["findings"]


def test_a_malformed_value_in_env_overridden_by_env_development_is_a_warning_naming_both(make_project, run_cli):
    root = make_project({
        ".env": f"DEV_AIRTABLE_API_KEY={CANARY}\nDEV_AIRTABLE_BASE_ID=notabase\n",
        ".env.development": f"DEV_AIRTABLE_API_KEY={GOOD_TOKEN}\nDEV_AIRTABLE_BASE_ID=appAAAAAAAAAAAAAA\n",
    })
    result, found = findings(run_cli, root)
    assert result.exit_code == 0, result.output  # a warning: the value in use is good
    layered = {f["key"]: f for f in found if f["code"] == "LAYER_VALUE_INVALID"}
    assert set(layered) == {"DEV_AIRTABLE_API_KEY", "DEV_AIRTABLE_BASE_ID"}
    token = layered["DEV_AIRTABLE_API_KEY"]
    assert token["severity"] == "warning" and token["file"] == ".env"
    assert "in .env" in token["message"] and ".env.development overrides it" in token["message"]
    assert "AIRTABLE_TOKEN_FORMAT" in token["message"]
    assert CANARY not in result.output


def test_a_value_two_layers_down_is_validated_too(make_project, run_cli):
    root = make_project({
        ".env": "DEV_AIRTABLE_BASE_ID=notabase\n",
        ".env.development": "DEV_AIRTABLE_BASE_ID=appAAAAAAAAAAAAAA\n",
        ".env.local": "DEV_AIRTABLE_BASE_ID=appBBBBBBBBBBBBBB\n",
        ".env.development.local": f"DEV_AIRTABLE_API_KEY={GOOD_TOKEN}\n",
    })
    _, found = findings(run_cli, root)
    layered = [f for f in found if f["code"] == "LAYER_VALUE_INVALID"]
    assert len(layered) == 1 and "in .env " in layered[0]["message"] and ".env.local overrides it" in layered[0]["message"]


def test_a_bad_value_in_use_is_reported_once_not_again_for_its_lower_layer(make_project, run_cli):
    root = make_project({
        ".env": "DEV_AIRTABLE_BASE_ID=stillbad\n",
        ".env.development": f"DEV_AIRTABLE_BASE_ID=notabase\nDEV_AIRTABLE_API_KEY={GOOD_TOKEN}\n",
    })
    result, found = findings(run_cli, root)
    assert result.exit_code == 1
    assert [f["code"] for f in found if f["key"] == "DEV_AIRTABLE_BASE_ID"] == ["AIRTABLE_BASE_ID_FORMAT"]


def test_good_values_in_every_layer_give_no_layer_warning(make_project, run_cli):
    root = make_project({
        ".env": "DEV_AIRTABLE_BASE_ID=appCCCCCCCCCCCCCC\n",
        ".env.development": f"DEV_AIRTABLE_BASE_ID=appAAAAAAAAAAAAAA\nDEV_AIRTABLE_API_KEY={GOOD_TOKEN}\n",
    })
    result, found = findings(run_cli, root)
    assert result.exit_code == 0 and not [f for f in found if f["code"] == "LAYER_VALUE_INVALID"]


def test_an_overridden_secret_is_masked_wherever_it_might_be_quoted(make_project):
    import envfence

    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\n", ".env.development": "DEV_API_TOKEN=the-one-in-use-123\n"})
    session = envfence.open_session(root, env="development")
    assert CANARY not in session.redactor()(f"a plugin quoting {CANARY}")
