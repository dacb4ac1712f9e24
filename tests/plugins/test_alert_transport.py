"""Alert delivery trusts only what it should: SMTP over verified TLS, no password in plain text, no webhook redirect.

The SMTP servers are aiosmtpd, started by each test on 127.0.0.1 with a
certificate made for it: a self-signed one (what an attacker in the middle
presents) or one from a test CA given to envfence as ``ca_file``.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_alerts import JOBS, free_port

aiosmtpd = pytest.importorskip("aiosmtpd", reason="pip install aiosmtpd (the [test] extra) to run the SMTP tests")
trustme = pytest.importorskip("trustme", reason="pip install trustme (the [test] extra) to make the test certificates")

PASSWORD = "canary-smtp-Vq73Kd"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def self_signed_context() -> ssl.SSLContext:
    """A server context with a self-signed ``CN=attacker.invalid`` certificate naming 127.0.0.1."""
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.invalid")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        pem = f"{tmp}/server.pem"
        with open(pem, "wb") as out:
            out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        context.load_cert_chain(pem)
    return context


class SecureMailbox:
    """aiosmtpd with AUTH that records every password it is given and every message it receives."""

    def __init__(self, port: int, context: ssl.SSLContext | None, *, implicit: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []
        self.passwords: list = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            box.passwords.append(auth_data.password.decode())
            return AuthResult(success=True)

        tls = {"ssl_context": context} if implicit else {"tls_context": context, "require_starttls": context is not None}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                                     auth_require_tls=False, server_hostname="127.0.0.1", **tls)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def ca():
    return trustme.CA()


def email_settings(port: int, extra: str) -> str:
    return f"""
[automations.sync]
run = "jobs:ok"

[thresholds.sync]
max_memory = "1KB"

[alerts.escalation]
development = ["email"]

