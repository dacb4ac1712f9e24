"""``envfence serve``: real signed HTTP requests against started receivers, one per environment.

Two receivers (development and production) run side by side for the module,
each on its own port with its own queue and secrets; the crash and drain
tests start their own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from envfence_builtins.webhook_service.webhook_signatures import sign_github, sign_housecallpro, sign_standard

DEV_HCP = "devcanary-7f3a9c2e41b85d60a1f4e9c3b7d2086e"
PROD_HCP = "prodcanary-5c1e8a7d3b9f2064e8a1c7d5b3f9e261"
DEV_STD = "whsec_ZGV2ZGV2ZGV2ZGV2ZGV2ZGV2ZGV2ZGV2ZGV2ZGV2"  # base64 of 30 bytes
PROD_STD = "whsec_cHJvZHByb2Rwcm9kcHJvZHByb2Rwcm9kcHJvZHBy"
DEV_GH = 'devgh"canary\\back-0b6d4f2a8c1e7395d2a6f0b4c8e1d3a5'  # a quote and a backslash in a secret
PROD_GH = "prodghcanary-9e2c6a4f1d8b3057c9e1a5d3f7b2c4e6"
SECRETS = {"development": (DEV_HCP, DEV_STD, DEV_GH), "production": (PROD_HCP, PROD_STD, PROD_GH)}

SETTINGS = """
[automations]
import-job = "hooks:import_job"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
events = ["job.created", "job.completed"]
max_body = 4096
max_attempts = {attempts}

[webhooks.routes."/orders"]
provider = "standard"
secret = "ORDERS_WEBHOOK_SECRET"
automation = "import-job"

[webhooks.routes."/github"]
provider = "github"
secret = "GITHUB_WEBHOOK_SECRET"
automation = "import-job"

[hostname]
allow_stand_in = true
"""

# The automation records each try and each finished run in its environment's tree.
HOOKS = '''
import json, os, time

def _line(ctx, record):
    fd = os.open(ctx.paths.base / "runs.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (json.dumps(record) + "\\n").encode())
    os.close(fd)

def import_job(ctx):
    event = ctx.event
    _line(ctx, {"start": event.id, "attempt": event.attempt, "env": ctx.environment, "type": event.type,
                "route": event.route, "payload": event.payload, "run_id": ctx.run_id, "headers": sorted(event.headers)})
    if event.payload.get("sleep"):
        (ctx.paths.base / ("started-" + event.id)).write_text("")
        time.sleep(event.payload["sleep"])
    if event.payload.get("fail"):
        raise RuntimeError("asked to fail")
    _line(ctx, {"done": event.id, "env": ctx.environment})
'''


def free_ports(count: int) -> list[int]:
    """Distinct free ports (each socket held until all are chosen, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def make_receiver_project(root: Path, ports: dict[str, int], attempts: int = 3) -> Path:
    """A project with three routes; an environment without a port in ``ports`` gets another one (never the same)."""
    spare = iter(p for p in free_ports(3) if p not in ports.values())
    root.mkdir(parents=True, exist_ok=True)
    (root / "envfence.toml").write_text(SETTINGS.format(attempts=attempts))
    (root / "hooks.py").write_text(HOOKS)
    for env, prefix in (("development", "DEV_"), ("production", "PROD_")):
        hcp, std, gh = SECRETS[env]
        (root / f".env.{env}").write_text(
            f"WEBHOOK_PORT={ports.get(env) or next(spare)}\n{prefix}HOUSECALLPRO_WEBHOOK_SECRET={hcp}\n"
            f"{prefix}ORDERS_WEBHOOK_SECRET={std}\n{prefix}GITHUB_WEBHOOK_SECRET='{gh}'\n"
        )
    return root


class Receiver:
    """A started ``envfence serve`` process."""

    def __init__(self, root: Path, env: str, port: int, *extra: str, hostname: str | None = None) -> None:
        # A production server runs on a production host; the project lets the stand-in name it (allow_stand_in).
        hostname = hostname or ("web-prod-01" if env == "production" else "build-box-01")
        self.root, self.env, self.port = root, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = root / f"serve-{env}-{uuid.uuid4().hex[:6]}.err"
        variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "envfence", "--env", env, "serve", "--retry-base", "0.1", *extra],
                cwd=root, env={**variables, "ENVFENCE_HOSTNAME": hostname}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err,
            )
        deadline = time.monotonic() + 30
        while "envfence: receiving webhooks" not in self.stderr():
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}: {self.stderr()}"
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def post(self, path: str, body: bytes, headers: dict[str, str], content_type: str = "application/json"):
        return requests.post(self.url + path, data=body, headers={"Content-Type": content_type, **headers}, timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def hcp_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"api-timestamp": stamp, "api-signature": sign_housecallpro(secret, body, stamp)}


