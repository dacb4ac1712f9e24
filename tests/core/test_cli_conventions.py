"""Conventions a user of other CLIs expects: options anywhere, suggestions, completion, plain words."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SETTINGS = '''
[automations.sync]
run = ["python", "-c", "print('synced')"]
'''

COMMANDS = [
    ("detect",), ("check",), ("config", "show"), ("config", "diff", "dev", "prod"), ("config", "template"),
    ("config", "rollback", "--list"), ("config", "schema"), ("plugins",), ("emulate",), ("init",), ("list",),
    ("status",), ("clean", "--older-than", "30 days"), ("audit", "show"), ("audit", "verify"), ("precommit",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_json_after_the_command_gives_json_on_every_command(make_project, run_cli, command):
    root = make_project(settings=SETTINGS)
    result = run_cli(*command, "--json", cwd=root)
    assert result.exit_code in (0, 1), result.output
    json.loads(result.stdout)


def test_env_verbosity_and_set_work_after_the_command(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    before = json.loads(run_cli("--env", "prod", "--set", "A=1", "--json", "config", "show", cwd=root).stdout)
    after = json.loads(run_cli("config", "show", "--env", "prod", "--set", "A=1", "--json", cwd=root).stdout)
    assert after["environment"] == before["environment"] == "production"
    assert after["values"]["A"] == "1"
    terse = run_cli("detect", "-q", cwd=root).stdout
    assert terse.startswith("environment=development ")
    assert run_cli("detect", "--root", str(root), cwd=root.parent).exit_code == 0


def test_plugin_disabled_after_the_command(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    listed = json.loads(run_cli("plugins", "-p", "no:hostname", "--json", cwd=root).stdout)
    assert next(p for p in listed if p["name"] == "hostname")["status"] == "disabled"


def test_a_run_blocked_with_env_after_the_name(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("run", "sync", "--env", "prod", cwd=root, env={"ENVFENCE_HOSTNAME": "dev-laptop-01"})
    assert result.exit_code == 3, result.output  # production intended on a development host: blocked
    assert json.loads(run_cli("run", "sync", "--json", cwd=root).stdout)["status"] == "succeeded"


def test_a_mistyped_command_gets_a_suggestion(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("chek", cwd=root)
    assert result.exit_code == 2
    assert "Did you mean 'check'?" in result.stderr


def test_older_than_takes_loguru_style_ages(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    assert run_cli("clean", "--older-than", "30 days", cwd=root).exit_code == 0
    assert run_cli("clean", "--older-than", "2 weeks", "--dry-run", cwd=root).exit_code in (0, 2)
    bad = run_cli("clean", "--older-than", "30 parsecs", cwd=root)
    assert bad.exit_code == 2 and "30 days" in bad.stderr


def test_one_key_is_singular(make_project, run_cli):
    root = make_project({".env": "ONLY=1\n"}, settings=SETTINGS)
    text = run_cli("config", "show", "--explain", cwd=root).stdout
    assert "(1 key)" in text and "(1 keys)" not in text


def complete(root, words, cword):
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword), "_ENVFENCE_COMPLETE": "bash_complete",
           "ENVFENCE_HOSTNAME": "build-box-01"}
    done = subprocess.run([sys.executable, "-m", "envfence"], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_shell_completion_completes_environments_automations_and_plugins(make_project):
    root = make_project(settings=SETTINGS + '\n[environments.staging]\nbased_on = "production"\naliases = ["stage"]\n')
    assert complete(root, "envfence --env st", 2) == ["stage", "staging"]
    assert complete(root, "envfence run sync --env pr", 4) == ["prd", "prod", "production"]
    assert complete(root, "envfence run s", 2) == ["sync"]
    assert complete(root, "envfence -p no:hostn", 2) == ["no:hostname"]
    assert complete(root, "envfence chec", 1) == ["check"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(run_cli, shell):
    result = run_cli("completion", shell)
    assert result.exit_code == 0 and "_ENVFENCE_COMPLETE" in result.stdout


def test_check_live_says_which_service_it_is_waiting_for_in_development_only(make_project, run_cli):
    import socket

    from envfence.testing import DEMO_DEV_BASE, DEMO_DEV_TOKEN

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = (f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\nPROD_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\nAIRTABLE_BASE_ID={DEMO_DEV_BASE}\n"
           f"AIRTABLE_ENDPOINT_URL=http://127.0.0.1:{port}\nAIRTABLE_TIMEOUT=0.3\n")
    root = make_project({".env": env}, settings="[airtable]\n")
    dev = run_cli("check", "--live", cwd=root)
    assert f"checking Airtable at http://127.0.0.1:{port} (up to 0.3 s)..." in dev.stderr
    assert DEMO_DEV_TOKEN not in dev.output
    prod = run_cli("--env", "prod", "check", "--live", cwd=root)
    assert "checking Airtable" not in prod.stderr


def test_status_of_an_unknown_automation_says_so(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("status", "--automation", "snyc", cwd=root)
    assert result.exit_code == 2 and "no automation 'snyc'" in result.stderr and "did you mean 'sync'?" in result.stderr
    assert run_cli("status", "--automation", "sync", cwd=root).exit_code == 0


def test_a_usage_error_under_json_is_json(make_project, run_cli):
    root = make_project(settings=SETTINGS)
    result = run_cli("clean", "--older-than", "3 parsecs", "--json", cwd=root)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["exit_code"] == 2 and "not an age" in data["error"] and data["hint"] == "envfence clean --help"
