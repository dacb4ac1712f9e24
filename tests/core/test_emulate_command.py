"""``envfence emulate``: a fake service from the command line."""

from __future__ import annotations

import subprocess
import sys

import requests

from envfence.testing import DEMO_DEV_KEY, DEMO_DEV_TOKEN


def start(service, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "envfence", "emulate", service, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, line


def test_emulate_airtable_serves_the_demo_token_until_stopped():
    proc, line = start("airtable")
    try:
        assert "listening on http://127.0.0.1:" in line
        url = line.split("listening on ")[1].split()[0]
        response = requests.get(f"{url}/v0/meta/whoami", headers={"Authorization": f"Bearer {DEMO_DEV_TOKEN}"}, timeout=5)
        assert response.status_code == 200
        assert DEMO_DEV_TOKEN not in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulate_housecallpro_without_seed_knows_no_key():
    proc, line = start("housecallpro", "--no-seed")
    try:
        url = line.split("listening on ")[1].split()[0]
        assert requests.get(f"{url}/company", headers={"Authorization": f"Token {DEMO_DEV_KEY}"}, timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulate_rejects_an_unknown_service():
    from click.testing import CliRunner

    from envfence.cli import cli

    result = CliRunner().invoke(cli, ["emulate", "salesforce"])
    assert result.exit_code == 2
    assert "airtable" in result.output
