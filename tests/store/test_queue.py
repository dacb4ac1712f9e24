"""The webhook queue in the shared store: workers on two hosts each claim different events; a dead worker's claim returns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import APP_PASSWORD, grant_app

WORKER = textwrap.dedent('''
    import json, os, sys, time
    import envfence
    from envfence_builtins.store.postgres_client import store_for
    from envfence_builtins.store.postgres_queue import PostgresQueue

    session = envfence.open_session()
    queue = PostgresQueue(store_for(session))
    token = "worker-" + os.environ["ENVFENCE_HOSTNAME"] + "-" + str(os.getpid())
    if sys.argv[1:] == ["hold"]:
        event = queue.claim(token)
        print(event.seq, flush=True)
        time.sleep(60)
    print("ready", flush=True)
    while not os.path.exists("../go"):  # both hosts start claiming together
        time.sleep(0.01)
    claimed = []
    while (event := queue.claim(token)) is not None:
        claimed.append(event.seq)
        time.sleep(0.01)  # a run takes a while: the other host claims meanwhile
        queue.finish(event.seq, token, succeeded=True, run_id=None, error=None)
    print(json.dumps(claimed))
''')


@pytest.fixture
def shared_queue(make_project, store_db, run_cli):
    settings = f'[store]\nurl = "{store_db.url}"\n'
    roots = {name: make_project({"worker.py": WORKER}, settings=settings, name=name) for name in ("web-prod-01", "web-prod-02")}
    (roots["web-prod-01"] / ".env").write_text(f"PROD_STORE_ADMIN_URL={store_db.owner}\n")
    assert run_cli("--env", "production", "store", "init", cwd=roots["web-prod-01"]).exit_code == 0
    grant_app(store_db)
    return roots


def worker(root, host, *args):
    env = {**os.environ, "ENVFENCE_HOSTNAME": host, "PROD_STORE_PASSWORD": APP_PASSWORD}
    return subprocess.Popen([sys.executable, "worker.py", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def open_queue(root, monkeypatch):
    import envfence
    from envfence_builtins.store.postgres_queue import PostgresQueue
    from envfence_builtins.store.postgres_client import store_for

    monkeypatch.setenv("PROD_STORE_PASSWORD", APP_PASSWORD)
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "web-prod-01")
    return PostgresQueue(store_for(envfence.open_session(root=root)))


def accept(queue, count):
    for i in range(count):
        assert queue.accept(route="/hooks", event_id=f"evt_{i}", provider="housecallpro", event_type="job.created",
                            automation="sync", body=b'{"id": %d}' % i, headers={"X-Id": str(i)}, max_attempts=3)
    # The same delivery again is refused: replay protection across hosts.
    assert not queue.accept(route="/hooks", event_id="evt_0", provider="housecallpro", event_type=None, automation="sync",
                            body=b"{}", headers={}, max_attempts=3)


def test_workers_on_two_hosts_claim_every_event_once(shared_queue, monkeypatch):
    queue = open_queue(shared_queue["web-prod-01"], monkeypatch)
    accept(queue, 40)
    procs = [worker(shared_queue[h], h) for h in ("web-prod-01", "web-prod-02")]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    (shared_queue["web-prod-01"].parent / "go").touch()
    claimed = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        claimed.append(json.loads(out.splitlines()[-1]))
    assert all(claimed), claimed  # both hosts took a share
    assert sorted(claimed[0] + claimed[1]) == sorted(e.seq for e in queue.list(limit=100))
    assert queue.counts()["succeeded"] == 40 and queue.counts()["pending"] == 0
    queue.close()


def test_the_claim_of_a_worker_killed_on_another_host_returns_to_the_queue(shared_queue, monkeypatch):
    queue = open_queue(shared_queue["web-prod-01"], monkeypatch)
    accept(queue, 1)
    holder = worker(shared_queue["web-prod-02"], "web-prod-02", "hold")
    seq = int(holder.stdout.readline())
    assert queue.find(str(seq))[0].status == "running"
    assert queue.recover() == 0  # its worker is alive on the other host
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    for _ in range(40):
        if queue.recover():
            break
        time.sleep(0.25)
    event = queue.find(str(seq))[0]
    assert event.status == "pending" and event.attempt == 1 and "interrupted" in event.last_error
    queue.close()