def std_headers(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()))
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": sign_standard(secret, msg_id, stamp, body)}


def gh_headers(secret: str, body: bytes, event: str = "push") -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_github(secret, body), "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())}


def job(**extra) -> bytes:
    return json.dumps({"event": "job.created", "job": {"id": uuid.uuid4().hex}, **extra}).encode()


def runs(root: Path, env: str) -> list[dict]:
    path = root / "var" / env / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cli(root: Path, *args: str, env: str = "development") -> subprocess.CompletedProcess:
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_"))}
    return subprocess.run([sys.executable, "-m", "envfence", "--env", env, *args], cwd=root, capture_output=True,
                          text=True, env={**variables, "ENVFENCE_HOSTNAME": "build-box-01"}, timeout=60)


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    """Development and production receivers of one project, side by side."""
    ports = dict(zip(("development", "production"), free_ports(2)))
    root = make_receiver_project(tmp_path_factory.mktemp("hooks") / "proj", ports)
    started = {}
    try:
        for env, port in ports.items():
            started[env] = Receiver(root, env, port)
        yield started
    finally:
        for receiver in started.values():
            receiver.stop()


# --- verification --------------------------------------------------------------------


def test_a_valid_delivery_is_accepted_and_runs_the_automation_with_the_event(receivers):
    dev = receivers["development"]
    body = job(customer="Ada")
    response = dev.post("/housecallpro", body, hcp_headers(DEV_HCP, body))
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    started = wait_until(lambda: [r for r in runs(dev.root, "development") if r.get("start") == event_id], what="the run")
    assert started[0]["payload"]["customer"] == "Ada" and started[0]["type"] == "job.created"
    assert "api-signature" in started[0]["headers"] and started[0]["attempt"] == 1
    wait_until(lambda: any(r.get("done") == event_id for r in runs(dev.root, "development")), what="the run's end")
    listed = json.loads(cli(dev.root, "queue", "list", "--json").stdout)
    record = next(e for e in listed["events"] if e["id"] == event_id)
    assert record["status"] == "succeeded" and record["run_id"] == started[0]["run_id"]
    # The run went through the runner: it is in the environment's history and audit trail.
    history = cli(dev.root, "--json", "status").stdout
    assert started[0]["run_id"] in history


def test_standard_webhooks_and_github_deliveries_are_accepted(receivers):
    dev = receivers["development"]
    body = json.dumps({"type": "order.paid"}).encode()
    assert dev.post("/orders", body, std_headers(DEV_STD, body)).status_code == 202
    assert dev.post("/github", body, gh_headers(DEV_GH, body)).status_code == 202


def test_a_replayed_delivery_is_refused_with_409(receivers):
    dev = receivers["development"]
    body = job()
    headers = hcp_headers(DEV_HCP, body)
    assert dev.post("/housecallpro", body, headers).status_code == 202
    replay = dev.post("/housecallpro", body, headers)
    assert replay.status_code == 409 and replay.json() == {"error": "conflict"}
    std_body = b'{"type": "order.paid"}'
    std = std_headers(DEV_STD, std_body, "msg_replayed")
    assert dev.post("/orders", std_body, std).status_code == 202
    assert dev.post("/orders", std_body, std).status_code == 409


def test_a_stale_delivery_is_refused_with_401(receivers):
    body = job()
    stale = hcp_headers(DEV_HCP, body, timestamp=int(time.time()) - 3600)
    assert receivers["development"].post("/housecallpro", body, stale).status_code == 401


def test_a_tampered_body_is_refused_with_401(receivers):
    body = job(amount=10)
    headers = hcp_headers(DEV_HCP, body)
    response = receivers["development"].post("/housecallpro", body.replace(b"10", b"99"), headers)
    assert response.status_code == 401 and response.json() == {"error": "unauthorized"}


def test_an_oversized_body_is_refused_with_413(receivers):
    body = job(padding="x" * 5000)
    assert receivers["development"].post("/housecallpro", body, hcp_headers(DEV_HCP, body)).status_code == 413


def test_a_body_that_is_not_json_is_refused_by_content_type_415_or_content_400(receivers):
    dev = receivers["development"]
    body = job()
    assert dev.post("/housecallpro", body, hcp_headers(DEV_HCP, body), content_type="text/plain").status_code == 415
    garbage = b"not json at all"
    assert dev.post("/housecallpro", garbage, hcp_headers(DEV_HCP, garbage)).status_code == 400


