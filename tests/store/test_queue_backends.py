"""One suite, two queues: `serve`, `worker` and `queue` behave alike on the SQLite queue and on the shared store's queue.

Each test runs twice: once with the environment's own SQLite queue, once
with ``[store]`` pointing at a PostgreSQL started by the tests (its roles
kept apart by ``store init``). Everything goes through the CLI, as a user
or a provider would use it: ``serve`` and ``worker`` as processes of their
own (signalled, killed), the queue's commands in the test's process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

from .conftest import APP_PASSWORD, free_ports, roles

SECRET = "hcpcanary-3b8e1f6a9c2d4e7f0a5b8c1d3e6f9a2b"
SETTINGS = """
[automations]
import-job = "hooks:import_job"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
max_attempts = 2
"""
# Each try and each finished run is written to the tree; a payload may ask to sleep or to fail.
HOOKS = '''
import json, os, time

def _line(ctx, record):
    fd = os.open(ctx.paths.base / "runs.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (json.dumps(record) + "\\n").encode())
    os.close(fd)

def import_job(ctx):
    _line(ctx, {"start": ctx.event.id, "attempt": ctx.event.attempt, "run_id": ctx.run_id})
    if ctx.event.payload.get("sleep") and ctx.event.attempt == 1:  # only the first try hangs
        (ctx.paths.base / "started").write_text(str(os.getpid()))
        time.sleep(ctx.event.payload["sleep"])
    if (ctx.paths.base / "fail").exists():
        raise RuntimeError("asked to fail")
    _line(ctx, {"done": ctx.event.id})
'''


@pytest.fixture(params=["sqlite", "postgres"])
def project(request, make_project, run_cli):
    """A project with one webhook route, its queue in the tree (sqlite) or in the shared store (postgres)."""
    [port] = free_ports(1)
    env = f"DEV_HOUSECALLPRO_WEBHOOK_SECRET={SECRET}\n"
    settings = SETTINGS
    if request.param == "postgres":
        store_db = request.getfixturevalue("store_db")
        env += f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
        settings += f'\n[store]\nurl = "{store_db.url}"\n' + roles()
    root = make_project({"hooks.py": HOOKS, ".env": env, ".env.development": f"WEBHOOK_PORT={port}\n"}, settings=settings)
    if request.param == "postgres":
        assert run_cli("store", "init", cwd=root).exit_code == 0
    return root


def port_of(root: Path) -> int:
    """The receiver's port, as the project's .env declares it."""
    return int((root / ".env.development").read_text().strip().split("=")[1])


def _environ() -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
    return {**variables, "ENVFENCE_HOSTNAME": "build-box-01"}


def envfence(root: Path, *args: str, wait: bool = True):
    """``envfence ARGS`` as its own process in ``root``."""
    proc = subprocess.Popen([sys.executable, "-m", "envfence", *args], cwd=root, env=_environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def cli(run_cli):
    """``cli(root, *ARGS)``: ``envfence ARGS`` in ``root``, in this process, as a finished process (returncode, stdout, stderr).

    The queue's and the trail's commands; ``serve`` and ``worker`` run as their own processes (signals, kills).
    """

    def run(root: Path, *args: str) -> subprocess.CompletedProcess:
        result = run_cli(*args, cwd=root)
        return subprocess.CompletedProcess(["envfence", *args], result.exit_code, result.stdout, result.stderr)

    return run


def deliver(port: int, payload: dict, stamp: int | None = None) -> requests.Response:
    """A delivery signed as HousecallPro signs it (the same payload and stamp make the same delivery)."""
    body = json.dumps({"event": "job.created", **payload}).encode()
    stamp = str(stamp or int(time.time()))
    headers = {"Content-Type": "application/json", "api-timestamp": stamp,
               "api-signature": sign_housecallpro(SECRET, body, stamp)}
    return requests.post(f"http://127.0.0.1:{port}/housecallpro", data=body, headers=headers, timeout=10)


def enqueue(root: Path, event_id: str, payload: dict, route: str = "/housecallpro") -> bool:
    """Accept a verified event into the environment's queue, the one the CLI uses."""
    from envfence import open_session
    from envfence_builtins.webhook_service.queue_hooks import QueueHooks
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    session = open_session(root=root, environ={"ENVFENCE_HOSTNAME": "build-box-01"})
    session.prepare()
    queue = QueueHooks(session.plugins).open_webhook_queue(session=session).first or WebhookQueue(session.paths)
    try:
        return queue.accept(route=route, event_id=event_id, provider="housecallpro", event_type="job.created",
                            automation="import-job", body=json.dumps(payload).encode(), headers={"api-timestamp": "1"},
                            max_attempts=2)
    finally:
        queue.close()


