"""The session's parts: automations collected once, one redaction per log record, the stash, other environments' views."""

from __future__ import annotations

import json
import sys

from envfence import hookimpl
from envfence.stash import Stash, StashKey

CANARY = "parts-CANARY-31337"
SETTINGS = f"""
[automations.hello]
run = [{json.dumps(sys.executable)}, "-c", "print('hello ran')"]
"""


def test_register_automations_runs_once_per_run(envfence_project, envfence_plugin):
    calls: list[str] = []

    class Counting:
        @hookimpl
        def register_automations(self, session, register):
            calls.append(session.environment.name)

    envfence_plugin(Counting(), "counting")
    envfence_project.settings(SETTINGS)
    result = envfence_project.run("run", "hello")
    assert result.exit_code == 0, result.output
    assert calls == ["development"]


def test_each_log_record_is_redacted_once(envfence_project):
    envfence_project.write(".env", f"DEV_SYNC_TOKEN={CANARY}\n")
    session = envfence_project.session()
    redactor = session.redactor()
    calls: list[str] = []

    class Counting:
        def __call__(self, text):
            calls.append(text)
            return redactor(text)

        def data(self, value):
            return redactor.data(value)

    session._redactor = Counting()
    for embedded in (True, False):  # library use, then the command line's strategy
        session.configure_logging(embedded=embedded)
        calls.clear()
        session.logger(automation="sync").info(f"token is {CANARY}")
        assert len([c for c in calls if "token is" in c]) == 1, embedded


def test_a_plugin_keeps_its_state_in_the_session_stash(envfence_project, envfence_plugin):
    SEEN = StashKey[list]()

    class Remembers:
        @hookimpl
        def validate(self, session):
            session.stash.setdefault(SEEN, []).append("validated")
            return []

    envfence_plugin(Remembers(), "remembers")
    first, second = envfence_project.session(), envfence_project.session()
    first.report, second.report
    assert first.stash[SEEN] == ["validated"] and second.stash[SEEN] == ["validated"]
    stash = Stash()
    assert stash.get(SEEN, None) is None and SEEN not in stash


def test_config_for_gives_another_environments_files_without_this_process_environment(envfence_project):
    envfence_project.write(".env", "WEBHOOK_PORT=8000\n")
    envfence_project.write(".env.production", f"WEBHOOK_PORT=9000\nPROD_SYNC_TOKEN={CANARY}\n")
    session = envfence_project.session(environ={"WEBHOOK_PORT": "7000"})
    production = session.config_for("production")
    assert production["WEBHOOK_PORT"] == "9000"
    assert production.credential("SYNC_TOKEN").reveal() == CANARY
    assert session.config_for("development") is session.config
    assert session.config_for("production") is production  # built once


def test_a_failed_runs_message_points_at_the_log_file_the_logging_plugin_names(make_project, run_cli):
    settings = f"""
[logging]
file = "jobs"

[automations.fails]
run = [{json.dumps(sys.executable)}, "-c", "import sys; sys.exit(3)"]
"""
    root = make_project(settings=settings)
    result = run_cli("--env", "production", "run", "fails", cwd=root, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert result.exit_code == 1, result.output  # a failed job, whatever its own status
    assert "job exit 3" in result.stderr
    log = root / "var" / "production" / "logs" / "jobs_production.log"
    assert f"grep {result.stderr.split('error ')[1].split(':')[0]} {log}" in result.stderr
    error_id = result.stderr.split("error ")[1].split(":")[0]
    assert error_id in log.read_text()
