"""A provider's signature scheme is settings, and `envfence webhooks verify` proves it against one captured delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time

import pytest
import requests

CANARY = "hcpcanary-3b7e9d1f5a2c8e4b6d0f1a3c5e7b9d2f"
ACME = "acmecanary-8d2f4b6a1c3e5f7a9b0d2c4e6f8a1b3d"

SETTINGS = """
[automations]
import-job = "hooks:import_job"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
events = ["job.created"]
"""

ACME_ROUTE = """
[webhooks.routes."/acme"]
provider = "acme-pay"
secret = "ACME_WEBHOOK_SECRET"
automation = "import-job"

[webhooks.providers.acme-pay]
signature_header = "X-Acme-Signature"
signature_prefix = "v1="
timestamp_header = "X-Acme-Time"
signed = "{timestamp}:{header:x-acme-delivery}:{body}"
algorithm = "sha512"
encoding = "base64"
id_header = "X-Acme-Delivery"
event_type = "header:X-Acme-Event"
"""


@pytest.fixture
def project(make_project):
    return make_project({"hooks.py": "def import_job(ctx):\n    pass\n",
                         ".env.development": f"DEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY}\nDEV_ACME_WEBHOOK_SECRET={ACME}\n"},
                        settings=SETTINGS)


class Capture:
    """A one-request HTTP server on 127.0.0.1 that keeps the raw request as it arrived (as `nc -l` would)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.raw = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            while b"\r\n\r\n" not in self.raw:
                self.raw += conn.recv(65536)
            head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
            length = int(next(line.split(":")[1] for line in head.splitlines() if line.startswith("content-length")))
            while len(self.raw.split(b"\r\n\r\n", 1)[1]) < length:
                self.raw += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.sock.close()

    def save(self, path):
        self.thread.join(timeout=10)
        path.write_bytes(self.raw)
        return path


def verify(run_cli, root, capture, route, *args):
    return run_cli("webhooks", "verify", str(capture), "--route", route, *args, cwd=root)


def test_a_housecallpro_delivery_captured_from_the_fake_verifies_part_by_part(project, run_cli, tmp_path):
    from envfence.testing import FakeHousecallPro

    capture = Capture()
    with FakeHousecallPro() as fake:
        assert fake.deliver(capture.url + "/housecallpro", "job.created", {"id": "job_1"}, secret=CANARY) == 200
    saved = capture.save(tmp_path / "delivery.http")
    result = verify(run_cli, project, saved, "/housecallpro")
    assert result.exit_code == 0, result.output
    for part in ("method", "content type", "size", "signature", "timestamp", "body", "event id", "event type"):
        assert f"ok    {part}:" in result.stdout, (part, result.stdout)
    assert "runs import-job" in result.stdout and "would be accepted" in result.stdout
    assert CANARY not in result.output


def _signed_like_a_real_sender(secret: str, body: bytes, stamp: str) -> str:
    # What the sender really does, unlike the built-in assumption: no separator, base64.
    return base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()


def test_a_scheme_that_differs_from_the_assumption_is_named_and_fixed_by_settings_alone(project, run_cli, tmp_path):
    body = json.dumps({"event": "job.created", "job": {"id": "job_2"}}).encode()
    stamp = str(int(time.time()))
    capture = Capture()
    requests.post(capture.url + "/housecallpro", data=body, timeout=10, headers={
        "Content-Type": "application/json", "api-timestamp": stamp, "api-signature": _signed_like_a_real_sender(CANARY, body, stamp)})
    saved = capture.save(tmp_path / "real.http")
    before = verify(run_cli, project, saved, "/housecallpro")
    assert before.exit_code == 1, before.output
    assert "FAIL  signature:" in before.stdout and "401" in before.stdout
    lines = "\n".join(line.strip() for line in before.stdout.splitlines())
    assert '[webhooks.providers.housecallpro]\nsigned = "{timestamp}{body}"\nencoding = "base64"' in lines, before.stdout
    assert CANARY not in before.output and _signed_like_a_real_sender(CANARY, body, stamp) not in before.output
    (project / "envfence.toml").write_text(SETTINGS + '\n[webhooks.providers.housecallpro]\nsigned = "{timestamp}{body}"\n'
                                           'encoding = "base64"\n')
    after = verify(run_cli, project, saved, "/housecallpro")
    assert after.exit_code == 0 and "ok    signature:" in after.stdout, after.output