def lines(root: Path) -> list[dict]:
    path = root / "var" / "development" / "runs.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def shown(cli, root: Path, ref: str) -> dict:
    result = cli(root, "queue", "show", ref, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(check, timeout: float = 30.0, what: str = "it"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_worker_runs_each_event_once_and_dead_letters_what_keeps_failing(project, cli):
    assert enqueue(project, "evt-ok", {"n": 1})
    assert not enqueue(project, "evt-ok", {"n": 1})  # the same delivery again: refused, replay protection
    assert envfence(project, "worker", "--once").returncode == 0
    assert envfence(project, "worker", "--once").returncode == 0  # nothing due: nothing runs again
    assert [x["done"] for x in lines(project) if "done" in x] == ["evt-ok"]

    (project / "var/development/fail").write_text("")
    assert enqueue(project, "evt-bad", {"n": 2})
    assert envfence(project, "worker", "--once", "--retry-base", "0").returncode == 0
    event = shown(cli, project, "evt-bad")
    assert event["status"] == "dead" and event["attempts"] == 2 and "asked to fail" in event["last_error"]
    assert event["payload"] == {"n": 2}


@pytest.mark.heavy
def test_queue_list_show_retry_and_drop(project, cli):
    (project / "var/development").mkdir(parents=True, exist_ok=True)
    (project / "var/development/fail").write_text("")
    enqueue(project, "evt-1", {"n": 1})
    envfence(project, "worker", "--once", "--retry-base", "0")
    listed = json.loads(cli(project, "queue", "list", "--status", "dead", "--json").stdout)
    assert [e["id"] for e in listed["events"]] == ["evt-1"] and listed["counts"]["dead"] == 1
    assert "evt-1" in cli(project, "queue", "list").stdout

    (project / "var/development/fail").unlink()
    retried = cli(project, "queue", "retry", "evt-1", "--json")
    assert retried.returncode == 0 and json.loads(retried.stdout)["status"] == "pending"
    envfence(project, "worker", "--once")
    assert shown(cli, project, "evt-1")["status"] == "succeeded"
    refused = cli(project, "queue", "retry", "evt-1")
    assert refused.returncode == 1 and "only a dead or dropped event" in refused.stderr

    enqueue(project, "evt-2", {"n": 2})
    assert cli(project, "queue", "drop", "evt-2").returncode == 0
    envfence(project, "worker", "--once")
    assert shown(cli, project, "evt-2")["status"] == "dropped"
    assert not enqueue(project, "evt-2", {"n": 2})  # a dropped event's id stays known
    trail = json.loads(cli(project, "--json", "audit", "show", "--event", "webhook.*").stdout)
    assert [r["event"] for r in trail] == ["webhook.retried", "webhook.dropped"]
    missing = cli(project, "queue", "show", "evt-404")
    assert missing.returncode == 2 and "queue list" in missing.stderr


def test_serve_accepts_signed_deliveries_runs_them_and_refuses_a_replay(project, cli):
    server = envfence(project, "serve", "--retry-base", "0.1", wait=False)
    try:
        wait_for(lambda: _ready(port_of(project), server), what="serve to listen")
        stamp = int(time.time())
        answers = [deliver(port_of(project), {"job": {"id": f"job-{n}"}}, stamp) for n in range(5)]
        assert [a.status_code for a in answers] == [202] * 5
        replay = deliver(port_of(project), {"job": {"id": "job-0"}}, stamp)
        assert replay.status_code == 409
        wait_for(lambda: len([x for x in lines(project) if "done" in x]) == 5, what="five runs")
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "Traceback" not in err and SECRET not in err + out
    ids = [x["done"] for x in lines(project) if "done" in x]
    assert len(ids) == len(set(ids)) == 5
    counts = json.loads(cli(project, "queue", "list", "--json").stdout)["counts"]
    assert counts["succeeded"] == 5 and counts["pending"] == counts["running"] == 0


def _ready(port: int, server) -> bool:
    assert server.poll() is None, server.communicate()[1]
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_claim_of_a_worker_killed_mid_run_returns_and_runs_once_more(project, cli):
    enqueue(project, "evt-slow", {"sleep": 60})
    enqueue(project, "evt-next", {"n": 2})
    doomed = envfence(project, "worker", wait=False)
    wait_for(lambda: (project / "var/development/started").exists() or doomed.poll() is not None, what="the run to start")
    assert doomed.poll() is None, doomed.communicate()[1]
    assert shown(cli, project, "evt-slow")["status"] == "running"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)

    (project / "var/development/fail").unlink(missing_ok=True)
    survivor = envfence(project, "worker", "--once")
    assert survivor.returncode == 0, survivor.stderr
    slow = shown(cli, project, "evt-slow")
    # Back in the queue with its interrupted try counted, and run to its end by the survivor; the other event too.
    assert slow["status"] == "succeeded" and slow["attempts"] == 2
    assert shown(cli, project, "evt-next")["status"] == "succeeded"
    assert sorted(x["done"] for x in lines(project) if "done" in x) == ["evt-next", "evt-slow"]


def test_an_event_id_is_accepted_once_per_environment_whatever_the_route_and_prune_keeps_it(project, cli):
    assert enqueue(project, "evt-once", {"n": 1})
    assert not enqueue(project, "evt-once", {"n": 1}, route="/other")  # a replay to another route sharing the secret
    assert envfence(project, "worker", "--once").returncode == 0
    pruned = cli(project, "queue", "prune", "--older-than", "0", "--json")
    assert pruned.returncode == 0 and json.loads(pruned.stdout)["pruned"] == 1, pruned.stderr
    event = shown(cli, project, "evt-once")
    assert event["status"] == "succeeded" and event["payload"] == ""
    assert not enqueue(project, "evt-once", {"n": 1})  # its id stays known
