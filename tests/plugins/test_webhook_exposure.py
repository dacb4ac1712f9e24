"""The receiver as a stranger meets it: replays to another route, stalled connections, what /readyz tells."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from test_webhook_receiver import HOOKS, Receiver, free_ports, job, runs, std_headers

pytest.importorskip("waitress")

SHARED = "whsec_c2hhcmVkc2hhcmVkc2hhcmVkc2hhcmVkc2hhcmVk"
PROD_SECRET = "whsec_cHJvZHByb2Rwcm9kcHJvZHByb2Rwcm9kcHJvZHBy"  # production's own: environments never share one
TWO_ROUTES = """
[automations]
import-job = "hooks:import_job"
refund-job = "hooks:import_job"

[webhooks.routes."/orders"]
provider = "standard"
automation = "import-job"

[webhooks.routes."/refunds"]
provider = "standard"
automation = "refund-job"

[hostname]
allow_stand_in = true
"""


def two_route_project(root, port: int):
    root.mkdir(parents=True, exist_ok=True)
    (root / "envfence.toml").write_text(TWO_ROUTES)
    (root / "hooks.py").write_text(HOOKS)
    (root / ".env.development").write_text(f"WEBHOOK_PORT={port}\nDEV_STANDARD_WEBHOOK_SECRET={SHARED}\n")
    (root / ".env.production").write_text(f"WEBHOOK_PORT={port + 1}\nPROD_STANDARD_WEBHOOK_SECRET={PROD_SECRET}\n")
    return root


def test_a_delivery_replayed_to_another_route_is_refused_and_check_warns_of_the_shared_secret(tmp_path, run_cli):
    port, = free_ports(1)
    root = two_route_project(tmp_path / "proj", port)
    checked = json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]
    [shared] = [f for f in checked if f["code"] == "WEBHOOK_SECRET_SHARED"]
    assert shared["severity"] == "warning" and "/orders" in shared["message"] and "/refunds" in shared["message"]
    assert SHARED not in json.dumps(checked)
    started = Receiver(root, "development", port)
    try:
        body = job(type="order.created")
        headers = std_headers(SHARED, body)
        assert started.post("/orders", body, headers).status_code == 202
        assert started.post("/refunds", body, headers).status_code == 409  # captured on /orders, replayed to /refunds
        time.sleep(1.0)  # the worker had time to run anything queued
        assert {r["route"] for r in runs(root, "development") if "start" in r} == {"/orders"}
    finally:
        assert started.stop() == 0


def test_route_secrets_are_strength_checked_like_source_secrets(make_project, run_cli):
    root = make_project({".env": "DEV_ORDERS_SECRET=short-one\nDEV_HOOK_SECRET=abcdabcdabcdabcdabcdabcdabcdabcd\n"},
                        settings='[automations]\njob = "hooks:job"\n'
                        '[webhooks.routes."/orders"]\nprovider = "standard"\nsecret = "ORDERS_SECRET"\nautomation = "job"\n'
                        '[webhooks.routes."/hcp"]\nprovider = "housecallpro"\nsecret = "HOOK_SECRET"\nautomation = "job"\n')
    findings = {f["code"]: f for f in json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]}
    assert "route /orders" in findings["WEBHOOK_SECRET_FORMAT"]["message"]  # not whsec_...
    assert "route /hcp" in findings["WEBHOOK_SECRET_WEAK"]["message"]
    assert "short-one" not in json.dumps(findings)


def _stall(port: int, count: int, trickle: bool, stop: threading.Event) -> list[socket.socket]:
    """``count`` connections that never finish a request; with ``trickle`` each sends a header byte now and then."""
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\n")
        held.append(s)

    def drip() -> None:
        while not stop.wait(0.3):
            for s in held:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass

    if trickle:
        threading.Thread(target=drip, daemon=True).start()
    return held


def _genuine(started, timeout: float = 8) -> None:
    body = job(type="order.created")
    assert requests.get(started.url + "/healthz", timeout=timeout).status_code == 200
    headers = {"Content-Type": "application/json", **std_headers(SHARED, body)}
    assert requests.post(started.url + "/orders", data=body, headers=headers, timeout=timeout).status_code == 202


def test_a_genuine_delivery_gets_through_beside_150_stalled_connections(tmp_path):
    port, = free_ports(1)
    root = two_route_project(tmp_path / "proj", port)
    started = Receiver(root, "development", port, "--workers", "0")
    stop = threading.Event()
    held = _stall(port, 75, False, stop) + _stall(port, 75, True, stop)
    try:
        began = time.monotonic()
        _genuine(started)
        assert time.monotonic() - began < 8
    finally:
        stop.set()
        for s in held:
            s.close()
        assert started.stop() == 0


def test_slow_senders_are_cut_off_so_a_full_server_frees_its_connections(tmp_path):
    port, = free_ports(1)
    root = two_route_project(tmp_path / "proj", port)
    started = Receiver(root, "development", port, "--workers", "0", "--connection-limit", "20", "--request-timeout", "1")
    stop = threading.Event()
    held = _stall(port, 60, True, stop)  # three times the limit, each still sending
    try:
        _genuine(started, timeout=30)  # accepted once cut-off connections make room (those ahead of it are cut in turn)
        time.sleep(3)
        probe = held[0]
        probe.settimeout(5)
        try:
            assert probe.recv(1) == b""  # closed by the server though it kept sending
        except ConnectionResetError:
            pass
    finally:
        stop.set()
        for s in held:
            s.close()
        assert started.stop() == 0


def test_readyz_gives_its_detail_only_to_callers_on_this_host(tmp_path):
    import io

    from envfence import open_session
    from envfence_builtins.webhook_service.provider_hooks import collect_providers
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue
    from envfence_builtins.webhook_service.webhook_receiver_app import Receiver as App
    from envfence_builtins.webhook_service.webhook_receiver_routes import route_secrets, routes

    root = two_route_project(tmp_path / "proj", free_ports(1)[0])
    session = open_session(root=root, environ={"ENVFENCE_HOSTNAME": "build-box-01"})
    session.prepare()
    declared = routes(session.settings)
    queue = WebhookQueue(session.paths)
    app = App(session, {r.path: r for r in declared}, collect_providers(session.plugins), route_secrets(session, declared), queue)
    try:
        def ask(remote: str) -> dict:
            environ = {"PATH_INFO": "/readyz", "REQUEST_METHOD": "GET", "REMOTE_ADDR": remote, "wsgi.input": io.BytesIO()}
            return json.loads(b"".join(app(environ, lambda status, headers: None)))

        detail = ask("127.0.0.1")
        assert detail["routes"] == ["/orders", "/refunds"] and "configuration_errors" in ask("::1")
        assert ask("203.0.113.9") == ask("2001:db8::1") == {"status": detail["status"]}
    finally:
        app.access.close()
        queue.close()


def test_finished_events_are_pruned_of_their_payload_and_their_ids_still_refuse_replays(tmp_path, run_cli):
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    root = two_route_project(tmp_path / "proj", free_ports(1)[0])
    session = open_session(root=root, environ={"ENVFENCE_HOSTNAME": "build-box-01"})
    session.prepare()
    queue = WebhookQueue(session.paths)
    for n, status in enumerate(("succeeded", "dead", "pending")):
        assert queue.accept(route="/orders", event_id=f"evt-{n}", provider="standard", event_type=None, automation="import-job",
                            body=b'{"card": "canary-payload-4242"}', headers={"x-n": str(n)}, max_attempts=2)
        queue._db.execute("UPDATE events SET status=?, finished_at=0 WHERE event_id=?", (status, f"evt-{n}"))
    queue.close()
    pruned = run_cli("--json", "queue", "prune", "--older-than", "1", cwd=root)
    assert json.loads(pruned.stdout)["pruned"] == 1, pruned.output
    shown = {e: json.loads(run_cli("--json", "queue", "show", e, cwd=root).stdout) for e in ("evt-0", "evt-1", "evt-2")}
    assert shown["evt-0"]["payload"] == "" and shown["evt-0"]["headers"] == {}  # finished: body gone, row kept
    assert "canary-payload-4242" in json.dumps(shown["evt-1"]) and "canary-payload-4242" in json.dumps(shown["evt-2"])
    queue = WebhookQueue(session.paths)
    assert not queue.accept(route="/refunds", event_id="evt-0", provider="standard", event_type=None, automation="refund-job",
                            body=b"{}", headers={}, max_attempts=2)
    queue.close()
    again = run_cli("--json", "queue", "prune", cwd=root)
    assert json.loads(again.stdout).get("pruned") == 0, again.output
