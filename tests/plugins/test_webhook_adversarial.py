"""The webhook receiver and its queue under attack: hostile bodies, ambiguous ids, a swapped queue file, secrets in `queue show`."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import requests

from test_webhook_queue_cli import CANARY, enqueue
from test_webhook_queue_cli import project  # noqa: F401  (a fixture)
from test_webhook_receiver import DEV_HCP, Receiver, cli, free_ports, hcp_headers, job, make_receiver_project, runs, wait_until

pytest.importorskip("waitress")


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    port, = free_ports(1)
    root = make_receiver_project(tmp_path_factory.mktemp("adv") / "proj", {"development": port})
    started = Receiver(root, "development", port)
    yield started
    started.stop()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_signed_body_nested_too_deep_to_parse_is_refused_with_400_not_an_outage(receiver):
    body = b'{"a":' + b"[" * 1500 + b"]" * 1500 + b"}"  # under the route's 4096 bytes, deeper than the parser goes
    assert "max_body = 4096" in (receiver.root / "envfence.toml").read_text()
    answer = receiver.post("/housecallpro", body, hcp_headers(DEV_HCP, body))
    assert answer.status_code == 400 and answer.json() == {"error": "bad request"}
    assert "RecursionError" not in receiver.stderr()


def test_a_chunked_body_without_content_length_over_the_limit_is_413_and_never_queued(receiver):
    body = job(pad="x" * 50_000)
    head = "".join(f"{k}: {v}\r\n" for k, v in hcp_headers(DEV_HCP, body).items())
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096))
    answer = _raw(receiver.port, b"POST /housecallpro HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n" + head.encode() + b"\r\n" + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413")


def test_a_header_with_a_bare_cr_or_a_negative_length_is_refused_by_the_server(receiver):
    bare_cr = _raw(receiver.port, b"POST /housecallpro HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"X-Evil: a\rb\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    negative = _raw(receiver.port, b"POST /housecallpro HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: -5\r\nConnection: close\r\n\r\n{}")
    assert bare_cr.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")) and negative.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))


@pytest.mark.parametrize("headers", [
    {},
    {"api-timestamp": "now", "api-signature": "zz"},
    {"api-timestamp": "9" * 400, "api-signature": "ab"},
    {"api-timestamp": str(int(time.time())), "api-signature": "\u00ff" * 64},
])
def test_a_missing_or_malformed_signature_is_401(receiver, headers):
    assert receiver.post("/housecallpro", job(), headers).status_code == 401


def test_a_body_that_is_not_utf8_is_400(receiver):
    body = b'{"event": "job.created", "name": "\xff\xfe"}'
    assert receiver.post("/housecallpro", body, hcp_headers(DEV_HCP, body)).status_code == 400


def test_the_queue_file_swapped_for_a_link_while_running_refuses_deliveries_instead_of_hiding_them(tmp_path):
    port, = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    started = Receiver(root, "development", port)
    try:
        queue_dir = root / "var" / "development" / "queue"
        body = job()
        assert started.post("/housecallpro", body, hcp_headers(DEV_HCP, body)).status_code == 202
        wait_until(lambda: len([r for r in runs(root, "development") if "done" in r]) == 1, what="the first event's run")
        (queue_dir / "webhooks.sqlite3").rename(tmp_path / "stolen.sqlite3")
        (queue_dir / "webhooks.sqlite3").symlink_to(tmp_path / "elsewhere.sqlite3")
        body = job()
        answer = started.post("/housecallpro", body, hcp_headers(DEV_HCP, body))
        assert answer.status_code == 503  # the sender keeps it and retries; a 2xx would hide it in a file no one reads
        assert requests.get(started.url + "/readyz", timeout=10).status_code == 503
        assert "webhooks.sqlite3" in started.stderr() and "replaced" in started.stderr()
    finally:
        assert started.stop() == 0


def test_an_event_id_is_accepted_once_whatever_the_route_and_an_older_queues_twins_are_asked_about(project, run_cli):  # noqa: F811
    import sqlite3

    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import _SCHEMA, WebhookQueue, queue_path

    session = open_session(root=project)
    session.prepare()
    older = queue_path(session.paths)
    older.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(older) as db:  # a queue made when ids were unique per route only
        db.executescript(_SCHEMA.replace("UNIQUE (event_id)", "UNIQUE (route, event_id)"))
    enqueue(project, "evt-1", {"n": 1})
    queue = WebhookQueue(session.paths)
    assert not queue.accept(route="/other", event_id="evt-1", provider="standard", event_type=None, automation="import-job",
                            body=b"{}", headers={}, max_attempts=2)
    path = queue.path
    queue.close()
    with sqlite3.connect(path) as db:  # a queue kept before ids were unique per environment may hold twins
        db.execute("INSERT INTO events (route, event_id, provider, automation, payload, headers, received_at, status,"
                   " max_attempts, next_attempt_at) VALUES ('/other', 'evt-1', 'standard', 'import-job', x'7b7d', '{}', 0,"
                   " 'pending', 2, 0)")
    for args in (("show", "evt-1"), ("drop", "evt-1"), ("retry", "evt-1")):
        result = run_cli("queue", *args, cwd=project)
        assert result.exit_code == 2 and "2 events" in result.stderr and "queue number" in result.stderr, result.output
    listed = json.loads(run_cli("queue", "list", "--json", cwd=project).stdout)["events"]
    assert {e["route"] for e in listed} == {"/housecallpro", "/other"}
    dropped = run_cli("queue", "drop", str(listed[0]["seq"]), cwd=project)
    assert dropped.exit_code == 0 and "dropped" in dropped.stdout


@pytest.mark.parametrize("command", ["show", "retry", "drop"])
def test_queue_commands_on_an_unknown_id_say_so_in_text_and_json(project, run_cli, command):  # noqa: F811
    enqueue(project, "evt-known", {"n": 1})
    text = run_cli("queue", command, "no-such-event", cwd=project)
    assert text.exit_code == 2 and "no-such-event" in text.stderr and "queue list" in text.stderr
    data = run_cli("queue", command, "no-such-event", "--json", cwd=project)
    assert data.exit_code == 2 and "Traceback" not in data.output
    assert "no-such-event" in json.loads(data.stdout)["error"]


def test_queue_show_redacts_the_environments_secrets_in_headers_and_payload(project, run_cli):  # noqa: F811
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    session = open_session(root=project)
    session.prepare()
    queue = WebhookQueue(session.paths)
    assert queue.accept(route="/housecallpro", event_id="evt-leak", provider="housecallpro", event_type="job.created",
                        automation="import-job", body=json.dumps({"echo": CANARY}).encode(),
                        headers={"x-token": CANARY, "api-timestamp": "1"}, max_attempts=2)
    queue.close()
    for args in (("queue", "show", "evt-leak"), ("queue", "show", "evt-leak", "--json")):
        shown = run_cli(*args, cwd=project)
        assert shown.exit_code == 0 and CANARY not in shown.output and "x-token" in shown.output


def _worker(root, event_id: str):
    """A queued event and a worker (with its own queue connection) ready to claim it; returns a maker of more workers."""
    from envfence import open_session
    from envfence.runner import find_automation
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue
    from envfence_builtins.webhook_service.webhook_receiver_worker import Worker

    enqueue(root, event_id, {"n": 1})
    session = open_session(root=root)
    session.prepare()
    automations = {"import-job": find_automation(session, "import-job")}

    def make():
        return Worker(session, WebhookQueue(session.paths), automations, echo=lambda line: None)

    return make(), make


def test_a_worker_killed_after_its_run_finished_never_runs_the_event_again(project):  # noqa: F811
    dying, another = _worker(project, "evt-done")
    dying_queue = dying.queue

    def killed(*args, **kwargs):  # kill -9 lands after the run is recorded as succeeded, before the queue hears of it
        raise KeyboardInterrupt

    dying_queue.finish = killed
    with pytest.raises(KeyboardInterrupt):
        dying.run_once()
    dying._lock.close()  # the process is gone: so is its lock
    ran = (project / "var" / "development" / "runs.jsonl").read_text().splitlines()
    assert len(ran) == 1

    survivor = another()
    survivor.recover()
    assert survivor.run_once() is None  # nothing left to run
    assert (project / "var" / "development" / "runs.jsonl").read_text().splitlines() == ran
    [event] = survivor.queue.find("evt-done")
    assert event.status == "succeeded" and event.run_id
    survivor.close()


def test_a_worker_killed_during_its_run_runs_the_event_again(project):  # noqa: F811
    dying, another = _worker(project, "evt-cut")
    assert dying.queue.claim(dying.token).id == "evt-cut"  # claimed; the run never finished
    dying._lock.close()
    survivor = another()
    survivor.recover()
    assert survivor.run_once().id == "evt-cut"
    assert survivor.queue.find("evt-cut")[0].status == "succeeded"
    survivor.close()


def test_a_path_with_a_line_break_cannot_forge_a_log_line(receiver):
    answer = requests.post(receiver.url + "/nowhere%0aFORGED-LINE%0d%0aAGAIN", data=b"{}", timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 404
    wait_until(lambda: "FORGED-LINE" in receiver.stderr(), what="the refusal in the log")
    time.sleep(0.4)  # the access log goes out in batches
    lines = receiver.stderr().splitlines()
    assert not any(line.startswith(("FORGED-LINE", "AGAIN")) for line in lines)
    assert any("\\nFORGED-LINE" in line for line in lines)


def test_a_damaged_queue_file_is_named_and_kept_by_every_command(project, run_cli):  # noqa: F811
    enqueue(project, "evt-1", {"n": 1})
    damaged = project / "var" / "development" / "queue" / "webhooks.sqlite3"
    for side in damaged.parent.glob("webhooks.sqlite3-*"):
        side.unlink()
    damaged.write_bytes(b"this is no database, but it may be one a disk tool can still recover" * 100)
    before = damaged.read_bytes()
    for args in (("queue", "list"), ("queue", "show", "evt-1"), ("queue", "drop", "evt-1"), ("worker", "--once"), ("backup",)):
        result = run_cli(*args, cwd=project)
        assert result.exit_code == 1 and "Traceback" not in result.output, (args, result.output)
        assert str(damaged) in result.stderr and "internal error" not in result.stderr, (args, result.output)
    assert damaged.read_bytes() == before


def test_readyz_names_a_changed_file_without_telling_where_the_project_lives(receiver):  # keep last: it edits the project
    dotenv = receiver.root / ".env.development"
    dotenv.write_text(dotenv.read_text() + "EXTRA=1\n")
    ready = requests.get(receiver.url + "/readyz", timeout=10).json()
    assert ready["configuration_changed"] == [".env.development"]
    assert str(receiver.root) not in json.dumps(ready)


def test_control_characters_of_an_event_id_show_escaped_in_the_log(tmp_path):
    from test_webhook_receiver import DEV_STD, std_headers

    port, = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    started = Receiver(root, "development", port)
    try:
        body = job(type="order.created")
        headers = std_headers(DEV_STD, body, msg_id="msg_1\tFORGED-EVENT-LINE")
        headers["webhook-id"] = "msg_1\tFORGED-EVENT-LINE"
        assert started.post("/orders", body, headers).status_code == 202
        assert started.post("/orders", body, headers).status_code == 409  # the replay's refusal names the id
        wait_until(lambda: "409 event" in started.stderr(), timeout=60, what="the refusal in the log")
        assert not any(line.startswith("FORGED") for line in started.stderr().splitlines())
        assert "\\tFORGED-EVENT-LINE" in started.stderr()
    finally:
        assert started.stop() == 0


def test_a_route_secret_with_a_quote_and_a_backslash_verifies_and_never_shows(tmp_path):
    port, = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    dotenv = root / ".env.development"
    dotenv.write_text(dotenv.read_text().replace(f"DEV_HOUSECALLPRO_WEBHOOK_SECRET={DEV_HCP}",
                                                 'DEV_HOUSECALLPRO_WEBHOOK_SECRET="first-part\\"q\\\\b-7Hk2Zp9Qx4-second-part"'))
    secret = 'first-part"q\\b-7Hk2Zp9Qx4-second-part'
    started = Receiver(root, "development", port)
    try:
        body = job()
        assert started.post("/housecallpro", body, hcp_headers(secret, body)).status_code == 202
        assert started.post("/housecallpro", body, hcp_headers("first-part", body)).status_code == 401
    finally:
        assert started.stop() == 0
    assert "first-part" not in started.stderr() and "second-part" not in started.stderr()


def test_a_route_secret_holding_a_line_break_is_refused_like_a_source_secret_and_never_shown(tmp_path):
    port, = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    dotenv = root / ".env.development"
    dotenv.write_text(dotenv.read_text().replace(f"DEV_HOUSECALLPRO_WEBHOOK_SECRET={DEV_HCP}",
                                                 'DEV_HOUSECALLPRO_WEBHOOK_SECRET="first-part-7Hk2Zp9Q\\nsecond-part-x4Lm"'))
    checked = cli(root, "check")
    assert checked.returncode == 1 and "WEBHOOK_SECRET_FORMAT" in checked.stdout and "route /housecallpro" in checked.stdout
    refused = cli(root, "serve")
    assert refused.returncode == 3 and "DEV_HOUSECALLPRO_WEBHOOK_SECRET" in refused.stderr
    assert "first-part" not in checked.stdout + refused.stderr and "second-part" not in checked.stdout + refused.stderr


def test_the_receivers_systemd_unit_keeps_a_percent_or_a_space_in_the_project_path_literal(make_project, run_cli):
    from test_webhook_queue_cli import HOOKS, SETTINGS

    root = make_project({"hooks.py": HOOKS, ".env.development": f"WEBHOOK_PORT=18001\nDEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY}\n",
                         ".env.production": "WEBHOOK_PORT=18002\n"}, settings=SETTINGS, name="acme 100%h")
    unit = run_cli("serve", "--emit", "systemd", cwd=root)
    assert unit.exit_code == 0, unit.output
    lines = dict(line.split("=", 1) for line in unit.stdout.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["WorkingDirectory"] == str(root).replace("%", "%%")  # %h would be the home directory
    assert lines["ExecStart"].endswith('"--env" "development" "serve"') and "%h" not in lines["ExecStart"].replace("%%", "")
