"""While a job runs, it sees only its environment: in-process, and in a child process (`isolation = "process"`)."""

from __future__ import annotations

import json
import os

import pytest

JOBS = r'''
import json, os, subprocess, sys, threading

NAMES = ("PROD_", "DEV_", "ENVFENCE_KEY")


def names():
    return sorted(k for k in os.environ if k.startswith(NAMES))


def look(ctx):
    seen = {}
    thread = threading.Thread(target=lambda: seen.update(thread=names()))
    thread.start()
    thread.join()
    child = subprocess.run(
        [sys.executable, "-c", "import json, os; print(json.dumps(sorted(k for k in os.environ if k.startswith(%r))))" % (NAMES,)],
        capture_output=True, text=True,
    ).stdout
    report = {
        "pid": os.getpid(), "environ": names(), "config": sorted(ctx.config), "thread": seen["thread"],
        "spawned": json.loads(child), "token_len": len(str(ctx.credential("API_TOKEN").reveal())),
    }
    ctx.paths.base.joinpath("seen.json").write_text(json.dumps(report))
    print("the token is", ctx.credential("API_TOKEN").reveal())


def boom(ctx):
    raise KeyError("no such record")


def seven(ctx):
    return 7
'''
DEV_TOKEN = "dev-canary-Token-4411"
PROD_TOKEN = "prod-canary-Token-9932"
SHELL_PROD = "shell-prod-canary-7781"


def settings(isolation: str = "") -> str:
    extra = f"isolation = {isolation}\n" if isolation else ""
    return (
        f'[automations.look]\nrun = "jobs:look"\n{extra}'
        f'[automations.boom]\nrun = "jobs:boom"\n{extra}'
        f'[automations.seven]\nrun = "jobs:seven"\n{extra}'
    )


ENROLLED = '[hostname.production]\nhosts = ["build-box-*"]\n'



@pytest.fixture
def shell(monkeypatch):
    """Another environment's credential and key exported in the shell that starts envfence."""
    monkeypatch.setenv("PROD_SHELL_TOKEN", SHELL_PROD)
    monkeypatch.setenv("ENVFENCE_KEY_PROD", "a-production-key-not-for-development")
    monkeypatch.setenv("DEV_FROM_SHELL", "1")


def project(make_project, isolation=""):
    return make_project(
        {"jobs.py": JOBS, ".env": f"DEV_API_TOKEN={DEV_TOKEN}\nPROD_API_TOKEN={PROD_TOKEN}\n"}, settings=settings(isolation)
    )


def seen(root, env="development"):
    return json.loads((root / "var" / env / "seen.json").read_text())


def test_an_in_process_job_sees_nothing_of_another_environment(make_project, run_cli, shell):
    root = project(make_project)
    result = run_cli("--env", "development", "run", "look", cwd=root)
    assert result.exit_code == 0, result.output
    report = seen(root)
    assert report["pid"] == os.getpid()  # in-process
    assert report["environ"] == report["thread"] == report["spawned"] == ["DEV_FROM_SHELL"]
    assert report["config"] == ["DEV_API_TOKEN", "DEV_FROM_SHELL"]  # no PROD_API_TOKEN from .env, none from the shell
    # ... and the process gets them back once the job is over.
    assert os.environ["PROD_SHELL_TOKEN"] == SHELL_PROD and os.environ["ENVFENCE_KEY_PROD"]
    assert DEV_TOKEN not in result.output and PROD_TOKEN not in result.output


def test_a_job_in_a_child_process_gets_only_its_environment(make_project, run_cli, shell):
    root = project(make_project, '"process"')
    result = run_cli("--env", "development", "--set", "EXTRA=given", "run", "look", cwd=root)
    assert result.exit_code == 0, result.output
    report = seen(root)
    assert report["pid"] != os.getpid()
    assert report["environ"] == report["thread"] == report["spawned"] == ["DEV_FROM_SHELL"]
    assert report["config"] == ["DEV_API_TOKEN", "DEV_FROM_SHELL", "EXTRA"]
    assert report["token_len"] == len(DEV_TOKEN)
    # Its output is streamed through the redactor.
    assert "the token is" in result.stdout and DEV_TOKEN not in result.output


