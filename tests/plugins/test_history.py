"""Run history in SQLite per environment, shown by `envfence status` and `envfence list`."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

CANARY = "canary-history-Pq4Rz8Tn2"

SETTINGS = """
[automations.ok]
run = "jobs:ok"
description = "Always works"
schedule = { development = "*/10 * * * *", production = "5 3 * * *" }

[automations.bad]
run = "jobs:bad"
"""

JOBS = '''
def ok(ctx):
    ctx.say("fine")

def bad(ctx):
    raise RuntimeError("broken " + ctx.credential("API_KEY").reveal())
'''


@pytest.fixture
def project(make_project):
    return make_project({"jobs.py": JOBS, ".env": f"DEV_API_KEY={CANARY}\nPROD_API_KEY={CANARY}-prod\n"}, settings=SETTINGS)


def rows(project, env="development"):
    db = sqlite3.connect(project / "var" / env / "history.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started_at")]
    finally:
        db.close()


def test_history_records_success_failure_and_forced_runs(project, run_cli):
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert run_cli("run", "bad", cwd=project).exit_code == 1
    forced = run_cli(
        "--env", "development", "run", "ok", "--force", "--reason", "testing on prod box",
        cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"},
    )
    assert forced.exit_code == 0, forced.output
    ok, bad, forced_row = rows(project)
    assert ok["status"] == "succeeded" and ok["exit_code"] == 0 and ok["forced"] == 0 and ok["error_class"] is None
    assert ok["environment"] == "development" and ok["host"] == "build-box-01"
    assert ok["duration"] >= 0 and ok["cpu_seconds"] is not None and ok["peak_memory_kb"] > 0
    assert ok["run_id"].startswith("run-") and ok["finished_at"] >= ok["started_at"]
    assert bad["status"] == "failed" and bad["exit_code"] == 1 and bad["error_class"] == "bug"
    assert bad["error_id"].startswith("E")
    assert forced_row["forced"] == 1 and forced_row["reason"] == "testing on prod box"
    assert forced_row["host"] == "web-prod-01"


def test_each_environment_keeps_its_own_history(project, run_cli):
    run_cli("run", "ok", cwd=project)
    run_cli("--env", "production", "run", "ok", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    run_cli("--env", "production", "run", "ok", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    assert len(rows(project, "development")) == 1
    assert len(rows(project, "production")) == 2
    data = json.loads(run_cli("--env", "production", "status", "--json", cwd=project).stdout)
    assert data["environment"] == "production" and len(data["runs"]) == 2


def test_status_shows_runs_newest_first_and_error_rates(project, run_cli):
    for name in ("ok", "bad", "ok", "bad", "bad"):
        run_cli("run", name, cwd=project)
    result = run_cli("status", cwd=project)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "bad" in lines[1] and "failed" in lines[1]  # newest first, after the heading
    assert "bad                  3/3 failed (100%)" in result.stdout
    assert "ok                   0/2 failed (0%)" in result.stdout
    data = json.loads(run_cli("--json", "status", "--automation", "bad", "--limit", "2", cwd=project).stdout)
    assert [r["automation"] for r in data["runs"]] == ["bad", "bad"]
    assert data["error_rates"] == {"bad": {"runs": 2, "failed": 2, "error_rate": 1.0}}
    assert CANARY not in result.output


def test_status_without_runs_says_so_and_creates_nothing(project, run_cli):
    result = run_cli("status", cwd=project)
    assert result.exit_code == 0
    assert "no runs recorded in development" in result.stdout
    assert not (project / "var").exists()


def test_status_without_the_history_plugin_explains(project, run_cli):
    result = run_cli("-p", "no:history", "status", cwd=project)
    assert result.exit_code == 1
    assert "history" in result.output


def test_list_shows_description_environments_last_run_and_next_time(project, run_cli):
    run_cli("run", "ok", cwd=project)
    data = json.loads(run_cli("list", "--json", cwd=project).stdout)
    ok = next(a for a in data["automations"] if a["name"] == "ok")
    assert ok["description"] == "Always works"
    assert ok["environments"] == ["*"] and ok["allowed_here"] is True
    assert ok["schedule"] == "*/10 * * * *"
    assert ok["next_run"].endswith(("0:00+00:00",))  # a multiple of ten minutes
    assert ok["last_run"]["status"] == "succeeded"
    bad = next(a for a in data["automations"] if a["name"] == "bad")
    assert bad["last_run"] is None and bad["schedule"] is None
    prod = json.loads(run_cli("--env", "production", "list", "--json", cwd=project).stdout)
    ok_prod = next(a for a in prod["automations"] if a["name"] == "ok")
    assert ok_prod["schedule"] == "5 3 * * *" and ok_prod["last_run"] is None
    text = run_cli("-v", "list", cwd=project).stdout
    assert "last run:" in text and "schedule:     */10 * * * *" in text


def test_dry_run_leaves_no_history(project, run_cli):
    run_cli("run", "ok", "--dry-run", cwd=project)
    assert "no runs recorded" in run_cli("status", cwd=project).stdout


def test_status_in_production_is_terse(project, run_cli):
    """The monitoring form: one key=value line per automation (tests/e2e/test_adapted_cli.py has the rest)."""
    run_cli("--env", "production", "run", "ok", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    lines = run_cli("--env", "production", "status", cwd=project).stdout.splitlines()
    assert len(lines) == 1 and not any(line.startswith("#") or not line.strip() for line in lines)
    assert lines[0].startswith("ok state=ok last=succeeded@") and "runs=1 failed=0 error_rate=0%" in lines[0]


def test_list_in_production_is_one_line_per_automation(project, run_cli):
    run_cli("--env", "production", "run", "ok", cwd=project, env={"ENVFENCE_HOSTNAME": "web-prod-01"})
    lines = run_cli("--env", "production", "list", cwd=project).stdout.splitlines()
    assert len(lines) == 2
    ok = next(line for line in lines if line.startswith("ok "))
    assert "environments=* allowed=true last=succeeded@" in ok and ok.endswith(":05Z")  # 5 3 * * *
    assert "last=never next=unscheduled" in next(line for line in lines if line.startswith("bad "))


# --- a damaged history, paths, the store's running rows --------------------------


def _history(project, env="development"):
    return project / "var" / env / "history.sqlite3"


@pytest.mark.parametrize("damage", ["garbage", "directory", "truncated"])
def test_a_damaged_history_is_moved_aside_and_a_fresh_one_keeps_the_next_run(project, run_cli, damage):
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    path = _history(project)
    if damage == "garbage":
        path.write_bytes(b"this is not a database\n" * 40)
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(path.read_bytes()[:100])  # the header survives, the pages are gone
    for command in (["status"], ["list"], ["status", "--compare"]):
        result = run_cli(*command, cwd=project)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
    moved = [p for p in path.parent.iterdir() if p.name.startswith("history.sqlite3.corrupt-")]
    assert len(moved) == 1  # kept for whoever needs its rows, never deleted
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert [r["status"] for r in rows(project)] == ["succeeded"]


def test_moving_a_damaged_history_aside_is_an_audit_event(project, run_cli, recorded):
    import envfence

    run_cli("run", "ok", cwd=project)
    _history(project).write_bytes(b"junk" * 100)
    session = envfence.open_session(root=project, plugins=recorded.plugins)
    assert session.plugins.run_history(session=session, automation=None, limit=5).first == []
    (event,) = [e for e in recorded.events if e.event == "history.moved_aside"]
    assert event.data["file"] == "var/development/history.sqlite3" and "corrupt-" in event.data["moved_to"]


def test_status_names_the_moved_file_and_check_reports_damage_first(project, run_cli):
    run_cli("run", "ok", cwd=project)
    _history(project).write_bytes(b"\0" * 4096)
    check = run_cli("check", cwd=project)
    assert "HISTORY_CORRUPT" in check.output or "not a SQLite database" in check.output
    assert _history(project).read_bytes() == b"\0" * 4096  # check moves nothing
    status = run_cli("status", cwd=project)
    assert "var/development/history.sqlite3 was not a SQLite database" in status.stderr
    assert "moved aside to var/development/history.sqlite3.corrupt-" in status.stderr


def test_a_run_whose_history_was_damaged_meanwhile_is_still_recorded(project, run_cli, monkeypatch):
    from envfence_builtins.runs import history

    run_cli("run", "ok", cwd=project)
    real = history._open
    calls = []

    def damage_then_open(session, write):
        if write and not calls:
            calls.append(1)
            _history(project).write_bytes(_history(project).read_bytes()[:100])
        return real(session, write)

    monkeypatch.setattr(history, "_is_database", lambda path: True)  # the damage is only seen on writing
    monkeypatch.setattr(history, "_open", damage_then_open)
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert [r["status"] for r in rows(project)] == ["succeeded"]


@pytest.mark.parametrize("value", ['"../../../x"', '"/tmp/history.sqlite3"', "5"])
def test_a_history_file_outside_the_tree_or_of_the_wrong_type_is_refused_before_the_run(make_project, run_cli, value):
    root = make_project({"jobs.py": "def ok(ctx):\n    open('ran', 'w').close()\n"}, settings=f'[automations]\nok = "jobs:ok"\n[history]\nfile = {value}\n')
    check = run_cli("check", cwd=root)
    inside = "history.file must be a path inside the environment's tree" in check.output
    assert check.exit_code == 1 and (inside or (value == "5" and "history.file: must be a non-empty string, not 5" in check.output))
    assert "envfence.toml" in check.output
    result = run_cli("run", "ok", cwd=root)
    assert result.exit_code == 4, result.output
    assert "history.file" in result.output and "internal error" not in result.output
    assert not (root / "ran").exists()


def test_history_is_indexed_by_environment_and_start(project, run_cli):
    run_cli("run", "ok", cwd=project)
    db = sqlite3.connect(_history(project))
    plan = " ".join(str(r) for r in db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE environment = 'development' ORDER BY started_at DESC LIMIT 5"
    ))
    db.close()
    assert "runs_by_environment" in plan


def test_status_and_list_read_through_indexes_never_the_whole_history(project, run_cli, monkeypatch):
    """A history of a million runs must cost status and list what ten runs cost: no query walks every row."""
    run_cli("run", "ok", cwd=project)
    real_connect = sqlite3.connect
    statements: list[str] = []

    def tracing(*args, **kwargs):
        db = real_connect(*args, **kwargs)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", tracing)
    assert run_cli("status", cwd=project).exit_code == 0
    assert run_cli("list", cwd=project).exit_code == 0
    monkeypatch.undo()
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM runs" in s]
    assert any("'running'" in s for s in reads) and any("automation = " in s for s in reads)
    db = real_connect(_history(project))
    try:
        for statement in reads:
            plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + statement))
            assert "SCAN runs" not in plan, (statement, plan)
            if "'running'" in statement:  # the few running rows, not every row of the environment
                assert "runs_running" in plan, plan
            if "automation = " in statement:  # the automation's newest runs, not the environment's until one matches
                assert "environment=? AND automation=?" in plan, plan
    finally:
        db.close()


def _session(project, env="development"):
    import envfence

    session = envfence.open_session(root=project, env=env)
    session.prepare()
    return session


def _outcome(run_id, status="succeeded", code=0):
    import datetime as dt

    from envfence.models import RunOutcome

    now = dt.datetime.now(dt.timezone.utc)
    return RunOutcome(run_id, "ok", "development", status, code, now, now + dt.timedelta(seconds=1))


def test_a_run_recorded_at_its_start_is_finished_in_place(project):
    import datetime as dt

    from envfence_builtins.runs import history

    session = _session(project)
    history.record_start(session, "run-1", "ok", dt.datetime.now(dt.timezone.utc))
    (running,) = rows(project)
    assert running["status"] == "running" and running["pid"] == os.getpid() and running["host"] == session.host.hostname
    assert history.find_abandoned(session) == []  # its process (this one) is alive
    history.record_finish(session, _outcome("run-1"))
    (finished,) = rows(project)
    assert finished["status"] == "succeeded" and finished["exit_code"] == 0 and finished["pid"] == os.getpid()


def test_a_run_whose_process_died_is_marked_abandoned_by_status_with_an_audit_event(project, run_cli, recorded):
    import datetime as dt
    import subprocess

    from envfence_builtins.runs import history

    dead = subprocess.Popen(["true"])
    dead.wait()
    session = _session(project)
    history.record_start(session, "run-dead", "ok", dt.datetime.now(dt.timezone.utc), pid=dead.pid)
    history.record_start(session, "run-elsewhere", "ok", dt.datetime.now(dt.timezone.utc), pid=dead.pid, host="other-host")
    result = run_cli("--json", "status", cwd=project)
    by_id = {r["run_id"]: r["status"] for r in json.loads(result.stdout)["runs"]}
    assert by_id == {"run-dead": "abandoned", "run-elsewhere": "running"}  # another host's pid says nothing here
    assert history.reap_abandoned(_session(project)) == []  # marked once
    history.record_start(session, "run-dead-2", "ok", dt.datetime.now(dt.timezone.utc), pid=dead.pid)
    import envfence

    listing = envfence.open_session(root=project, plugins=recorded.plugins)
    listing.plugins.run_history(session=listing, automation="ok", limit=1)  # what `envfence list` asks
    (event,) = [e for e in recorded.events if e.event == "run.abandoned"]
    assert event.data["run_id"] == "run-dead-2" and event.data["pid"] == dead.pid


def test_a_running_row_whose_lock_is_held_is_not_abandoned(project):
    import datetime as dt
    import fcntl
    import subprocess

    from envfence import files
    from envfence_builtins.runs import history

    dead = subprocess.Popen(["true"])
    dead.wait()
    session = _session(project)
    history.record_start(session, "run-held", "ok", dt.datetime.now(dt.timezone.utc), pid=dead.pid)
    lock = files.open_lock(session.paths, "ok")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        assert history.find_abandoned(session) == []
    finally:
        lock.close()
    assert [r["run_id"] for r in history.find_abandoned(session)] == ["run-held"]


def test_a_history_written_before_runs_had_a_pid_is_read_and_upgraded(project, run_cli):
    path = _history(project)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, automation TEXT NOT NULL, environment TEXT NOT NULL, host TEXT,"
        " started_at TEXT NOT NULL, finished_at TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER NOT NULL,"
        " error_class TEXT, error_id TEXT, duration REAL, cpu_seconds REAL, peak_memory_kb INTEGER,"
        " forced INTEGER NOT NULL DEFAULT 0, reason TEXT);"
        "INSERT INTO runs VALUES ('run-old', 'ok', 'development', 'build-box-01', '2026-01-01T00:00:00+00:00',"
        " '2026-01-01T00:00:01+00:00', 'succeeded', 0, NULL, NULL, 1.0, 0.1, 100, 0, NULL);"
    )
    db.close()
    data = json.loads(run_cli("--json", "status", cwd=project).stdout)
    assert [r["run_id"] for r in data["runs"]] == ["run-old"]
    assert run_cli("run", "ok", cwd=project).exit_code == 0
    assert [(r["run_id"] == "run-old", r["pid"]) for r in rows(project)][0] == (True, None)
    assert len(rows(project)) == 2
