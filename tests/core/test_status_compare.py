"""status --compare: each automation across environments, and what stands out."""

from __future__ import annotations

import json

JOBS = '''
import time

def flaky(ctx):
    if ctx.config.get("FAIL") == "yes":
        raise RuntimeError("the export was rejected")

def napper(ctx):
    time.sleep(float(ctx.config.get("NAP", "0")))
'''
SETTINGS = '[automations]\nflaky = "jobs:flaky"\nnapper = "jobs:napper"\n'


def runs(run_cli, root, env, name, times, *sets):
    for _ in range(times):
        args = ["--env", env, *[a for s in sets for a in ("--set", s)], "run", name]
        host = "web-prod-01" if env == "production" else "build-box-01"
        assert run_cli(*args, cwd=root, env={"ENVFENCE_HOSTNAME": host}).exit_code in (0, 1)


def test_compare_reports_each_environment_and_shared_failures(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    runs(run_cli, root, "development", "flaky", 3)
    runs(run_cli, root, "development", "flaky", 1, "FAIL=yes")
    runs(run_cli, root, "production", "flaky", 1, "FAIL=yes")
    runs(run_cli, root, "production", "flaky", 1)
    result = run_cli("status", "--compare", "--json", cwd=root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["environments"] == ["development", "production"]
    rows = {(r["automation"], r["environment"]): r for r in data["automations"]}
    assert (rows[("flaky", "development")]["runs"], rows[("flaky", "development")]["failed"]) == (4, 1)
    assert rows[("flaky", "production")]["error_rate"] == 0.5
    assert rows[("flaky", "production")]["last_status"] == "succeeded"
    assert "flaky fails in development and production: look for a cause they share" in data["notes"]


def test_compare_flags_a_run_far_slower_than_its_environments_median(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    runs(run_cli, root, "development", "napper", 3)
    runs(run_cli, root, "development", "napper", 1, "NAP=0.3")
    out = run_cli("status", "--compare", cwd=root).stdout
    assert "napper               development     4 run(s)  0 failed (0%)" in out
    assert "note: napper in development: the latest run took 0.3" in out
    # Production has no runs of its own: no row, no note.
    assert "production" not in out


def test_compare_with_no_runs(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    assert run_cli("status", "--compare", cwd=root).stdout.strip() == "no runs recorded in any environment"


def test_compare_puts_business_metrics_side_by_side_and_names_what_sets_environments_apart(make_project, run_cli):
    jobs = JOBS + '''
def sync(ctx):
    time.sleep(float(ctx.config.get("NAP", "0")))
    ctx.metric("records_synced", int(ctx.config.get("N", "5")), unit="records")
    if ctx.config.get("FAIL") == "yes":
        raise ConnectionError("the vendor hung up")
'''
    root = make_project({"jobs.py": jobs}, settings=SETTINGS + 'sync = "jobs:sync"\n')
    runs(run_cli, root, "development", "sync", 3, "NAP=0.05", "N=10")
    runs(run_cli, root, "development", "sync", 1, "FAIL=yes")
    runs(run_cli, root, "production", "sync", 3, "NAP=0.5", "N=400")
    runs(run_cli, root, "production", "sync", 1, "FAIL=yes")
    data = json.loads(run_cli("status", "--compare", "--json", cwd=root).stdout)
    rows = {(r["automation"], r["environment"]): r for r in data["automations"]}
    assert rows[("sync", "development")]["business"] == {"records_synced": 10}
    assert rows[("sync", "production")]["business"] == {"records_synced": 400}
    assert "sync fails with network errors in development and production" in data["notes"]
    slower = [n for n in data["notes"] if n.startswith("sync is ") and "slower in production than in development" in n]
    assert slower, data["notes"]
    text = run_cli("status", "--compare", cwd=root).stdout
    assert "[records_synced 400]" in text and "note: sync fails with network errors in development and production" in text
