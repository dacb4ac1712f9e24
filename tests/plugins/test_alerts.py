"""Alerts: one per incident and a recovery, by email (a real SMTP server), signed webhook and the console; kept and retried when undelivered."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CANARY = "canary-alert-Zq81Lm"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
JOBS = "def ok(ctx):\n    ctx.say('fine')\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class Receiver:
    """A webhook receiver on 127.0.0.1 recording headers and raw bodies."""

    def __init__(self) -> None:
        self.deliveries: list = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                me.deliveries.append((self.headers, body))  # case-insensitive, as HTTP headers are
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/envfence"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def settings(port: int, url: str = "", memory: str = "1KB") -> str:
    return f"""
[automations.sync]
run = "jobs:ok"

[thresholds.sync]
max_memory = "{memory}"

[alerts.escalation]
development = ["console", "email"{', "webhook"' if url else ''}]

[alerts.email]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "envfence@build-box-01"
to = ["ops@example.org"]
timeout = 5

[alerts.webhook]
url = "{url}"
"""


def test_email_alert_once_per_incident_then_recovery_through_a_real_smtp_server(make_project, run_cli):
    port = free_port()
    mailbox = Mailbox(port)
    try:
        root = make_project({"jobs.py": JOBS, ".env": f"DEV_SMTP_PASSWORD={CANARY}\n"}, settings=settings(port))
        first = run_cli("run", "sync", cwd=root)
        assert first.exit_code == 0, first.output
        assert "envfence: ALERT [warning] development sync max_memory" in first.stderr
        [(to, mail)] = mailbox.messages
        assert to == ["ops@example.org"]
        assert mail["Subject"] == "[envfence] WARNING development: sync max_memory"
        body = mail.get_payload()
        assert "automation: sync" in body and "limit: 1" in body and "run: run-" in body and CANARY not in body
        assert run_cli("run", "sync", cwd=root).exit_code == 0
        assert len(mailbox.messages) == 1  # still the same incident
        (root / "envfence.toml").write_text(settings(port, memory="64GB"))
        assert run_cli("run", "sync", cwd=root).exit_code == 0
        assert len(mailbox.messages) == 2 and mailbox.messages[1][1]["Subject"].startswith("[envfence] RECOVERED development")
    finally:
        mailbox.stop()


def test_unreachable_smtp_server_keeps_the_alert_and_the_next_run_delivers_it(make_project, run_cli):
    port = free_port()  # nothing listens there yet
    root = make_project({"jobs.py": JOBS}, settings=settings(port))
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0
    assert f"email: cannot deliver through 127.0.0.1:{port}" in ran.stderr and "kept and retried on the next run" in ran.stderr
    shown = json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)
    assert shown["channels"] == ["console", "email"]
    [pending] = shown["pending"]
    assert pending["channels"] == ["email"] and pending["attempts"] == 1  # the console got it; only email waits
    assert list(shown["incidents"]) == ["sync:max_memory"]
    assert run_cli("alerts", "retry", cwd=root).exit_code == 1  # still unreachable
    mailbox = Mailbox(port)
    try:
        assert run_cli("run", "sync", cwd=root).exit_code == 0  # same incident: no new alert, but the kept one goes out
        [(_, mail)] = mailbox.messages
        assert mail["Subject"] == "[envfence] WARNING development: sync max_memory"
        assert json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"] == []
    finally:
        mailbox.stop()


def test_webhook_alert_is_signed_with_standard_webhooks(make_project, run_cli, receiver):
    from envfence_builtins.webhook_service.webhook_signatures import verify_standard

    root = make_project({"jobs.py": JOBS, ".env": f"DEV_ALERT_WEBHOOK_SECRET={SECRET}\n"},
                        settings=settings(free_port(), receiver.url).replace('"console", "email", ', ""))
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0, ran.output
    [(headers, body)] = receiver.deliveries
    verify_standard(SECRET, headers["webhook-id"], headers["webhook-timestamp"], body, headers["webhook-signature"])
    data = json.loads(body)
    assert data["type"] == "envfence.alert.firing"
    assert data["data"]["automation"] == "sync" and data["data"]["check"] == "max_memory" and data["data"]["run_id"].startswith("run-")
    assert SECRET not in ran.output


def test_hook_alert_unknown_channel_is_kept_with_a_clear_reason(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=settings(free_port()).replace('["console", "email"]', '["pager"]'))
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0
    assert "no plugin delivers the 'pager' channel" in ran.stderr


def test_health_alert_sends_a_missed_run_once(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\nschedule = "0 * * * *"\n')
    first = run_cli("health", "--alert", cwd=root)
    assert first.exit_code == 2
    assert "envfence: ALERT [critical] development sync expected_every" in first.stderr
    second = run_cli("health", "--alert", cwd=root)
    assert second.exit_code == 2 and "ALERT" not in second.stderr


def test_health_alert_with_the_alerts_plugin_disabled_says_nothing_was_sent(make_project, run_cli):
    import json

    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\nschedule = "0 * * * *"\n')
    result = run_cli("-p", "no:alerts", "--json", "health", "--alert", cwd=root)
    assert result.exit_code == 2 and "ALERT" not in result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["alerts"]["state"] == "UNKNOWN" and "enable the alerts plugin" in checks["alerts"]["message"]
    assert checks["sync.expected_every"]["state"] == "CRITICAL"  # the checks themselves still stand


def test_hook_alert_a_plugin_that_raises_is_named_and_its_alert_kept(make_project, run_cli, envfence_plugin):
    import envfence

    class Pager:
        @envfence.hookimpl
        def alert(self, alert, channels):
            if "pager" in channels:
                raise ConnectionError("pager service is down")
            return None

    envfence_plugin(Pager(), "pager")
    root = make_project({"jobs.py": JOBS}, settings=settings(free_port()).replace('["console", "email"]', '["console", "pager"]'))
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0, ran.output
    assert "pager: " in ran.stderr and "pager service is down" in ran.stderr and "kept and retried" in ran.stderr
    [pending] = json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"]
    assert pending["channels"] == ["pager"] and "pager service is down" in pending["last_error"]


def test_bad_thresholds_and_escalation_are_reported_by_check(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings='[automations.sync]\nrun = "jobs:ok"\n'
                        '[thresholds.sync]\nmax_duration = "soon"\n[thresholds.synk]\nmax_memory = "1GB"\n'
                        '[alerts.escalation]\nstaging = ["console"]\n')
    findings = json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]
    messages = {f["code"]: [] for f in findings}
    for f in findings:
        messages[f["code"]].append(f["message"])
    # A value the [thresholds] declaration refuses is check's SETTINGS_INVALID, said once with the file and the key.
    assert any("thresholds.sync.max_duration: is not a duration" in m for m in messages["SETTINGS_INVALID"])
    assert not any("max_duration" in m for m in messages.get("THRESHOLD_INVALID", []))
    assert any("no automation named 'synk'" in m for m in messages["THRESHOLD_INVALID"])
    assert any("'staging' is no declared environment" in m for m in messages["ALERTS_INVALID"])


def test_alert_state_behind_a_symlink_is_replaced_never_followed(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": JOBS}, settings=settings(free_port()).replace('["console", "email"]', '["console"]'))
    run_cli("init", cwd=root)
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    state = root / "var" / "development" / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "alerts.json").symlink_to(outside)
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0, ran.output
    assert outside.read_text() == "{}"  # the link was replaced, never written through
    assert not (state / "alerts.json").is_symlink() and "sync:max_memory" in (state / "alerts.json").read_text()


def test_alert_state_that_cannot_be_kept_warns_and_the_run_stands(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": JOBS}, settings=settings(free_port()).replace('["console", "email"]', '["console"]'))
    run_cli("init", cwd=root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "var" / "development" / "state").symlink_to(elsewhere, target_is_directory=True)
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0, ran.output  # the run's own result stands
    assert "envfence: warning: alerts: " in ran.stderr
    assert list(elsewhere.iterdir()) == []
