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
    assert "no emulator called 'salesforce'" in result.output and "airtable, housecallpro" in result.output


def test_emulate_lists_what_plugins_register():
    from click.testing import CliRunner

    from envfence.cli import cli

    result = CliRunner().invoke(cli, ["emulate"])
    assert result.exit_code == 0, result.output
    assert "envfence_builtins.fakes.airtable_emulator.FakeAirtable" in result.output
    assert "envfence_builtins.fakes.housecallpro_emulator.FakeHousecallPro" in result.output
    listed = CliRunner().invoke(cli, ["emulate", "--json"])
    import json

    assert [e["name"] for e in json.loads(listed.output)["emulators"]] == ["airtable", "housecallpro"]


def test_hook_register_emulators_a_plugin_adds_its_fake_and_a_failing_one_is_named(envfence_plugin):
    """A third-party fake is listed and started by name; a plugin that raises is reported, the others still listed."""
    from click.testing import CliRunner

    from envfence import hookimpl
    from envfence.cli import cli
    from envfence.testing import FakeService, Response, emulator

    class FakeWeather(FakeService):
        label = "fake weather"

        def __init__(self, seed: bool = True, port: int = 0) -> None:
            super().__init__(port)

        def handle(self, request, token):
            return Response(200, {"sky": "clear"})

    class WeatherPlugin:
        @hookimpl
        def register_emulators(self):
            return {"weather": FakeWeather}

    class BrokenPlugin:
        @hookimpl
        def register_emulators(self):
            raise RuntimeError("no emulator today")

    envfence_plugin(WeatherPlugin(), "weather-plugin")
    envfence_plugin(BrokenPlugin(), "broken-plugin")
    result = CliRunner().invoke(cli, ["emulate"])
    assert result.exit_code == 0, result.output
    assert "weather" in result.output and "fake weather" in result.output and "airtable" in result.output
    assert "broken-plugin" in result.stderr and "no emulator today" in result.stderr
    with emulator("weather")() as fake:
        assert requests.get(f"{fake.url}/today", timeout=5).json() == {"sky": "clear"}


def test_a_fake_that_fails_answers_500_and_keeps_serving():
    from envfence.testing import FakeService, Response

    class Flaky(FakeService):
        def handle(self, request, token):
            if request.path == "/boom":
                raise KeyError("a bug in the fake")
            return Response(200, {"ok": True})

    with Flaky() as fake:
        response = requests.get(f"{fake.url}/boom", timeout=5)
        assert response.status_code == 500 and response.json()["error"]["message"] == "fake service failed: KeyError"
        assert requests.get(f"{fake.url}/fine", timeout=5).json() == {"ok": True}