def test_a_delivery_signed_for_another_provider_is_refused_with_401(receivers):
    body = job()
    assert receivers["development"].post("/housecallpro", body, gh_headers(DEV_GH, body)).status_code == 401


def test_an_unknown_route_is_404(receivers):
    body = job()
    assert receivers["development"].post("/stripe", body, hcp_headers(DEV_HCP, body)).status_code == 404


def test_production_signature_on_development_port_is_refused(receivers):
    dev, prod = receivers["development"], receivers["production"]
    body = job()
    assert dev.post("/housecallpro", body, hcp_headers(PROD_HCP, body)).status_code == 401
    assert prod.post("/housecallpro", body, hcp_headers(PROD_HCP, body)).status_code == 202


def test_an_event_type_the_route_does_not_want_is_acknowledged_and_not_run(receivers):
    dev = receivers["development"]
    body = json.dumps({"event": "invoice.sent"}).encode()
    response = dev.post("/housecallpro", body, hcp_headers(DEV_HCP, body))
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    time.sleep(0.3)
    assert not any(r.get("start") == response.json()["event_id"] for r in runs(dev.root, "development"))


def test_refusals_are_logged_and_audited_with_their_reason_never_the_secret(receivers):
    dev = receivers["development"]
    body, big = job(), job(padding="y" * 5000)
    assert dev.post("/housecallpro", body, hcp_headers(DEV_HCP, body, timestamp=1000)).status_code == 401
    assert dev.post("/housecallpro", big, hcp_headers(DEV_HCP, big)).status_code == 413
    assert dev.post("/nowhere", body, hcp_headers(DEV_HCP, body)).status_code == 404
    trail = json.loads(cli(dev.root, "--json", "audit", "show", "--event", "webhook.refused").stdout)
    reasons = [(r["data"]["status"], r["data"]["reason"]) for r in trail]
    assert any(s == 401 and "timestamp" in why for s, why in reasons)
    assert (413, f"body of {len(big)} bytes (limit 4096)") in reasons
    assert any(s == 404 and r["data"]["route"] == "/nowhere" for (s, _), r in zip(reasons, trail))
    written = "".join(p.read_text(errors="replace") for p in (dev.root / "var").rglob("*") if p.is_file() and p.suffix in (".log", ".jsonl"))
    written += dev.stderr() + json.dumps(trail)
    for secret in (DEV_HCP, PROD_HCP, DEV_GH, PROD_GH, DEV_STD, PROD_STD):
        assert secret not in written
    assert "webhook refused on /housecallpro: 401 signature" in dev.stderr()


def test_production_access_log_is_json_and_redacted(receivers):
    prod = receivers["production"]
    body = job()
    assert prod.post("/housecallpro", body, hcp_headers(PROD_HCP, body)).status_code == 202
    log = prod.root / "var" / "production" / "logs" / "automation_production.log"
    lines = wait_until(lambda: [json.loads(x) for x in log.read_text().splitlines() if '"POST /housecallpro\\" 202' in x]
                       if log.exists() else None, what="the access log line")
    assert lines[0]["record"]["extra"]["environment"] == "production"
    assert PROD_HCP not in log.read_text()


def test_each_environment_sees_only_its_own_events(receivers):
    dev, prod = receivers["development"], receivers["production"]
    dev_body, prod_body = job(side="dev"), job(side="prod")
    dev_id = dev.post("/housecallpro", dev_body, hcp_headers(DEV_HCP, dev_body)).json()["event_id"]
    prod_id = prod.post("/housecallpro", prod_body, hcp_headers(PROD_HCP, prod_body)).json()["event_id"]
    wait_until(lambda: any(r.get("done") == prod_id for r in runs(prod.root, "production")), what="production's run")
    wait_until(lambda: any(r.get("done") == dev_id for r in runs(dev.root, "development")), what="development's run")
    dev_queue = {e["id"] for e in json.loads(cli(dev.root, "queue", "list", "--json").stdout)["events"]}
    prod_queue = {e["id"] for e in json.loads(cli(prod.root, "queue", "list", "--json", env="production").stdout)["events"]}
    assert dev_id in dev_queue and prod_id not in dev_queue
    assert prod_id in prod_queue and dev_id not in prod_queue
    assert {r["env"] for r in runs(dev.root, "development")} == {"development"}
    assert {r["env"] for r in runs(prod.root, "production")} == {"production"}


