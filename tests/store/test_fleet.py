"""The fleet: three hosts on one store take 45 webhook deliveries while the database restarts twice and a worker dies.

Three project trees stand for three hosts: two production VMs and a
development box, each running ``envfence serve`` and an ``envfence worker``
against one PostgreSQL started by the tests, with each environment's role
kept apart by ``store init``. Signed deliveries are spread over the
receivers; PostgreSQL is stopped and started twice on the way and one
worker is killed with -9. Every event must run exactly once (one succeeded
run per event), both environments' trails must verify, and the development
role must be refused on every production row.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

from .conftest import APP, APP_PASSWORD, OTHER, OTHER_PASSWORD, free_ports, roles

#: Enough for both outages and the kill to fall mid-stream (at a third and two thirds), with events still queued
#: on every host; every one of them is an automation run, so more deliveries only make the test slower.
DELIVERIES = 45
SECRETS = {"production": "prodhcp-6d1f0b9e3a7c2e5f8a4b1d7c3e9f2a6b", "development": "devhcp-2e7a9c4f1b6d3e8a5c2f9b7d4e1a6c3f"}
AUDIT_KEYS = {"production": "prod-audit-" + "3c9e1f5a7b2d4c6e8f0a1b3d5c7e9f2a", "development": "dev-audit-" + "8a2c4e6f1b3d5a7c9e0f2b4d6a8c1e3f"}
HOSTS = {"web-prod-01": "production", "web-prod-02": "production", "build-dev-01": "development"}
SETTINGS = """
[automations]
import-job = "hooks:import_job"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
max_attempts = 10

[hostname]
allow_stand_in = true

[store]
url = "{url}"
connect_timeout = 2
{roles}
"""
HOOKS = '''
def import_job(ctx):
    ctx.say(f"imported {ctx.event.id}")
'''


class Host:
    """One machine: a project tree, its environment, its receiver's port, its processes."""

    def __init__(self, name: str, root: Path, port: int) -> None:
        self.name, self.root, self.port = name, root, port
        self.environment = HOSTS[name]
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self) -> dict[str, str]:
        from envfence.keyring import key_variable

        variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
        # Every host of an environment holds that environment's audit key, as it holds its store password.
        prefix = "PROD" if self.environment == "production" else "DEV"
        return {**variables, "ENVFENCE_HOSTNAME": self.name, key_variable("audit", prefix): AUDIT_KEYS[self.environment]}

    def start(self, what: str, *args: str) -> None:
        log = open(self.root / f"{what}.log", "wb")
        self.procs[what] = subprocess.Popen(
            [sys.executable, "-m", "envfence", "--env", self.environment, what, *args], cwd=self.root, env=self.env(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )

    def log(self, what: str) -> str:
        return (self.root / f"{what}.log").read_text(errors="replace")

    def envfence(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "envfence", "--env", self.environment, *args], cwd=self.root,
                              env=self.env(), capture_output=True, text=True, timeout=120)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for what, proc in self.procs.items():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"{self.name} {what} did not stop on SIGTERM: {self.log(what)[-3000:]}") from None


@pytest.fixture
def fleet(make_project, store_db, run_cli):
    """The three hosts, their store initialised (production on APP, development on OTHER), nothing started."""
    settings = SETTINGS.format(url=store_db.url, roles=roles(development=OTHER, production=APP))
    ports = free_ports(len(HOSTS))
    hosts = {}
    for (name, environment), port in zip(HOSTS.items(), ports):
        prefix = "PROD" if environment == "production" else "DEV"
        # Each host holds only its own environment's credentials; development connects as its own role.
        own = (f"PROD_STORE_PASSWORD={APP_PASSWORD}\n" if environment == "production"
               else f"DEV_STORE_URL={store_db.server.url_for(OTHER, OTHER_PASSWORD, store_db.name)}\n")
        files = {"hooks.py": HOOKS, ".env": own, f".env.{environment}":
                 f"WEBHOOK_PORT={port}\n{prefix}_HOUSECALLPRO_WEBHOOK_SECRET={SECRETS[environment]}\n"}
        hosts[name] = Host(name, make_project(files, settings=settings, name=name), port)
    admin = hosts["web-prod-01"]
    (admin.root / ".env").write_text((admin.root / ".env").read_text() + f"PROD_STORE_ADMIN_URL={store_db.owner}\n")
    init = admin.envfence("store", "init")
    assert init.returncode == 0, init.stderr
    yield hosts
    for host in hosts.values():
        for proc in host.procs.values():
            if proc.poll() is None:
                proc.kill()


def deliver(host: Host, n: int, stamp: int, stop: threading.Event) -> int:
    """Send delivery ``n`` to ``host`` until it is accepted (202) or known (409); returns the tries it took."""
    body = json.dumps({"event": "job.created", "job": {"id": f"job-{n}"}}).encode()
    headers = {"Content-Type": "application/json", "api-timestamp": str(stamp),
               "api-signature": sign_housecallpro(SECRETS[host.environment], body, str(stamp))}
    tries = 0
    while not stop.is_set():
        tries += 1
        try:
            answer = requests.post(f"http://127.0.0.1:{host.port}/housecallpro", data=body, headers=headers, timeout=10)
            if answer.status_code in (202, 409):
                return tries
            assert answer.status_code == 503, answer.text  # the store is away: the provider delivers again
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    return tries


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def queue_counts(url: str) -> dict[tuple[str, str], int]:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as db:
            return {(e, s): c for e, s, c in db.execute(
                "SELECT environment, status, count(*) FROM envfence_webhook_events GROUP BY environment, status")}
    except psycopg.OperationalError:
        return {}


