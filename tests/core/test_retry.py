"""Retry with backoff for automations' network calls, against the fake Airtable and a silent server."""

from __future__ import annotations

import socket

import pytest
import requests

from envfence.retry import AmbiguousWriteError, is_retryable, may_retry, retry_after, retry_call
from envfence_builtins.fakes.airtable_emulator import DEMO_DEV_BASE, DEMO_DEV_TOKEN, FakeAirtable


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
    assert waits[1] >= waits[0] * 0.5 and max(waits) <= 8.0  # the fake sends no Retry-After: backoff alone


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


def _silent_server():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    return silent, f"http://127.0.0.1:{silent.getsockname()[1]}/"


def test_a_timeout_is_not_retried_unless_the_call_is_idempotent():
    silent, url = _silent_server()
    tries = []
    try:
        with pytest.raises(AmbiguousWriteError, match="upsert on a key field") as info:
            retry_call(lambda: tries.append(1) or requests.post(url, timeout=0.2), attempts=3, sleep=lambda s: None)
        assert isinstance(info.value.__cause__, requests.Timeout)
        assert len(tries) == 1
        with pytest.raises(requests.Timeout):
            retry_call(lambda: tries.append(1) or requests.get(url, timeout=0.2), idempotent=True, attempts=2, sleep=lambda s: None)
    finally:
        silent.close()
    assert len(tries) == 3


def test_a_refused_connection_is_retried_because_nothing_was_sent():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    closed.close()  # nothing listens there: every connection is refused
    tries = []
    with pytest.raises(requests.ConnectionError):
        retry_call(lambda: tries.append(1) or requests.post(url, timeout=1), attempts=3, sleep=lambda s: None)
    assert len(tries) == 3


def _http_error(status, headers=None):
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return requests.HTTPError(f"{status}", response=response)


@pytest.mark.parametrize(
    ("status", "plain", "idempotent"),
    [(429, True, True), (503, True, True), (500, False, True), (502, False, True), (504, False, True),
     (400, False, False), (401, False, False), (409, False, False), (422, False, False)],
)
def test_which_http_statuses_are_retried(status, plain, idempotent):
    assert may_retry(_http_error(status)) is plain
    assert may_retry(_http_error(status), idempotent=True) is idempotent
    assert is_retryable(_http_error(status)) is (status == 429 or status >= 500)


def _waits_for(error, **options):
    waits = []
    calls = iter([error, None])

    def call():
        failure = next(calls)
        if failure is not None:
            raise failure
        return "done"

    assert retry_call(call, sleep=waits.append, **options) == "done"
    return waits


def test_retry_after_in_seconds_and_as_an_http_date_is_honoured_up_to_a_cap():
    from email.utils import format_datetime
    import datetime as dt

    assert _waits_for(_http_error(429, {"Retry-After": "30"})) == [30.0]  # Airtable's penalty, not cut to 8 s
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20)
    [wait] = _waits_for(_http_error(503, {"Retry-After": format_datetime(later, usegmt=True)}))
    assert 17 <= wait <= 20.5
    assert _waits_for(_http_error(429, {"Retry-After": "3600"})) == [60.0]
    assert _waits_for(_http_error(429, {"Retry-After": "3600"}), max_retry_after=5) == [5.0]
    assert retry_after(_http_error(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # past: no wait
    assert retry_after(_http_error(429, {"Retry-After": "soon"})) is None


def test_a_write_to_a_slow_airtable_is_never_duplicated():
    """The fake answers after 1 s; the client gives up after 0.4 s, but the server still acts."""
    import time

    from pyairtable import Api

    with FakeAirtable() as fake:
        before = len(fake.records(DEMO_DEV_BASE, "Jobs"))
        table = Api(DEMO_DEV_TOKEN, endpoint_url=fake.url, timeout=(2, 0.4), retry_strategy=None).table(DEMO_DEV_BASE, "Jobs")
        fake.delay = 1.0
        with pytest.raises(AmbiguousWriteError, match="batch_upsert"):
            retry_call(table.batch_create, [{"Name": "JOB-SLOW-1"}], attempts=3, base_delay=0.01)
        # An upsert on a key field is retried; the slow first try still lands, and the second matches it.
        result = retry_call(
            table.batch_upsert, [{"fields": {"Name": "JOB-SLOW-2"}}], key_fields=["Name"], idempotent=True,
            attempts=3, base_delay=0.01, on_retry=lambda *_: setattr(fake, "delay", 0.0),
        )
        assert [r["fields"]["Name"] for r in result["records"]] == ["JOB-SLOW-2"]
        time.sleep(1.2)  # let the late answers land
        names = [r["fields"].get("Name") for r in fake.records(DEMO_DEV_BASE, "Jobs")]
    assert len(names) == before + 2
    assert names.count("JOB-SLOW-1") == 1 and names.count("JOB-SLOW-2") == 1


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


def test_a_run_whose_write_timed_out_says_to_upsert_and_writes_once(make_project, run_cli):
    import time

    with FakeAirtable() as fake:
        root = make_project(
            {
                "jobs.py": f'''
from pyairtable import Api

def push(ctx):
    api = Api(ctx.credential("AIRTABLE_API_KEY").reveal(), endpoint_url="{fake.url}", timeout=(2, 0.3), retry_strategy=None)
    ctx.retry(api.table("{DEMO_DEV_BASE}", "Jobs").batch_create, [{{"Name": "JOB-ONCE"}}], base_delay=0.01)
''',
                ".env": f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\n",
            },
            settings='[automations]\npush = "jobs:push"\n',
        )
        fake.delay = 0.8
        result = run_cli("run", "push", cwd=root)
        time.sleep(1.0)
        names = [r["fields"].get("Name") for r in fake.records(DEMO_DEV_BASE, "Jobs")]
    assert result.exit_code != 0
    assert "upsert on a key field" in result.stderr and "idempotent=True" in result.stderr
    assert DEMO_DEV_TOKEN not in result.output
    assert names.count("JOB-ONCE") == 1


def test_many_attempts_end_with_the_last_error_not_an_overflow():
    calls = []

    def refused():
        calls.append(1)
        raise ConnectionRefusedError("refused")

    waits = []
    with pytest.raises(ConnectionRefusedError):
        retry_call(refused, attempts=1100, sleep=waits.append, max_delay=8.0)
    assert len(calls) == 1100 and max(waits) <= 8.0


@pytest.mark.parametrize("value", ["inf", "1e999", "-5", "nan", "soon", "Mon, 01 Jan 99999 00:00:00 GMT", "0x10", ""])
def test_a_nonsense_retry_after_never_asks_for_more_than_the_cap(value):
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = value
    error = requests.HTTPError(response=response)
    seconds = retry_after(error)
    assert seconds is None or 0 <= seconds
    waits = []

    def limited():
        raise error

    with pytest.raises(requests.HTTPError):
        retry_call(limited, attempts=3, sleep=waits.append, max_retry_after=30.0)
    assert len(waits) == 2 and all(0 <= w <= 30.0 for w in waits)
