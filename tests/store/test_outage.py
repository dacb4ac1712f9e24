"""A run that started is always finished on record: the database going away mid-run, a process killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from .conftest import APP_PASSWORD, roles

JOBS = '''
import os, pathlib, time

def wait(ctx):
    """Say it started, then wait until the test lets it end."""
    pathlib.Path(os.environ["STARTED"]).write_text(str(os.getpid()))
    release = pathlib.Path(os.environ["RELEASE"])
    deadline = time.time() + 60
    while not release.exists() and time.time() < deadline:
        time.sleep(0.05)
    ctx.say("finished its work")
'''


@pytest.fixture
def project(make_project, store_db, run_cli):
    """A project on the store with the default fallback ("refuse"), its store initialised."""
    env = f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n"
    settings = f'[automations.wait]\nrun = "jobs:wait"\n\n[store]\nurl = "{store_db.url}"\nconnect_timeout = 2\n' + roles()
    root = make_project({"jobs.py": JOBS, ".env": env}, settings=settings)
    assert run_cli("store", "init", cwd=root).exit_code == 0
    return root


def start(root: Path, *args: str, host: str = "build-box-01") -> subprocess.Popen:
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_"))}
    env = {**variables, "ENVFENCE_HOSTNAME": host, "STARTED": str(root / "started"), "RELEASE": str(root / "release")}
    return subprocess.Popen([sys.executable, "-m", "envfence", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=90)
    return proc.returncode, out, err


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def store_rows(url: str, sql: str, *args):
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute(sql, args).fetchall()


def test_the_database_stopping_mid_run_changes_nothing_for_the_run_and_its_end_reaches_the_store_once(project, store_db):
    proc = start(project, "run", "wait")
    wait_for(project / "started", proc)
    # The run is mirrored in the store while it runs.
    assert store_rows(store_db.superuser, "SELECT automation, status FROM envfence_runs") == [("wait", "running")]

    store_db.server.stop()
    try:
        (project / "release").touch()
        code, out, err = finish(proc)
        output = out + err
        assert code == 0, output  # the job's result, not the store's
        assert "finished its work" in output and APP_PASSWORD not in output
        tree = project / "var" / "development"
        with sqlite3.connect(tree / "history.sqlite3") as local:
            assert local.execute("SELECT status, exit_code FROM runs").fetchall() == [("succeeded", 0)]
        trail = [json.loads(line)["event"] for line in (tree / "audit" / "audit_development.jsonl").read_text().splitlines()]
        assert trail.count("run.finished") == 1
        spooled = [json.loads(line) for line in (tree / "store-spool.jsonl").read_text().splitlines()]
        assert any(i["kind"] == "run" and i["row"]["status"] == "succeeded" for i in spooled)
        assert any(i["kind"] == "audit" and i["entry"]["event"] == "run.finished" for i in spooled)
    finally:
        store_db.server.start()

    # The next command that reaches the store sends the spool: the run is finished there, once, in the chain.
    for _ in range(2):
        verified = start(project, "audit", "verify", "--json")
        code, out, err = finish(verified)
        assert code == 0, out + err
    assert not (project / "var" / "development" / "store-spool.jsonl").exists()
    assert store_rows(store_db.superuser, "SELECT status, exit_code FROM envfence_runs") == [("succeeded", 0)]
    events = [e for (e,) in store_rows(store_db.superuser, "SELECT event FROM envfence_audit ORDER BY seq")]
    assert events.count("run.started") == 1 and events.count("run.finished") == 1


def test_a_run_killed_on_one_host_is_seen_abandoned_from_another(project, store_db, make_project):
    proc = start(project, "run", "wait")
    wait_for(project / "started", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    # Another machine's copy of the project: it never saw the run, and finds it abandoned in the store.
    elsewhere = make_project({"jobs.py": JOBS, ".env": f"DEV_STORE_PASSWORD={APP_PASSWORD}\n"},
                             settings=(project / "envfence.toml").read_text(), name="laptop")
    status = start(elsewhere, "status", "--json", host="build-box-02")
    code, out, err = finish(status)
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["automation"], r["status"]) for r in runs] == [("wait", "abandoned")]
    assert store_rows(store_db.superuser, "SELECT status FROM envfence_runs") == [("abandoned",)]


def test_a_run_seen_abandoned_while_the_database_restarted_is_finished_by_its_own_end(project, store_db):
    """A restart takes the run's lock away mid-run: another host may read it abandoned; the run's end still counts."""
    from envfence_builtins.store.postgres_client import finish_run

    start = {"run_id": "run-restarted", "automation": "wait", "environment": "development", "host": "h",
             "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:00+00:00", "status": "running",
             "exit_code": -1, "forced": False}
    end = {**start, "finished_at": "2026-01-01T00:00:05+00:00", "status": "succeeded", "exit_code": 0, "duration": 5.0}
    with psycopg.connect(store_db.app, autocommit=True) as db:
        finish_run(db, start)
        db.execute("UPDATE envfence_runs SET status = 'abandoned', error_class = 'abandoned' WHERE run_id = 'run-restarted'")
        finish_run(db, end)
        finish_run(db, end)  # the spool sent twice
        assert db.execute("SELECT status, exit_code FROM envfence_runs").fetchall() == [("succeeded", 0)]
        with pytest.raises(psycopg.errors.RaiseException, match="a finished run is never changed"):
            db.execute("UPDATE envfence_runs SET status = 'failed'")
