"""Two hosts sharing one store, simulated by separate processes with their own host name and project copy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psycopg
import pytest

from .conftest import APP, APP_PASSWORD, OTHER, OTHER_PASSWORD, READER_PASSWORD, roles

pytestmark = pytest.mark.heavy  # each test starts several hosts' processes

JOBS = '''
import os, pathlib, time

def hold(ctx):
    """Hold the run (and so its lock) until the test says so."""
    pathlib.Path(os.environ["HOLD_STARTED"]).write_text(str(os.getpid()))
    release = pathlib.Path(os.environ["HOLD_RELEASE"])
    deadline = time.time() + 60
    while not release.exists() and time.time() < deadline:
        time.sleep(0.05)

def ok(ctx):
    ctx.say("fine")
'''


@pytest.fixture
def hosts(make_project, store_db, tmp_path):
    """Three machines' copies of one project: two production VMs and a laptop, one database."""
    # Production's VMs connect as one role, the laptop as another: store init keeps their rows apart.
    settings = f'''[store]
url = "{store_db.url}"
{roles(development=OTHER, production=APP)}

[automations.hold]
run = "jobs:hold"
# The test signals the job through variables of its own, which a child process would not get.
isolation = "in-process"
isolation_reason = "the test signals the job through its own variables"

[automations.ok]
run = "jobs:ok"

[automations.heavy]
run = "jobs:ok"

[thresholds.heavy]
max_memory = "1KB"

[alerts.escalation]
production = ["console"]
development = ["console"]
'''
    # The VMs are enrolled in production: this machine's own name stands in for theirs (a test's
    # ENVFENCE_HOSTNAME may only tighten the guards), so their copies enroll it.
    enrolled = f'\n[hostname.production]\nhosts = ["{socket.gethostname().lower()}"]\n'
    machines = {
        name: make_project({"jobs.py": JOBS}, settings=settings + (enrolled if "prod" in name else ""), name=name)
        for name in ("web-prod-01", "web-prod-02", "laptop-dev-01")
    }
    admin = subprocess.run(
        [sys.executable, "-m", "envfence", "store", "init"], cwd=machines["laptop-dev-01"], capture_output=True, text=True,
        env={**os.environ, "ENVFENCE_HOSTNAME": "laptop-dev-01", "DEV_STORE_URL": store_db.owner}, timeout=60,
    )
    assert admin.returncode == 0, admin.stderr
    global _laptop_url
    _laptop_url = store_db.other.replace("envfence_other@", f"envfence_other:{OTHER_PASSWORD}@")
    return machines


_laptop_url = ""
#: Production's audit key, held by both production VMs (as its store password is).
PROD_AUDIT_KEY = "prod-audit-key-" + "5e1b9d3f7a2c4e6b8d0f1a3c5e7b9d2f"


def _key_variable() -> str:
    from envfence.keyring import key_variable

    return key_variable("audit", "PROD")


AUDIT_KEY = _key_variable()


