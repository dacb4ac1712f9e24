"""Upgrades: a tree written by an earlier release opens, keeps what it holds, and is migrated forward.

The old stores are built here from the schemas those releases wrote (copied
from the project's git history: the first run history, before runs kept their
pid and measures; the history and the queue of the release before schema
versions were kept, whose ``user_version`` is 0; the first webhook queue,
whose event ids were unique per route only). A store written by a later
release is refused and left byte for byte.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n"
SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n'

#: The run history of the first releases (git 6987fcd^, plugins' history.py): no pid, no measures.
FIRST_HISTORY = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, automation TEXT NOT NULL, environment TEXT NOT NULL, host TEXT,
    started_at TEXT NOT NULL, finished_at TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER NOT NULL,
    error_class TEXT, error_id TEXT, duration REAL, cpu_seconds REAL, peak_memory_kb INTEGER,
    forced INTEGER NOT NULL DEFAULT 0, reason TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_automation ON runs (automation, started_at);
"""
#: The run history of the release before versions were kept (git de30e43): pid and measures, user_version 0.
PREVIOUS_HISTORY = FIRST_HISTORY.replace("reason TEXT\n", "reason TEXT, pid INTEGER, measures TEXT\n")
#: The first webhook queue (git 24b2b09^): an event id unique per route.
FIRST_QUEUE = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, route TEXT NOT NULL, event_id TEXT NOT NULL, provider TEXT NOT NULL,
    event_type TEXT, automation TEXT NOT NULL, payload BLOB NOT NULL, headers TEXT NOT NULL, received_at REAL NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, next_attempt_at REAL NOT NULL,
    claimed_by TEXT, run_id TEXT, last_error TEXT, finished_at REAL, UNIQUE (route, event_id)
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);
"""
#: The release before versions were kept: ids unique in the environment.
PREVIOUS_QUEUE = FIRST_QUEUE.replace("UNIQUE (route, event_id)", "UNIQUE (event_id)").replace(
    "CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id);\n", "")


def old_tree(root, run_cli, history_schema: str, queue_schema: str):
    """A tree as the earlier release left it: its audit trail, its run, its history and queue in that release's schema."""
    assert run_cli("run", "ok", cwd=root).exit_code == 0  # the trail and one run, as any release writes them
    tree = root / "var" / "development"
    path = tree / "history.sqlite3"
    current = sqlite3.connect(path)
    kept = current.execute("SELECT run_id, automation, environment, host, started_at, finished_at, status, exit_code, "
                           "duration, forced FROM runs").fetchall()
    current.close()
    path.unlink()
    db = sqlite3.connect(path)
    db.executescript(history_schema)
    db.executemany("INSERT INTO runs (run_id, automation, environment, host, started_at, finished_at, status, exit_code,"
                   " duration, forced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", kept)
    db.commit()
    db.close()
    (tree / "queue").mkdir(exist_ok=True)
    q = sqlite3.connect(tree / "queue" / "webhooks.sqlite3")
    q.executescript(queue_schema)
    q.execute("INSERT INTO events (route, event_id, provider, event_type, automation, payload, headers, received_at, status,"
              " max_attempts, next_attempt_at) VALUES ('/orders', 'evt_old_1', 'standard', 'order.created', 'ok', X'7b7d', '{}',"
              " 1767322800, 'pending', 5, 1767322800)")
    q.commit()
    q.close()
    return tree, kept[0][0]


def user_version(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("history, queue", [(FIRST_HISTORY, FIRST_QUEUE), (PREVIOUS_HISTORY, PREVIOUS_QUEUE)],
                         ids=["first-release", "previous-release"])
def test_a_tree_written_by_an_earlier_release_opens_and_is_migrated_forward(make_project, run_cli, history, queue):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    tree, first = old_tree(root, run_cli, history, queue)
    assert user_version(tree / "history.sqlite3") == 0
    before = json.loads(run_cli("--json", "status", cwd=root).stdout)["runs"]
    assert [r["run_id"] for r in before] == [first]  # readable before anything is written
    ran = run_cli("run", "ok", cwd=root)
    assert ran.exit_code == 0, ran.output
    runs = json.loads(run_cli("--json", "status", cwd=root).stdout)["runs"]
    assert [r["run_id"] for r in runs][1:] == [first] and runs[0]["status"] == "succeeded"
    assert user_version(tree / "history.sqlite3") == 1
    db = sqlite3.connect(tree / "history.sqlite3")
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    indexes = {row[1] for row in db.execute("PRAGMA index_list(runs)")}
    db.close()
    assert {"pid", "measures"} <= columns and {"runs_by_environment", "runs_running"} <= indexes
    shown = run_cli("--json", "queue", "list", cwd=root)
    listed = json.loads(shown.stdout)
    assert "events" in listed, shown.output
    assert [(e["id"], e["status"]) for e in listed["events"]] == [("evt_old_1", "pending")]
    assert user_version(tree / "queue" / "webhooks.sqlite3") == 1
    verified = run_cli("audit", "verify", cwd=root)
    assert verified.exit_code == 0, verified.output


def test_a_store_written_by_a_later_release_is_refused_and_left_as_it_is(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    tree, _ = old_tree(root, run_cli, PREVIOUS_HISTORY, PREVIOUS_QUEUE)
    for path in (tree / "history.sqlite3", tree / "queue" / "webhooks.sqlite3"):
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 7")
        db.commit()
        db.close()
    kept = {p: p.read_bytes() for p in (tree / "history.sqlite3", tree / "queue" / "webhooks.sqlite3")}
    status = run_cli("status", cwd=root)
    assert status.exit_code != 0 and "schema version 7, written by a newer envfence" in status.stderr
    assert "Traceback" not in status.output
    ran = run_cli("run", "ok", cwd=root)
    assert ran.exit_code != 0 and "written by a newer envfence" in ran.stderr and "Traceback" not in ran.output
    listed = run_cli("queue", "list", cwd=root)
    assert listed.exit_code != 0 and "webhooks.sqlite3 has schema version 7" in listed.stderr
    assert {p: p.read_bytes() for p in kept} == kept


def test_migrating_is_one_transaction_per_step(tmp_path):
    from envfence.sqlite_schema import upgrade

    db = sqlite3.connect(tmp_path / "s.sqlite3")

    def broken(db):
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        upgrade(db, (("CREATE TABLE one (x)",), broken), "s.sqlite3")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"one"} and db.execute("PRAGMA user_version").fetchone()[0] == 1  # step 1 kept, step 2 not half-done
    assert upgrade(db, (("CREATE TABLE one (x)",), ("CREATE TABLE two (x)",)), "s.sqlite3") == 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