def test_health_and_readiness(receivers):
    dev = receivers["development"]
    assert requests.get(dev.url + "/healthz", timeout=5).json() == {"status": "alive"}
    ready = requests.get(dev.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["queue_writable"] is True
    assert ready.json()["configuration_errors"] == [] and ready.json()["configuration_changed"] == []


# --- durability --------------------------------------------------------------------------


@pytest.mark.heavy
def test_kill_9_during_accept_loses_no_accepted_event_and_runs_none_twice(tmp_path):
    (port,) = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    receiver = Receiver(root, "development", port, "--workers", "0", "--backlog-limit", "12")
    accepted: list[str] = []
    stop = threading.Event()

    def send() -> None:
        session = requests.Session()
        while not stop.is_set():
            body = job()
            try:
                response = session.post(receiver.url + "/housecallpro", data=body, timeout=5,
                                        headers={"Content-Type": "application/json", **hcp_headers(DEV_HCP, body)})
            except requests.RequestException:
                return
            if response.status_code == 202:
                accepted.append(response.json()["event_id"])

    senders = [threading.Thread(target=send) for _ in range(4)]
    for thread in senders:
        thread.start()
    wait_until(lambda: len(accepted) >= 12, what="some accepted events")
    # Nothing runs them (no workers): the backlog makes the receiver not ready.
    ready = requests.get(receiver.url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["backlog"] >= 12
    receiver.kill()
    stop.set()
    for thread in senders:
        thread.join()
    # A new receiver on the same queue runs every accepted event exactly once.
    again = Receiver(root, "development", port)
    try:
        wait_until(lambda: {r["done"] for r in runs(root, "development") if "done" in r} >= set(accepted), 60, "every accepted event's run")
        time.sleep(0.5)
        done = [r["done"] for r in runs(root, "development") if "done" in r]
        assert len(done) == len(set(done))
        # Replay protection survived the crash.
        listed = json.loads(cli(root, "queue", "list", "--json", "--limit", "10000").stdout)
        assert set(accepted) <= {e["id"] for e in listed["events"]}
    finally:
        assert again.stop() == 0


def test_kill_9_during_dispatch_reruns_the_interrupted_event_once_and_nothing_else(tmp_path):
    (port,) = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    receiver = Receiver(root, "development", port)
    first, slow = job(), job(sleep=30)
    first_id = receiver.post("/housecallpro", first, hcp_headers(DEV_HCP, first)).json()["event_id"]
    wait_until(lambda: any(r.get("done") == first_id for r in runs(root, "development")), what="the first run")
    slow_id = receiver.post("/housecallpro", slow, hcp_headers(DEV_HCP, slow)).json()["event_id"]
    wait_until(lambda: (root / "var" / "development" / f"started-{slow_id}").exists(), what="the slow run to start")
    receiver.kill()
    # The interrupted event is retried as a second attempt (the automation can tell), the finished one never again.
    (root / "hooks.py").write_text(HOOKS.replace('if event.payload.get("sleep"):', "if False:"))
    again = Receiver(root, "development", port)
    try:
        wait_until(lambda: any(r.get("done") == slow_id for r in runs(root, "development")), what="the interrupted event's rerun")
        starts = [r for r in runs(root, "development") if "start" in r]
        assert [r["attempt"] for r in starts if r["start"] == slow_id] == [1, 2]
        assert [r["start"] for r in starts].count(first_id) == 1
        shown = json.loads(cli(root, "queue", "show", slow_id, "--json").stdout)
        assert shown["status"] == "succeeded" and shown["attempts"] == 2
    finally:
        assert again.stop() == 0


def test_sigterm_finishes_the_request_and_the_run_in_flight_then_exits_0(tmp_path):
    (port,) = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    receiver = Receiver(root, "development", port)
    slow = job(sleep=1)
    slow_id = receiver.post("/housecallpro", slow, hcp_headers(DEV_HCP, slow)).json()["event_id"]
    wait_until(lambda: (root / "var" / "development" / f"started-{slow_id}").exists(), what="the slow run to start")
    # A request half sent when SIGTERM arrives still gets its answer.
    body = job()
    head = "".join(f"{k}: {v}\r\n" for k, v in hcp_headers(DEV_HCP, body).items())
    raw = (f"POST /housecallpro HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
           f"{head}Connection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw[:-10])
        time.sleep(0.2)
        receiver.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.sendall(raw[-10:])
        answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 202")
    with pytest.raises(requests.ConnectionError):
        requests.get(receiver.url + "/healthz", timeout=2)
    assert receiver.proc.wait(timeout=30) == 0
    assert any(r.get("done") == slow_id for r in runs(root, "development"))
    shown = json.loads(cli(root, "queue", "show", slow_id, "--json").stdout)
    assert shown["status"] == "succeeded"
    assert "receiver for development stopped" in receiver.stderr()
