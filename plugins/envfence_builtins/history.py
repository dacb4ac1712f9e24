"""Each environment's run history, in SQLite inside the environment's own tree.

One row per run that started (blocked runs and dry runs leave no row: the
audit trail records the first, the second writes nothing): run id,
automation, environment, host, start, end, status, exit code, error class and
id, duration, CPU time, peak memory, whether it was forced and why. The file
is ``<environment tree>/history.sqlite3``, or ``[history] file`` relative to
the tree.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from envfence import hookimpl

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    automation TEXT NOT NULL,
    environment TEXT NOT NULL,
    host TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    error_class TEXT,
    error_id TEXT,
    duration REAL,
    cpu_seconds REAL,
    peak_memory_kb INTEGER,
    forced INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_automation ON runs (automation, started_at);
"""
_COLUMNS = (
    "run_id", "automation", "environment", "host", "started_at", "finished_at", "status", "exit_code",
    "error_class", "error_id", "duration", "cpu_seconds", "peak_memory_kb", "forced", "reason",
)


def history_file(session) -> Path | None:
    """Where the environment's history lives, or None without an environment tree."""
    paths = session.paths
    if paths is None:
        return None
    name = session.settings.section("history").get("file", "history.sqlite3")
    return paths.base / name


def _connect(path: Path, create: bool):
    import sqlite3

    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=10)
        db.executescript(_SCHEMA)
        return db
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)


@hookimpl
def on_run_finish(session, request, outcome) -> None:
    """Record the run (never for a dry-run session)."""
    path = history_file(session)
    if path is None or session.dry_run:
        return
    metrics = outcome.metrics
    row = (
        outcome.run_id, outcome.automation, outcome.environment, metrics.get("host", session.host.hostname),
        outcome.started_at.isoformat(), outcome.finished_at.isoformat(), outcome.status, outcome.exit_code,
        outcome.error_class, outcome.error_id, outcome.duration, metrics.get("cpu_seconds"),
        metrics.get("peak_memory_kb"), int(outcome.forced), outcome.reason or None,
    )
    db = _connect(path, create=True)
    try:
        with db:
            db.execute(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", row)
    finally:
        db.close()


@hookimpl
def run_history(session, automation, limit):
    """The environment's runs, newest first; an empty list when none was recorded."""
    from envfence.models import RunOutcome

    path = history_file(session)
    if path is None:
        return None
    if not path.exists():
        return []
    query = f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE environment = ?"
    args: list = [session.environment.name]
    if automation:
        query += " AND automation = ?"
        args.append(automation)
    query += " ORDER BY started_at DESC LIMIT ?"
    args.append(int(limit))
    db = _connect(path, create=False)
    try:
        rows = db.execute(query, args).fetchall()
    finally:
        db.close()
    runs = []
    for values in rows:
        r = dict(zip(_COLUMNS, values))
        runs.append(
            RunOutcome(
                run_id=r["run_id"],
                automation=r["automation"],
                environment=r["environment"],
                status=r["status"],
                exit_code=r["exit_code"],
                started_at=_dt.datetime.fromisoformat(r["started_at"]),
                finished_at=_dt.datetime.fromisoformat(r["finished_at"]),
                error_class=r["error_class"],
                error_id=r["error_id"],
                forced=bool(r["forced"]),
                reason=r["reason"],
                metrics={"host": r["host"], "cpu_seconds": r["cpu_seconds"], "peak_memory_kb": r["peak_memory_kb"]},
            )
        )
    return runs