@pytest.mark.heavy
def test_three_hosts_run_every_webhook_event_exactly_once_through_restarts_and_a_killed_worker(fleet, store_db):
    hosts = list(fleet.values())
    started = time.monotonic()
    for host in hosts:
        host.start("serve", "--workers", "1", "--retry-base", "0.2")
        host.start("worker", "--retry-base", "0.2")
    for host in hosts:
        wait_until(lambda h=host: "receiving webhooks" in h.log("serve") or h.procs["serve"].poll() is not None, 60, "serve")
        assert host.procs["serve"].poll() is None, host.log("serve")

    began = time.monotonic()
    print(f"fleet: started in {began - started:.1f}s")
    stop, stamp = threading.Event(), int(time.time())
    # Two of every three deliveries go to production, spread over its two receivers.
    targets = [hosts[n % 3] for n in range(DELIVERIES)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(deliver, target, n, stamp, stop) for n, target in enumerate(targets)]
        for outage in (DELIVERIES // 3, 2 * DELIVERIES // 3):
            wait_until(lambda o=outage: sum(f.done() for f in futures) >= o, 120, f"{outage} deliveries")
            store_db.server.stop()
            time.sleep(1.0)
            store_db.server.start()
            if outage == DELIVERIES // 3:
                # A worker dies without a word, on a production VM, with the database up.
                time.sleep(0.5)
                fleet["web-prod-02"].procs["worker"].send_signal(signal.SIGKILL)
        try:
            [f.result(timeout=180) for f in futures]
        finally:
            stop.set()
    print(f"fleet: {DELIVERIES} accepted in {time.monotonic() - began:.1f}s")
    expected = {"production": sum(1 for t in targets if t.environment == "production")}
    expected["development"] = DELIVERIES - expected["production"]
    wait_until(lambda: all(queue_counts(store_db.superuser).get((e, "succeeded"), 0) == n for e, n in expected.items()),
               240, "every event to be run")
    elapsed = time.monotonic() - began
    for host in hosts:
        host.stop()

    # Each host sends what it spooled during the outages; then both environments' trails verify.
    for host in hosts:
        verified = host.envfence("audit", "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert all(s["ok"] for s in json.loads(verified.stdout)["stores"])
        assert not (host.root / "var" / host.environment / "store-spool.jsonl").exists()

    with psycopg.connect(store_db.superuser, autocommit=True) as db:
        statuses = dict(((e, s), c) for e, s, c in db.execute(
            "SELECT environment, status, count(*) FROM envfence_webhook_events GROUP BY environment, status"))
        assert statuses == {(e, "succeeded"): n for e, n in expected.items()}
        # Exactly once: one succeeded run per event, and each event names its own succeeded run.
        for environment, count in expected.items():
            succeeded = db.execute("SELECT count(*) FROM envfence_runs WHERE environment = %s AND automation = 'import-job'"
                                   " AND status = 'succeeded'", (environment,)).fetchone()[0]
            assert succeeded == count, (environment, succeeded, count)
            linked = db.execute(
                "SELECT count(DISTINCT q.run_id) FROM envfence_webhook_events q JOIN envfence_runs r ON r.run_id = q.run_id"
                " WHERE q.environment = %s AND r.status = 'succeeded'", (environment,)).fetchone()[0]
            assert linked == count

    # The development role is refused on every production row.
    dev = store_db.server.url_for(OTHER, OTHER_PASSWORD, store_db.name)
    tables = ("envfence_runs", "envfence_audit", "envfence_state", "envfence_webhook_events")
    with psycopg.connect(dev, autocommit=True) as db:
        for table in tables:
            assert db.execute(f"SELECT count(*) FROM {table} WHERE environment = 'production'").fetchone()[0] == 0
        assert db.execute("UPDATE envfence_webhook_events SET status = 'pending' WHERE environment = 'production'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO envfence_webhook_events (environment, route, event_id, provider, automation, payload,"
                       " headers, received_at, status, max_attempts, next_attempt_at)"
                       " VALUES ('production', '/housecallpro', 'forged', 'housecallpro', 'import-job', '{}', '{}', 0, 'pending', 3, 0)")
    checked = fleet["build-dev-01"].envfence("store", "check", "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["separation"] == {t: {"production": "refused"} for t in tables}
    logs = "".join(h.log(w) for h in hosts for w in h.procs)
    for secret in (APP_PASSWORD, OTHER_PASSWORD, *SECRETS.values(), *AUDIT_KEYS.values()):
        assert secret not in logs
    assert "Traceback" not in logs
    print(f"fleet: {DELIVERIES} deliveries run in {elapsed:.1f}s")
