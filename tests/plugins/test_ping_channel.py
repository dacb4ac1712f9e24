"""The ``ping`` channel: a start ping, then success or failure with the exit status, to a monitor on 127.0.0.1."""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

JOBS = "import sys\n\ndef ok(ctx):\n    ctx.say('fine')\n\ndef bad(ctx):\n    raise RuntimeError('broken')\n"


class Monitor:
    """A healthchecks.io / cronitor stand-in: records every ping's path and query; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.pings: list[tuple[str, dict, bytes]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                parts = urllib.parse.urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                me.pings.append((parts.path, dict(urllib.parse.parse_qsl(parts.query)), body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def monitor():
    m = Monitor()
    yield m
    m.stop()


def settings(url: str, style: str = "healthchecks", channels: str = '"console", "ping"') -> str:
    return f"""
[automations.sync]
run = "jobs:ok"

[automations.broken]
run = "jobs:bad"

[automations.shell]
run = ["sh", "-c", "exit 7"]

[alerts.escalation]
development = [{channels}]

[alerts.ping]
url = "{url}"
style = "{style}"
timeout = 5
"""


def test_healthchecks_style_start_then_success_then_exit_status(make_project, run_cli, monitor):
    root = make_project({"jobs.py": JOBS}, settings=settings(monitor.base + "/ping/KEY-123/{environment}-{automation}"))
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    assert [p[0] for p in monitor.pings] == ["/ping/KEY-123/development-sync/start", "/ping/KEY-123/development-sync/0"]
    assert monitor.pings[0][1]["rid"] == monitor.pings[1][1]["rid"]  # one run: the monitor measures its duration
    monitor.pings.clear()
    assert run_cli("run", "shell", cwd=root).exit_code == 1
    assert [p[0] for p in monitor.pings] == ["/ping/KEY-123/development-shell/start", "/ping/KEY-123/development-shell/7"]
    monitor.pings.clear()
    assert run_cli("run", "broken", cwd=root).exit_code == 1
    assert monitor.pings[-1][0] == "/ping/KEY-123/development-broken/1"


def test_cronitor_style_run_complete_fail_with_status_code_and_series(make_project, run_cli, monitor):
    root = make_project({"jobs.py": JOBS}, settings=settings(monitor.base + "/p/APIKEY/{automation}", style="cronitor"))
    run_cli("run", "sync", cwd=root)
    run_cli("run", "shell", cwd=root)
    states = [(p[0], p[1]["state"], p[1].get("status_code")) for p in monitor.pings]
    assert states == [("/p/APIKEY/sync", "run", None), ("/p/APIKEY/sync", "complete", "0"),
                      ("/p/APIKEY/shell", "run", None), ("/p/APIKEY/shell", "fail", "7")]
    assert monitor.pings[0][1]["series"] == monitor.pings[1][1]["series"] and monitor.pings[0][1]["env"] == "development"


def test_no_ping_where_the_environment_does_not_escalate_to_it(make_project, run_cli, monitor):
    root = make_project({"jobs.py": JOBS}, settings=settings(monitor.base + "/{automation}", channels='"console"'))
    assert run_cli("run", "sync", cwd=root).exit_code == 0
    assert monitor.pings == []


def test_a_monitor_that_is_down_or_refuses_never_fails_the_run_and_its_key_is_never_shown(make_project, run_cli):
    refusing = Monitor(status=500)
    try:
        root = make_project({"jobs.py": JOBS}, settings=settings(refusing.base + "/SECRET-KEY-9/{automation}"))
        result = run_cli("run", "sync", cwd=root)
        assert result.exit_code == 0
        assert "answered HTTP 500" in result.stderr and "SECRET-KEY-9" not in result.stderr + result.stdout
    finally:
        refusing.stop()
    gone = make_project({"jobs.py": JOBS}, settings=settings("http://127.0.0.1:9/SECRET-KEY-9/{automation}"), name="gone")
    result = run_cli("run", "sync", cwd=gone)
    assert result.exit_code == 0 and "cannot reach 127.0.0.1:9" in result.stderr and "SECRET-KEY-9" not in result.stderr


def test_a_missed_run_found_by_health_alert_is_a_failure_ping(make_project, run_cli, monitor):
    root = make_project({"jobs.py": JOBS}, settings=settings(monitor.base + "/hc/{automation}")
                        + '\n[thresholds.sync]\nexpected_every = "1m"\ngrace = "1s"\n')
    import envfence

    envfence.open_session(root=root).prepare()
    result = run_cli("health", "--alert", cwd=root)
    assert result.exit_code == 2
    assert [p[0] for p in monitor.pings] == ["/hc/sync/1"] and b"sync last ran never" in monitor.pings[0][2]


def test_bad_ping_settings_are_named(make_project, run_cli, monitor):
    root = make_project({"jobs.py": JOBS}, settings=settings("ftp://example/{automation}"))
    result = run_cli("run", "sync", cwd=root)
    assert result.exit_code == 0 and "[alerts.ping] url" in result.stderr and "not an http(s) URL" in result.stderr
    root = make_project({"jobs.py": JOBS}, settings=settings(monitor.base + "/{job}"), name="p2")
    assert "placeholder other than {automation}" in run_cli("run", "sync", cwd=root).stderr
