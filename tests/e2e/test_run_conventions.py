"""Running as cron, CI and a shell user expect: quiet success, one failure report, shell lines, exec."""

from __future__ import annotations

import json

# The stand-in hostname names the host for these tests (it only tightens otherwise).
STAND_IN = "[hostname]\nallow_stand_in = true\n"

SETTINGS = STAND_IN + '''
[automations]
shell = "echo env=$ENVIRONMENT | tr a-z A-Z"
pipe = "env | sort | grep -c ENVFENCE_"
listed = ["echo", "$ENVIRONMENT"]
boom = "jobs:boom"
'''

JOBS = "def boom(ctx):\n    raise ValueError('boom')\n"
PROD_HOST = {"ENVFENCE_HOSTNAME": "web-prod-01"}


def project(make_project):
    return make_project({"jobs.py": JOBS}, settings=SETTINGS)


def test_a_string_runs_through_the_shell_and_a_list_without_one(make_project, run_cli):
    root = project(make_project)
    assert "ENV=DEVELOPMENT" in run_cli("run", "shell", cwd=root).stdout
    piped = run_cli("run", "pipe", cwd=root)
    assert piped.exit_code == 0 and piped.stdout.strip().splitlines()[-1].isdigit()
    assert "$ENVIRONMENT" in run_cli("run", "listed", cwd=root).stdout


def test_production_success_prints_nothing_and_q_does_the_same_in_development(make_project, run_cli):
    root = project(make_project)
    prod = run_cli("--env", "prod", "run", "shell", cwd=root, env=PROD_HOST)
    assert prod.exit_code == 0, prod.output
    assert prod.stderr == "" and prod.stdout == "ENV=PRODUCTION\n"
    quiet = run_cli("run", "shell", "-q", cwd=root)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_production_failure_is_one_line_on_stderr(make_project, run_cli):
    root = project(make_project)
    result = run_cli("--env", "prod", "run", "boom", cwd=root, env=PROD_HOST)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "boom failed in production" in lines[0] and "Traceback" not in result.stderr


def test_a_development_failure_prints_its_traceback_once(make_project, run_cli):
    root = project(make_project)
    result = run_cli("run", "boom", cwd=root)
    assert result.exit_code == 1
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr


def test_a_blocked_run_states_the_override_once(make_project, run_cli):
    root = project(make_project)
    result = run_cli("--env", "prod", "run", "shell", cwd=root, env={"ENVFENCE_HOSTNAME": "dev-laptop-01"})
    assert result.exit_code == 3
    assert result.stderr.count("--force") == 1, result.stderr
    assert "to override: envfence --env production run shell --force --reason TEXT" in result.stderr


def test_exec_runs_a_command_with_the_environments_configuration_under_plain_names(make_project, run_cli):
    root = make_project({".env": "APP_NAME=sync\nDEV_API_TOKEN=tok-canary-0001\nPROD_API_TOKEN=prod-canary-0002\n"}, settings="")
    result = run_cli("exec", "--", "sh", "-c", 'echo "$APP_NAME $ENVIRONMENT ${PROD_API_TOKEN:-none}"; test -n "$API_TOKEN"', cwd=root)
    assert result.exit_code == 0, result.output
    assert result.stdout == "sync development none\n" and result.stderr == ""
    # The command's own exit code comes back, with no error message of envfence's.
    failed = run_cli("exec", "--", "sh", "-c", "exit 7", cwd=root)
    assert failed.exit_code == 7 and failed.stderr == ""
    # Secrets it prints are masked, as in every run.
    shown = run_cli("exec", "--", "sh", "-c", "echo $API_TOKEN", cwd=root)
    assert "tok-canary-0001" not in shown.output


def test_exec_is_guarded_and_recorded_as_an_ad_hoc_run(make_project, run_cli):
    root = make_project({".env": "APP_NAME=sync\n"}, settings="")
    blocked = run_cli("--env", "prod", "exec", "--", "true", cwd=root, env={"ENVFENCE_HOSTNAME": "dev-laptop-01"})
    assert blocked.exit_code == 3
    assert "to override: envfence --env production exec --force --reason TEXT -- true" in blocked.stderr
    assert run_cli("exec", "--", "true", cwd=root).exit_code == 0
    runs = json.loads(run_cli("--json", "status", cwd=root).stdout)["runs"]
    assert [(r["automation"], r["status"]) for r in runs][:2] == [("exec", "succeeded"), ("exec", "blocked")] or \
        [(r["automation"], r["status"]) for r in runs][:1] == [("exec", "succeeded")]
    trail = run_cli("--json", "audit", "show", "--event", "run.*", cwd=root).stdout
    assert '"exec"' in trail


def test_exec_passes_stdin_and_global_options_before_the_separator(make_project):
    import os
    import subprocess
    import sys

    root = make_project({".env.production": "APP_NAME=live\n"}, settings=STAND_IN)
    result = subprocess.run(
        [sys.executable, "-m", "envfence", "exec", "--env", "prod", "--", "sh", "-c", "cat; echo $APP_NAME"],
        cwd=root, env={**os.environ, **PROD_HOST}, input="from stdin\n", capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from stdin\nlive\n" and result.stderr == ""


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal_as_a_shell_does(make_project):
    import os
    import subprocess
    import sys

    root = make_project({}, settings=STAND_IN + '[automations]\nterm = "kill -TERM $$"\nhup = ["sh", "-c", "kill -HUP $$"]\n')

    def envfence(*args):
        return subprocess.run([sys.executable, "-m", "envfence", *args], cwd=root, env=dict(os.environ), capture_output=True, text=True)

    assert envfence("exec", "--", "sh", "-c", "kill -KILL $$").returncode == 137
    assert envfence("exec", "--", "sh", "-c", "kill -SEGV $$").returncode == 139
    assert envfence("run", "term", "--pass-exit-code").returncode == 143
    hup = envfence("run", "hup", "--pass-exit-code")
    assert hup.returncode == 129 and "status 129" in hup.stderr, hup.stderr
    plain = envfence("run", "term")  # without --pass-exit-code a failed run is envfence's 1; the record keeps 143
    assert plain.returncode == 1
    runs = json.loads(envfence("--json", "status").stdout)["runs"]
    assert {r["automation"]: r["exit_code"] for r in reversed(runs)}["term"] == 143
