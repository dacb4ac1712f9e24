"""Retry with backoff for automations' network calls, against the fake Airtable and a silent server."""

from __future__ import annotations

import socket

import pytest
import requests

from envfence.retry import is_retryable, retry_call
from envfence_builtins.airtable_emulator import DEMO_DEV_BASE, DEMO_DEV_TOKEN, FakeAirtable


def airtable_table(fake):
    from pyairtable import Api

    # pyairtable's own retries are off so that ours are the ones tested
    return Api(DEMO_DEV_TOKEN, endpoint_url=fake.url, retry_strategy=None).table(DEMO_DEV_BASE, "Jobs")


def test_rate_limited_calls_succeed_after_backing_off():
    retries = []
    with FakeAirtable(rate_limit=2, penalty=0.3) as fake:  # Airtable's 30 s penalty, shortened
        table = airtable_table(fake)
        for _ in range(5):
            records = retry_call(table.all, attempts=6, base_delay=0.2, on_retry=lambda n, e, w: retries.append(e))
            assert len(records) == 2
    assert retries, "the fake answered 429 past 2 requests a second: some calls had to wait"
    assert all(getattr(e.response, "status_code", None) == 429 for e in retries)


def test_retries_are_bounded():
    waits = []
    with FakeAirtable(rate_limit=0) as fake:  # every request is rate limited
        table = airtable_table(fake)
        with pytest.raises(requests.HTTPError) as info:
            retry_call(table.all, attempts=3, sleep=waits.append)
    assert info.value.response.status_code == 429
    assert len(waits) == 2  # three tries, two waits
    assert waits[1] >= waits[0] * 0.5 and max(waits) <= 8.0


def test_an_unauthorised_call_is_not_retried():
    attempts = []
    with FakeAirtable() as fake:
        from pyairtable import Api

        table = Api("patWrongToken0000.".ljust(82, "0"), endpoint_url=fake.url, retry_strategy=None).table(DEMO_DEV_BASE, "Jobs")

        def call():
            attempts.append(1)
            return table.all()

        with pytest.raises(requests.HTTPError) as info:
            retry_call(call, attempts=4, sleep=lambda s: None)
    assert info.value.response.status_code == 401
    assert len(attempts) == 1


def test_a_timeout_is_retried_then_raised():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    tries = []
    try:
        with pytest.raises(requests.Timeout):
            retry_call(lambda: tries.append(1) or requests.get(url, timeout=0.2), attempts=2, sleep=lambda s: None)
    finally:
        silent.close()
    assert len(tries) == 2


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (401, False), (422, False)])
def test_which_http_statuses_are_retried(status, retryable):
    response = requests.Response()
    response.status_code = status
    assert is_retryable(requests.HTTPError(response=response)) is retryable


def test_run_context_retry_logs_each_retry(make_project, run_cli):
    with FakeAirtable(rate_limit=1, penalty=0.3) as fake:  # Airtable's 30 s penalty, shortened
        root = make_project(
            {
                "jobs.py": f'''
from pyairtable import Api

def fetch(ctx):
    table = Api(ctx.credential("AIRTABLE_API_KEY").reveal(), endpoint_url="{fake.url}", retry_strategy=None).table("{DEMO_DEV_BASE}", "Jobs")
    for _ in range(3):
        ctx.retry(table.all, attempts=5, base_delay=0.3)
    ctx.say("fetched three times")
''',
                ".env": f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\n",
            },
            settings='[automations]\nfetch = "jobs:fetch"\n',
        )
        result = run_cli("run", "fetch", cwd=root)
    assert result.exit_code == 0, result.output
    log = (root / "var" / "development" / "logs" / "automation_development.log").read_text()
    assert "retrying in" in log and "429" in log
    assert DEMO_DEV_TOKEN not in log
