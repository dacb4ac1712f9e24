"""The seams a shared store answers: the run's lock and a second audit chain to verify. No database needed."""

from __future__ import annotations

import contextlib
import json

from envfence import ConfigurationError, hookimpl

SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n'
JOBS = "def ok(ctx):\n    ctx.say('ran')\n"


def test_hook_acquire_run_lock_holds_the_plugins_lock_for_the_run_or_refuses_with_exit_4(envfence_project, envfence_plugin):
    held = []

    class Lock:
        refuse = False

        @hookimpl
        def acquire_run_lock(self, session, automation, wait, echo):
            if self.refuse:
                raise ConfigurationError("the lock server is away", "bring it back")

            @contextlib.contextmanager
            def lock():
                held.append(("taken", automation, session.environment.name, wait))
                echo("holding the shared lock")
                yield
                held.append(("released", automation))

            return lock()

    plugin = Lock()
    envfence_plugin(plugin)
    envfence_project.settings(SETTINGS)
    envfence_project.write("jobs.py", JOBS)
    result = envfence_project.run("run", "ok", "--wait")
    assert result.exit_code == 0, result.output
    assert "holding the shared lock" in result.output and "ran" in result.output
    assert held == [("taken", "ok", "development", True), ("released", "ok")]
    # The plugin's lock replaced the file lock: none was created.
    assert not (envfence_project.path / "var" / "development" / "locks" / "ok.lock").exists()

    plugin.refuse = True
    refused = envfence_project.run("run", "ok")
    assert refused.exit_code == 4
    assert "the lock server is away" in refused.output and "ran" not in refused.output


def test_hook_verify_audit_store_makes_audit_verify_report_and_fail_on_a_broken_chain(envfence_project, envfence_plugin):
    class Kept:
        broken = None

        @hookimpl
        def verify_audit_store(self, session):
            return {"store": "remote://trail", "records": 7, "ok": self.broken is None, "broken": self.broken}

    plugin = Kept()
    envfence_plugin(plugin)
    ok = envfence_project.run("audit", "verify")
    assert ok.exit_code == 0 and "ok: 7 record(s), chain intact (remote://trail)" in ok.output
    plugin.broken = {"seq": 3, "reason": "its content does not match its hash (edited)"}
    broken = envfence_project.run("audit", "verify", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["stores"][0]["broken"]["seq"] == 3
    text = envfence_project.run("audit", "verify")
    assert text.exit_code == 1 and "broken: remote://trail: record #3: its content does not match its hash" in text.output


def test_hook_hold_state_keeps_the_alert_incidents_where_the_plugin_says(envfence_project, envfence_plugin):
    kept: dict = {}
    calls = []

    class Shared:
        @hookimpl
        def hold_state(self, session, name, write):
            calls.append((name, write))

            @contextlib.contextmanager
            def held():
                value = json.loads(json.dumps(kept.get(name, {})))
                yield value
                if write:
                    kept[name] = value

            return held()

    envfence_plugin(Shared())
    envfence_project.settings(SETTINGS + '\n[thresholds.ok]\nmax_memory = "1KB"\n\n[alerts.escalation]\ndevelopment = ["console"]\n')
    envfence_project.write("jobs.py", JOBS)
    first = envfence_project.run("run", "ok")
    assert first.exit_code == 0 and "envfence: ALERT" in first.output
    assert list(kept["alerts"]["incidents"]) == ["ok:max_memory"] and ("alerts", True) in calls
    # The incident is open in the plugin's state: the next run sends nothing, and no file was written.
    second = envfence_project.run("run", "ok")
    assert second.exit_code == 0 and "envfence: ALERT" not in second.output
    assert not (envfence_project.path / "var" / "development" / "state" / "alerts.json").exists()
    shown = json.loads(envfence_project.run("alerts", "show", "--json").stdout)
    assert list(shown["incidents"]) == ["ok:max_memory"] and ("alerts", False) in calls


def test_hook_open_webhook_queue_gives_the_queue_commands_the_plugins_queue(envfence_project, envfence_plugin):
    from envfence_builtins.webhook_service.webhook_queue import STATUSES, WebhookEvent

    event = WebhookEvent(seq=7, id="evt_1", route="/hooks", provider="housecallpro", type="job.created", automation="ok",
                         body=b"{}", headers={}, received_at=0.0, status="pending", attempt=0, max_attempts=5,
                         next_attempt_at=0.0)

    class Elsewhere:
        def list(self, status=None, limit=100):
            return [event]

        def counts(self):
            return {s: 0 for s in STATUSES} | {"pending": 1}

    class Shared:
        @hookimpl
        def open_webhook_queue(self, session):
            return Elsewhere()

    envfence_plugin(Shared())
    listed = json.loads(envfence_project.run("queue", "list", "--json").stdout)
    assert [e["id"] for e in listed["events"]] == ["evt_1"] and listed["counts"]["pending"] == 1
    # The tree's own queue was never created.
    assert not (envfence_project.path / "var" / "development" / "queue").exists()
