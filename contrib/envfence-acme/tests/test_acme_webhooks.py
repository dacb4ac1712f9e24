"""The ``acme`` webhook provider, through a started ``envfence serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests

from envfence_acme import sign_acme

SECRET = "acme-canary-3e8b1d7f5a2c9604e7b3d1f8a6c2e5b9"


def test_acme_signed_deliveries_are_accepted_and_others_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "proj"
    root.mkdir()
    (root / "envfence.toml").write_text(
        '[automations]\nnote = "hooks:note"\n\n[webhooks.routes."/acme"]\nprovider = "acme"\nsecret = "ACME_WEBHOOK_SECRET"\n'
        'automation = "note"\nevents = ["order.shipped"]\n'
    )
    (root / "hooks.py").write_text(
        "def note(ctx):\n    (ctx.paths.base / 'noted').write_text(ctx.event.id + ' ' + ctx.event.payload['kind'])\n"
    )
    (root / ".env.development").write_text(f"WEBHOOK_PORT={port}\nDEV_ACME_WEBHOOK_SECRET={SECRET}\n")
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_"))}
    log = root / "serve.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "envfence", "--env", "development", "serve"], cwd=root,
                                env={**variables, "ENVFENCE_HOSTNAME": "build-box-01"}, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while "receiving webhooks" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/acme"
        body = json.dumps({"kind": "order.shipped"}).encode()

        def post(signature: str, delivery: str = "d-1"):
            headers = {"Content-Type": "application/json", "Acme-Signature": signature, "Acme-Delivery": delivery}
            return requests.post(url, data=body, headers=headers, timeout=10).status_code

        now = int(time.time())
        assert post(sign_acme(SECRET, body, now)) == 202
        assert post(sign_acme(SECRET, body, now)) == 409  # the same delivery again
        assert post(sign_acme("not-the-secret", body, now), "d-2") == 401
        assert post(sign_acme(SECRET, body, now - 3600), "d-3") == 401
        noted = root / "var" / "development" / "noted"
        while not noted.exists():
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        assert noted.read_text() == "d-1 order.shipped"
        assert SECRET not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