def test_a_child_s_exception_class_and_exit_code_reach_the_runner(make_project, run_cli):
    root = project(make_project, '"process"')
    failed = run_cli("--json", "--env", "development", "run", "boom", cwd=root)
    data = json.loads(failed.stdout)
    assert failed.exit_code == 1 and data["status"] == "failed"
    assert "KeyError" in (root / "var" / "development" / "logs" / "automation_development.log").read_text()
    coded = run_cli("--json", "--env", "development", "run", "seven", "--pass-exit-code", cwd=root)
    assert coded.exit_code == 7
    history = json.loads(run_cli("--json", "--env", "development", "status", cwd=root).stdout)["runs"]
    assert {r["automation"]: r["job_exit_code"] for r in history} == {"boom": 1, "seven": 7}
    assert {r["automation"]: r["error_class"] for r in history}["boom"] == "data"  # KeyError, classified as here


def test_the_child_s_credential_reads_are_in_the_parent_s_audit_trail(make_project, run_cli):
    root = project(make_project, '"process"')
    assert run_cli("--env", "development", "run", "look", cwd=root).exit_code == 0
    trail = (root / "var" / "development" / "audit")
    records = [json.loads(line) for f in sorted(trail.glob("*.jsonl")) for line in f.read_text().splitlines() if line]
    reads = [r for r in records if r.get("event") == "credential.accessed"]
    assert reads and all(DEV_TOKEN not in json.dumps(r) for r in records)


def test_production_runs_a_function_in_a_child_process_by_default(make_project, run_cli):
    root = make_project({"jobs.py": JOBS, ".env.production": "PROD_API_TOKEN=prod-token-for-prod\n"}, settings=settings() + ENROLLED)
    result = run_cli("--env", "production", "run", "look", cwd=root)
    assert result.exit_code == 0, result.output
    assert seen(root, "production")["pid"] != os.getpid()


def test_an_automation_may_opt_out_with_a_reason(make_project, run_cli):
    root = make_project(
        {"jobs.py": JOBS, ".env.production": "PROD_API_TOKEN=prod-token-for-prod\n"},
        settings=settings('"in-process"\nisolation_reason = "drives a GUI session of this process"') + ENROLLED,
    )
    assert run_cli("--env", "production", "run", "look", cwd=root).exit_code == 0
    assert seen(root, "production")["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('isolation = "in-process"', "isolation_reason: needed"),
        ('isolation = "thread"', "isolation: must be 'process' or 'in-process', not 'thread'"),
        ('isolation_reason = "why not"', "goes with isolation"),
    ],
)
def test_a_wrong_isolation_setting_is_named(make_project, run_cli, body, says):
    root = make_project({"jobs.py": JOBS}, settings=f'[automations.look]\nrun = "jobs:look"\n{body}\n')
    result = run_cli("check", cwd=root)
    assert result.exit_code == 1 and "AUTOMATION_INVALID" in result.stdout and says in result.stdout


def test_a_detached_process_holding_the_result_pipe_does_not_hang_the_run(make_project, run_cli):
    import time

    jobs = JOBS + '''

def detach(ctx):
    if os.fork() == 0:  # a daemon: detached, its output closed, every other inherited descriptor kept
        os.setsid()
        os.close(1)
        os.close(2)
        time.sleep(30)
        os._exit(0)
    return 0
'''
    root = make_project({"jobs.py": "import time\n" + jobs}, settings='[automations.detach]\nrun = "jobs:detach"\nisolation = "process"\n')
    started = time.monotonic()
    result = run_cli("--env", "development", "run", "detach", cwd=root)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 25


def test_a_child_gets_no_variable_of_the_shell_but_its_environment_s(make_project, run_cli, monkeypatch):
    """As a command does: a production job in its child process reads its configuration, not the shell's leftovers."""
    monkeypatch.setenv("SHELL_LEFTOVER", "from-the-shell")
    jobs = "import os\ndef peek(ctx):\n    ctx.paths.base.joinpath('peek').write_text(repr(os.environ.get('SHELL_LEFTOVER')))\n"
    root = make_project({"jobs.py": jobs}, settings='[automations.peek]\nrun = "jobs:peek"\nisolation = "process"\n')
    assert run_cli("--env", "development", "run", "peek", cwd=root).exit_code == 0
    assert (root / "var" / "development" / "peek").read_text() == "None"


def test_a_function_no_child_can_import_runs_in_process_on_the_record(make_project, run_cli, envfence_plugin, audit_events):
    import envfence
    from envfence.models import Automation

    ran = []

    class Closure:
        @envfence.hookimpl
        def register_automations(self, session, register):
            register(Automation("closure", "a lambda", function=lambda ctx: ran.append(os.getpid())))

    envfence_plugin(Closure(), "closure")
    root = make_project(settings=ENROLLED)
    result = run_cli("--env", "production", "run", "closure", cwd=root)
    assert result.exit_code == 0, result.output
    assert ran == [os.getpid()]
    [note] = [e for e in audit_events if e.event == "run.not_isolated"]
    assert note.data["automation"] == "closure"