def acme_headers(secret: str, body: bytes, delivery: str = "dlv_1", event: str = "payment.settled", stamp: str | None = None):
    """How the (made-up) Acme Pay signs: sha512, base64, "v1=", over time, delivery id and body."""
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}:{delivery}:".encode() + body, hashlib.sha512).digest()
    return {"Content-Type": "application/json", "X-Acme-Time": stamp, "X-Acme-Delivery": delivery, "X-Acme-Event": event,
            "X-Acme-Signature": "v1=" + base64.b64encode(digest).decode()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root, port):
    """A started `envfence serve` for development; stopped by the caller."""
    import os
    import subprocess
    import sys

    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
    log = root / "serve.err"
    proc = subprocess.Popen([sys.executable, "-m", "envfence", "serve", "--workers", "0"], cwd=root,
                            env={**variables, "ENVFENCE_HOSTNAME": "build-box-01"}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    deadline = time.monotonic() + 30
    while "receiving webhooks" not in log.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)
    return proc


def test_a_provider_defined_in_settings_alone_is_verified_by_the_live_receiver_and_by_verify(project, run_cli, tmp_path):
    import signal

    port = free_port()
    (project / "envfence.toml").write_text(SETTINGS + ACME_ROUTE)
    (project / ".env.development").write_text((project / ".env.development").read_text() + f"WEBHOOK_PORT={port}\n")
    checked = run_cli("check", cwd=project)
    assert "WEBHOOK_ROUTE_INVALID" not in checked.output, checked.output
    body = json.dumps({"amount": 1200}).encode()
    proc = serve(project, port)
    try:
        url = f"http://127.0.0.1:{port}/acme"
        assert requests.post(url, data=body, headers=acme_headers(ACME, body), timeout=10).status_code == 202
        assert requests.post(url, data=body, headers=acme_headers(ACME, body), timeout=10).status_code == 409  # its id, again
        assert requests.post(url, data=body + b" ", headers=acme_headers(ACME, body, "dlv_2"), timeout=10).status_code == 401
        stale = acme_headers(ACME, body, "dlv_3", stamp=str(int(time.time()) - 3600))
        assert requests.post(url, data=body, headers=stale, timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    listed = json.loads(run_cli("queue", "list", "--json", cwd=project).stdout)["events"]
    assert [(e["id"], e["type"]) for e in listed] == [("dlv_1", "payment.settled")]
    capture = Capture()
    requests.post(capture.url + "/acme", data=body, headers=acme_headers(ACME, body, "dlv_9"), timeout=10)
    saved = capture.save(tmp_path / "acme.http")
    good = verify(run_cli, project, saved, "/acme")
    assert good.exit_code == 0 and "ok    signature:" in good.stdout and "ok    event id: dlv_9" in good.stdout, good.output
    saved.write_bytes(saved.read_bytes().replace(b"X-Acme-Delivery: dlv_9", b"X-Acme-Delivery: dlv_8"))
    tampered = verify(run_cli, project, saved, "/acme")
    assert tampered.exit_code == 1 and "FAIL  signature: the X-Acme-Signature does not match the signed string" in tampered.stdout
    assert ACME not in good.output + tampered.output


@pytest.mark.parametrize("table, says", [
    ('signature_header = "x-sig"\nsinged = "{body}"', "webhooks.providers.acme-pay.singed: unknown key"),
    ('signature_header = "x-sig"\nencoding = "base32"',
     "webhooks.providers.acme-pay.encoding: must be one of 'hex', 'base64', 'base64url', not 'base32'"),
    ('signature_header = "x-sig"\nsigned = "{timestamp}.{bdy}"\ntimestamp_header = "x-t"', "{bdy} is not a placeholder"),
    ('signature_header = "x-sig"\nsigned = "{timestamp}"\ntimestamp_header = "x-t"', "does not include {body}"),
    ('signature_header = "x-sig"\nsigned = "{timestamp}.{body}"', "a signed {timestamp} needs timestamp_header"),
    ('encoding = "hex"', "signature_header is required"),
    ('signature_header = 5', "webhooks.providers.acme-pay.signature_header: must be a non-empty string, not 5"),
])
def test_a_provider_table_that_cannot_be_used_is_an_error_naming_it(project, run_cli, table, says):
    (project / "envfence.toml").write_text(SETTINGS + ACME_ROUTE.split("[webhooks.providers.acme-pay]")[0]
                                           + f"[webhooks.providers.acme-pay]\n{table}\n")
    checked = run_cli("check", cwd=project)
    # A value the [webhooks.providers] declaration refuses is named as the declaration says it (SETTINGS_INVALID);
    # the rules of a scheme's shape are the receiver's (WEBHOOK_ROUTE_INVALID). Both name the table.
    assert checked.exit_code == 1 and {"WEBHOOK_ROUTE_INVALID", "SETTINGS_INVALID"} & set(checked.output.split())
    assert "webhooks.providers.acme-pay" in checked.output and says in checked.output, checked.output


def test_a_providers_own_code_cannot_be_redescribed_by_a_table(project, run_cli):
    (project / "envfence.toml").write_text(SETTINGS + '\n[webhooks.providers.github]\nsignature_header = "x-sig"\n')
    checked = run_cli("check", cwd=project)
    assert checked.exit_code == 1 and "verifies with code of its own" in checked.output


@pytest.mark.parametrize("raw, says", [
    (b"GET / HTTP/1.1", "no blank line ends the headers"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "line 1 is not an HTTP request line"),
    (b"POST /housecallpro HTTP/1.1\r\nno colon here\r\n\r\n{}", "line 2 is not a header"),
    (b"POST /housecallpro HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}", "the capture was cut short"),
])
def test_a_file_that_is_not_a_whole_request_is_refused_naming_the_line(project, run_cli, tmp_path, raw, says):
    capture = tmp_path / "bad.http"
    capture.write_bytes(raw)
    result = verify(run_cli, project, capture, "/housecallpro")
    assert result.exit_code == 1 and says in result.stderr and "Traceback" not in result.output, result.output


def test_an_unknown_route_is_a_usage_error_listing_the_routes(project, run_cli, tmp_path):
    capture = tmp_path / "x.http"
    capture.write_bytes(b"POST /x HTTP/1.1\r\n\r\n{}")
    result = verify(run_cli, project, capture, "/nope")
    assert result.exit_code == 2 and "known routes: /housecallpro" in result.output


def test_a_capture_with_a_trailing_newline_lf_lines_and_hostile_text_is_read_as_the_receiver_would(project, run_cli, tmp_path):
    from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

    body = json.dumps({"event": "job.created\u001b[2J\u0007", "job": {}}).encode()
    stamp = str(int(time.time()))
    head = (f"POST /housecallpro HTTP/1.1\nHost: x\nContent-Type: application/json; charset=utf-8\nContent-Length: {len(body)}\n"
            f"api-timestamp: {stamp}\napi-signature: {sign_housecallpro(CANARY, body, stamp)}\n\n").encode()
    capture = tmp_path / "lf.http"
    capture.write_bytes(head + body + b"\n")  # an editor or a capture tool added a newline after the body
    result = verify(run_cli, project, capture, "/housecallpro")
    assert result.exit_code == 0, result.output
    assert "1 byte(s) after the body were left out" in result.stdout
    assert "\x1b" not in result.stdout and "\\x1b[2J" in result.stdout  # the terminal is never driven by the capture
    assert "acknowledged, not run" in result.stdout  # its type is not one the route runs


def test_verify_json_names_the_failing_part(project, run_cli, tmp_path):
    body = b'{"event": "job.created"}'
    capture = tmp_path / "unsigned.http"
    capture.write_bytes(b"POST /housecallpro HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body)
    result = run_cli("webhooks", "verify", str(capture), "--route", "/housecallpro", "--json", cwd=project)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["accepted"] is False and data["verdict"] == "the receiver would refuse it: 401 at signature"
    assert next(c for c in data["checks"] if c["verdict"] == "FAIL")["detail"] == "the api-signature header is missing"


def test_a_header_the_receivers_server_drops_is_dropped_by_verify_too(project, run_cli, tmp_path):
    from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

    body = b'{"event": "job.created"}'
    stamp = str(int(time.time()))
    capture = tmp_path / "underscore.http"
    capture.write_bytes(f"POST /housecallpro HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        f"api-timestamp: {stamp}\r\napi_signature: {sign_housecallpro(CANARY, body, stamp)}\r\n\r\n".encode() + body)
    result = verify(run_cli, project, capture, "/housecallpro")
    assert result.exit_code == 1, result.output
    assert "header api_signature is dropped by the receiver's server" in result.stdout
    assert "FAIL  signature: the api-signature header is missing" in result.stdout and "diagnosis" not in result.stdout