def envfence(machine, root, *args, wait=True, **extra):
    """``envfence ARGS`` as a process on ``machine``; its credentials come from the process environment."""
    # Each machine holds its own environment's credential: production's role on the VMs, another on the laptop.
    # Production's VMs share production's audit key, so each verifies the records the other chained.
    own = {"DEV_STORE_URL": _laptop_url} if "dev" in machine else {"PROD_STORE_PASSWORD": APP_PASSWORD, AUDIT_KEY: PROD_AUDIT_KEY}
    env = {
        **os.environ, "ENVFENCE_HOSTNAME": machine, **own,
        "HOLD_STARTED": str(root / "started"), "HOLD_RELEASE": str(root.parent / "release"), **extra,
    }
    proc = subprocess.Popen([sys.executable, "-m", "envfence", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_exactly_one_of_several_runs_on_two_hosts_runs_and_the_shared_chain_verifies(hosts, store_db):
    a, b = hosts["web-prod-01"], hosts["web-prod-02"]
    procs = [envfence(m, root, "run", "hold", wait=False) for m, root in [("web-prod-01", a), ("web-prod-02", b)] * 2]
    outcomes = {}
    deadline = time.time() + 60
    while len(outcomes) < len(procs) - 1 and time.time() < deadline:
        for proc in procs:
            if proc not in outcomes and proc.poll() is not None:
                outcomes[proc] = (proc.returncode, proc.stdout.read() + proc.stderr.read())
        time.sleep(0.05)
    (a.parent / "release").touch()
    for proc in procs:
        if proc not in outcomes:
            out, err = proc.communicate(timeout=60)
            outcomes[proc] = (proc.returncode, out + err)
    codes = sorted(code for code, _ in outcomes.values())
    assert codes == [0, 3, 3, 3], "\n".join(text for _, text in outcomes.values())
    refused = [text for code, text in outcomes.values() if code == 3]
    for text in refused:
        assert "hold is already running in production (web-prod-0" in text, text
    assert APP_PASSWORD not in "".join(text for _, text in outcomes.values())

    # Both hosts wrote to production's one chain; each host verifies it.
    for machine, root in [("web-prod-01", a), ("web-prod-02", b)]:
        verified = envfence(machine, root, "audit", "verify", "--json")
        assert verified.returncode == 0, verified.stderr
        assert json.loads(verified.stdout)["stores"][0]["ok"]
    with psycopg.connect(store_db.superuser, autocommit=True) as db:
        hosts_seen = {h for (h,) in db.execute("SELECT DISTINCT host FROM envfence_audit WHERE environment = 'production'")}
        assert hosts_seen == {"web-prod-01", "web-prod-02"}
        db.execute("SET session_replication_role = replica")
        db.execute("UPDATE envfence_audit SET event = 'run.nothing' WHERE environment = 'production' AND event = 'run.started'")
    tampered = envfence("web-prod-02", b, "audit", "verify")
    assert tampered.returncode == 1 and "its columns disagree with its hashed record (edited)" in tampered.stderr


def test_killing_the_lock_holder_frees_the_lock_for_the_other_host(hosts):
    a, b = hosts["web-prod-01"], hosts["web-prod-02"]
    holder = envfence("web-prod-01", a, "run", "hold", wait=False)
    deadline = time.time() + 30
    while not (a / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (a / "started").exists(), holder.communicate(timeout=5)
    blocked = envfence("web-prod-02", b, "run", "hold")
    assert blocked.returncode == 3 and "already running" in blocked.stderr

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    (a.parent / "release").touch()
    # The database notices the dead connection as soon as the kernel closes it.
    for _ in range(20):
        after = envfence("web-prod-02", b, "run", "hold")
        if after.returncode != 3:
            break
        time.sleep(0.25)
    assert after.returncode == 0, after.stderr


def test_status_compare_on_a_laptop_shows_production_runs_from_the_vms(hosts, store_db):
    assert envfence("web-prod-01", hosts["web-prod-01"], "run", "ok").returncode == 0
    assert envfence("web-prod-02", hosts["web-prod-02"], "run", "ok").returncode == 0
    assert envfence("laptop-dev-01", hosts["laptop-dev-01"], "run", "ok").returncode == 0
    # The laptop reads production through a role that may only SELECT.
    reader = {"PROD_STORE_URL": store_db.reader}
    compared = envfence("laptop-dev-01", hosts["laptop-dev-01"], "status", "--compare", "--json", **reader)
    assert compared.returncode == 0, compared.stderr
    rows = {(r["automation"], r["environment"]): r for r in json.loads(compared.stdout)["automations"]}
    assert rows[("ok", "production")]["runs"] == 2 and rows[("ok", "development")]["runs"] == 1
    # The laptop never ran in production: its own tree holds no production history.
    assert not (hosts["laptop-dev-01"] / "var" / "production").exists()
    text = envfence("laptop-dev-01", hosts["laptop-dev-01"], "status", "--compare", **reader)
    assert "production" in text.stdout and "development" in text.stdout
    assert READER_PASSWORD not in text.stdout + text.stderr and OTHER_PASSWORD not in text.stdout + text.stderr


def test_a_threshold_crossed_on_both_hosts_opens_one_incident_and_sends_one_alert(hosts):
    first = envfence("web-prod-01", hosts["web-prod-01"], "run", "heavy")
    second = envfence("web-prod-02", hosts["web-prod-02"], "run", "heavy")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    alerts = [line for line in (first.stderr + second.stderr).splitlines() if line.startswith("envfence: ALERT")]
    assert len(alerts) == 1 and "production heavy max_memory" in alerts[0]
    shown = envfence("web-prod-02", hosts["web-prod-02"], "alerts", "show", "--json")
    assert list(json.loads(shown.stdout)["incidents"]) == ["heavy:max_memory"]