[alerts.email]
host = "127.0.0.1"
port = {port}
username = "envfence"
to = ["ops@example.org"]
timeout = 5
{extra}
"""


def _project(make_project, port, extra, files=None):
    return make_project({"jobs.py": JOBS, ".env": f"DEV_SMTP_PASSWORD={PASSWORD}\n", **(files or {})},
                        settings=email_settings(port, extra))


def _pending(run_cli, root) -> list:
    return json.loads(run_cli("alerts", "show", "--json", cwd=root).stdout)["pending"]


def test_starttls_to_a_self_signed_certificate_is_refused_and_the_password_never_sent(make_project, run_cli):
    port = free_port()
    box = SecureMailbox(port, self_signed_context())
    try:
        root = _project(make_project, port, 'tls = "starttls"')
        ran = run_cli("run", "sync", cwd=root)
        assert ran.exit_code == 0, ran.output  # the run stands; the alert waits
        assert "presented a certificate that cannot be trusted" in ran.stderr and "ca_file" in ran.stderr
        assert box.passwords == [] and box.messages == []
        [pending] = _pending(run_cli, root)
        assert pending["channels"] == ["email"] and PASSWORD not in ran.output
    finally:
        box.stop()


def test_the_old_starttls_switch_verifies_the_certificate_too(make_project, run_cli):
    port = free_port()
    box = SecureMailbox(port, self_signed_context())
    try:
        root = _project(make_project, port, "starttls = true")
        assert run_cli("run", "sync", cwd=root).exit_code == 0
        assert box.passwords == [] and box.messages == []
    finally:
        box.stop()


def test_starttls_with_a_certificate_of_the_ca_given_as_ca_file_delivers(make_project, run_cli, ca):
    port = free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    box = SecureMailbox(port, context)
    try:
        root = _project(make_project, port, 'tls = "starttls"\nca_file = "certs/ops-ca.pem"',
                        {"certs/ops-ca.pem": ca.cert_pem.bytes().decode()})
        ran = run_cli("run", "sync", cwd=root)
        assert ran.exit_code == 0, ran.output
        assert box.passwords == [PASSWORD]
        [mail] = box.messages
        assert mail["Subject"] == "[envfence] WARNING development: sync max_memory"
        assert _pending(run_cli, root) == []
    finally:
        box.stop()


@pytest.mark.parametrize("named", ["127.0.0.1", "mail.example.org"])
def test_implicit_tls_delivers_only_to_the_host_its_certificate_names(make_project, run_cli, ca, named):
    port = free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(named).configure_cert(context)  # a trusted CA; for another host in the second case
    box = SecureMailbox(port, context, implicit=True)
    try:
        root = _project(make_project, port, 'tls = "tls"\nca_file = "ca.pem"', {"ca.pem": ca.cert_pem.bytes().decode()})
        ran = run_cli("run", "sync", cwd=root)
        if named == "127.0.0.1":
            assert box.passwords == [PASSWORD] and len(box.messages) == 1, ran.output
        else:
            assert "cannot be trusted" in ran.stderr and "127.0.0.1" in ran.stderr, ran.output
            assert box.passwords == [] and box.messages == []
    finally:
        box.stop()


def test_a_server_offering_no_starttls_gets_no_password_and_no_mail(make_project, run_cli):
    port = free_port()
    box = SecureMailbox(port, None)  # plain SMTP only, as a downgrading attacker would answer
    try:
        root = _project(make_project, port, "")  # tls defaults to starttls
        ran = run_cli("run", "sync", cwd=root)
        assert "cannot deliver through" in ran.stderr and "STARTTLS" in ran.stderr, ran.output
        assert box.passwords == [] and box.messages == []
    finally:
        box.stop()


def test_auth_over_plain_text_is_refused_unless_allowed(make_project, run_cli):
    port = free_port()
    box = SecureMailbox(port, None)
    try:
        root = _project(make_project, port, 'tls = "none"')
        ran = run_cli("run", "sync", cwd=root)
        assert 'tls = "none" with a username would send the password in plain text' in ran.stderr, ran.output
        assert box.passwords == [] and box.messages == []
        (root / "envfence.toml").write_text(email_settings(port, 'tls = "none"\nallow_plaintext_auth = true'))
        assert run_cli("alerts", "retry", cwd=root).exit_code == 0
        assert box.passwords == [PASSWORD] and len(box.messages) == 1
    finally:
        box.stop()


@pytest.mark.parametrize("bad, said", [('tls = "ssl"', "tls is 'ssl'"), ('tls = "tls"\nca_file = "nowhere.pem"', "nowhere.pem")])
def test_bad_tls_settings_are_named(make_project, run_cli, bad, said):
    root = _project(make_project, free_port(), bad)
    ran = run_cli("run", "sync", cwd=root)
    assert ran.exit_code == 0 and said in ran.stderr and "Traceback" not in ran.output, ran.output


class Redirector:
    """An HTTP server answering every request with a redirect to a second server that records what reaches it."""

    def __init__(self, status: int) -> None:
        self.reached: list = []
        me = self

        class Target(BaseHTTPRequestHandler):
            def do_GET(self):
                me.reached.append(("GET", dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args):
                pass

        class Moved(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(status)
                self.send_header("Location", me.target_url)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Moved, Target)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.servers[0].server_port}/hooks"
        self.target_url = f"http://127.0.0.1:{self.servers[1].server_port}/elsewhere"

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_webhook_redirect_is_not_followed_and_the_alert_is_kept(make_project, run_cli, status):
    moved = Redirector(status)
    try:
        root = make_project({"jobs.py": JOBS, ".env": f"DEV_ALERT_WEBHOOK_SECRET={WHSEC}\n"},
                            settings=email_settings(0, "").replace('["email"]', '["webhook"]')
                            + f'\n[alerts.webhook]\nurl = "{moved.url}"\ntimeout = 5\n')
        ran = run_cli("run", "sync", cwd=root)
        assert ran.exit_code == 0, ran.output
        assert moved.reached == []
        assert f"answered HTTP {status}" in ran.stderr and "never followed" in ran.stderr and "kept and retried" in ran.stderr
        [pending] = _pending(run_cli, root)
        assert pending["channels"] == ["webhook"] and f"HTTP {status}" in pending["last_error"]
        assert run_cli("alerts", "retry", cwd=root).exit_code == 1 and moved.reached == []
        assert _pending(run_cli, root)[0]["attempts"] == 2
    finally:
        moved.stop()


@pytest.mark.parametrize("userinfo", ["", "hookuser:canary-userinfo-77@"])
def test_a_webhook_url_carrying_a_token_never_shows_it_in_errors_or_the_kept_alert(make_project, run_cli, userinfo):
    moved = Redirector(302)
    try:
        port = moved.servers[0].server_port
        url = f"http://{userinfo}127.0.0.1:{port}/services/T000/canary-path-token-88?key=canary-query-99"
        moved.target_url = "http://127.0.0.1:9/elsewhere?token=canary-location-66"
        root = make_project({"jobs.py": JOBS, ".env": f"DEV_ALERT_WEBHOOK_SECRET={WHSEC}\n"},
                            settings=email_settings(0, "").replace('["email"]', '["webhook"]')
                            + f'\n[alerts.webhook]\nurl = "{url}"\ntimeout = 5\n')
        ran = run_cli("run", "sync", cwd=root)
        shown = run_cli("--json", "alerts", "show", cwd=root).stdout
        assert ran.exit_code == 0 and f"http://127.0.0.1:{port}/…" in ran.stderr, ran.output
        assert ("answered HTTP 302" in ran.stderr) == (not userinfo)  # urllib cannot use a user part: not reached
        for canary in ("canary-userinfo-77", "canary-path-token-88", "canary-query-99", "canary-location-66"):
            assert canary not in ran.output and canary not in shown
    finally:
        moved.stop()
