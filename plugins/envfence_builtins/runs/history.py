"""Each environment's run history, in SQLite inside the environment's own tree.

One row per run that started (blocked runs and dry runs leave no row: the
audit trail records the first, the second writes nothing): run id,
automation, environment, host, pid, start, end, status, exit code, error class
and id, duration, CPU time, peak memory, whether it was forced and why. The
file is ``<environment tree>/history.sqlite3``, or ``[history] file`` relative
to the tree (a path inside it: ``..`` and absolute paths are refused).

A run can be recorded when it starts (:func:`record_start`, status
``running`` with its pid and host, ``on_run_start``) and finished in place
(:func:`record_finish`, ``on_run_finish``). A ``running`` row of this host whose
process is gone and whose lock is free was abandoned (the process was killed):
:func:`reap_abandoned` marks it so, with a ``run.abandoned`` audit event;
a run does it before it takes its lock (``reap_abandoned_runs``), ``status``
and ``list`` before they read.

A history file that is not a SQLite database (damaged, or a directory in its
place) is moved aside to ``<file>.corrupt-<time>`` with a warning and a
``history.moved_aside`` audit event, and a fresh one is started: reading
never crashes, and the run being recorded is not lost.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from envfence import files, hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding
from envfence.recent import per_settings
from envfence.runs.measures import measures_from, measures_json

DEFAULT_FILE = "history.sqlite3"


def _history_table():
    from envfence.settings_kinds import text
    from envfence.settings_tables import Table

    table = Table("history", "the run history (SQLite, in the environment's tree)")
    table.add("file", text(example=DEFAULT_FILE), DEFAULT_FILE, "the history file, relative to the environment's tree")
    return table


#: ``[history]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _history_table()


@hookimpl
def declare_tables():
    """The ``[history]`` table."""
    return [TABLE]
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
    reason TEXT,
    measures TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_environment ON runs (environment, started_at);
CREATE INDEX IF NOT EXISTS runs_by_environment_automation ON runs (environment, automation, started_at);
CREATE INDEX IF NOT EXISTS runs_running ON runs (environment) WHERE status = 'running';
"""
_COLUMNS = (
    "run_id", "automation", "environment", "host", "started_at", "finished_at", "status", "exit_code",
    "error_class", "error_id", "duration", "cpu_seconds", "peak_memory_kb", "forced", "reason", "measures",
)


def _baseline(db) -> None:
    """Migration 1: any earlier release's history (no version kept) gets the columns and indexes of this schema."""
    from envfence.sqlite_schema import columns, statements

    for statement in statements(_SCHEMA):
        db.execute(statement)
    present = columns(db, "runs")
    for name, kind in (("pid", "INTEGER"), ("measures", "TEXT")):  # added by releases before versions were kept
        if name not in present:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


#: The history's migrations (``PRAGMA user_version`` counts those applied; see :mod:`envfence.sqlite_schema`).
#: A later schema change is one more entry: statements or a function, never an edit of one already released.
MIGRATIONS = (_baseline,)
#: Status of a run recorded at its start and not finished yet.
RUNNING = "running"
#: Status of a run whose process died before it finished.
ABANDONED = "abandoned"
#: Exit code stored for a run with no exit code (running, abandoned).
NO_EXIT = -1


@per_settings
def history_setting(settings) -> str:
    """``[history] file``, checked: a relative path inside the environment's tree.

    :raises ConfigurationError: not a string, or a path that leaves the tree.
    """
    name = TABLE.read(settings)["file"]
    if not files.inside(Path("/tree"), name):
        raise ConfigurationError(
            f"{settings.source}: history.file must be a path inside the environment's tree, not {name!r}",
            f'e.g. file = "{DEFAULT_FILE}" (relative to the tree, no absolute path, no "..")',
        )
    return name


def history_file(session) -> Path | None:
    """Where the environment's history lives, or None without an environment tree."""
    paths = session.paths
    if paths is None:
        return None
    return paths.base / history_setting(session.settings)


@hookimpl(optionalhook=True)
def history_has_runs(session) -> bool:
    """Whether the history shows any run of this environment (the ``audit`` plugin's hook); False when there is none.

    The database is opened read-only and only queried: reading it through the
    ``run_history`` hook would mark abandoned runs, which audits, which appends.
    """
    import sqlite3

    try:
        path = history_file(session)
        if path is None or files.check_file(session.paths, path) not in (None, "hard link") or not path.is_file():
            return False
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            row = db.execute("SELECT 1 FROM runs WHERE environment = ? LIMIT 1", (session.environment.name,)).fetchone()
        finally:
            db.close()
    except (OSError, sqlite3.Error, ConfigurationError):  # no file, or a damaged one: validate reports that
        return False
    return row is not None


@hookimpl(optionalhook=True)
def local_runs(session) -> list[dict] | None:
    """The environment's finished runs, one row each, for ``envfence store import`` (the ``store`` plugin's hook)."""
    import sqlite3

    path = history_file(session)
    if path is None:
        return None
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM runs WHERE environment = ?", (session.environment.name,))]
    finally:
        db.close()
    finished = [r for r in rows if r.get("status") != "running"]  # a run still going is imported once it ends
    for row in finished:
        row["forced"] = bool(row.get("forced"))
    return finished


@hookimpl
def validate(session) -> list[Finding]:
    """A ``[history] file`` that is no path inside the tree, a link, or no SQLite database."""
    try:
        path = history_file(session)
    except ConfigurationError as exc:
        return [Finding("HISTORY_FILE", "error", exc.message, exc.hint, key="history.file", plugin="history")]
    if path is None:
        return []
    problem = files.check_file(session.paths, path)
    shown = _shown(session, path)
    if problem == "symlink":
        return [Finding(
            "HISTORY_FILE", "error", f"{shown} (or a directory on the way) is a symlink; history is written only inside the tree",
            f"remove the link ({shown}); a fresh history is started", key="history.file", plugin="history",
        )]
    if problem == "hard link":
        return [Finding(
            "HISTORY_FILE", "error", f"{shown} has other hard links: writing it would change another file (another environment's history?)",
            f"give {shown} a content of its own (copy it, then move the copy over it), or remove it", key="history.file", plugin="history",
        )]
    if problem is None and path.exists() and not _is_database(path):
        problem = "not a database"
    if problem:
        return [Finding(
            "HISTORY_CORRUPT", session.profile.escalate("warning"),
            f"{shown} is not a SQLite database ({problem})",
            "the next run or `envfence status` moves it aside and starts a fresh history; keep the moved file if you need its rows",
            key="history.file", plugin="history",
        )]
    return []


@hookimpl
def prepare_environment(session, paths) -> list[Finding]:
    """Refuse a wrong ``[history] file`` before anything runs (a run would otherwise lose its row at the end).

    So is a history file reached through a link or sharing its content
    through a hard link: the run's row would land in another file.
    """
    history_setting(session.settings)
    path = history_file(session)
    if path is not None and files.check_file(paths, path) in ("symlink", "hard link"):
        files.ensure_file(paths, path)  # raises the SafetyError naming the file
    return []


def _shown(session, path: Path) -> str:
    root = session.root.path
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _is_database(path: Path) -> bool:
    import sqlite3

    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header and the schema only
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False
    return True


def _move_aside(session, path: Path, why: str) -> Path:
    """Move a damaged history file aside (a warning and an audit event) so a fresh one can start."""
    import click

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = files.move_aside(session.paths, path, f"corrupt-{stamp}")
    shown, kept = _shown(session, path), _shown(session, aside)
    click.echo(f"envfence: warning: {shown} was not a SQLite database ({why}); moved aside to {kept}, a fresh history starts", err=True)
    session.audit("history.moved_aside", file=shown, moved_to=kept, reason=why)
    return aside


def _open(session, write: bool):
    """A connection to the history (created with ``write``), or None when there is none to read.

    A damaged file is moved aside first. The file is checked and created
    through :mod:`envfence.files`, so SQLite never opens a link.
    """
    import sqlite3

    path = history_file(session)
    if path is None:
        return None
    problem = files.check_file(session.paths, path)
    if problem in ("symlink", "hard link"):
        files.ensure_file(session.paths, path)  # raises the clear SafetyError naming the link
    for side in ("-journal", "-wal", "-shm"):  # SQLite's own files beside it, opened by name as well
        if files.check_file(session.paths, f"{path}{side}") in ("symlink", "hard link"):
            files.ensure_file(session.paths, f"{path}{side}")
    if problem == "not a file" or (problem is None and path.exists() and not _is_database(path)):
        _move_aside(session, path, "a directory or another non-file" if problem else "damaged")
    if not path.exists():
        if not write:
            return None
        dir_mode, file_mode = files.profile_modes(session.profile)
        files.ensure_file(session.paths, path, mode=file_mode, dir_mode=dir_mode)
    # SQLite opens by name: what it opened must be the file just checked, not a link swapped in since.
    db = files.open_by_name(session.paths, path, lambda checked: sqlite3.connect(
        checked if write else f"{checked.as_uri()}?mode=ro", uri=not write, timeout=10), lambda db: db.close())
    from envfence.sqlite_schema import check_not_newer, upgrade

    try:
        # A history from an earlier release is migrated forward when first written; one from a later release is refused.
        (upgrade if write else check_not_newer)(db, MIGRATIONS, _shown(session, path))
    except BaseException:
        db.close()
        raise
    return db


def _damaged(exc: Exception) -> bool:
    """True for SQLite's "not a database" and "malformed" errors (never for a full disk or a lock)."""
    import sqlite3

    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
    return type(exc) is sqlite3.DatabaseError


def _write(session, statement: str, args: tuple) -> int:
    """Run one write; a database found damaged meanwhile is moved aside and the write done in a fresh one.

    :raises RuntimeError: the write failed otherwise (a full disk): said on stderr too, naming the file.
    """
    import sqlite3

    import click

    for attempt in (1, 2):
        db = None
        try:
            db = _open(session, write=True)
            if db is None:
                return 0
            with db:
                return db.execute(statement, args).rowcount
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
                db = None
            if attempt == 1 and _damaged(exc):
                _move_aside(session, history_file(session), str(exc))
                continue
            shown = _shown(session, history_file(session))
            message = f"cannot record in {shown}: {exc}"
            click.echo(f"envfence: warning: {message}; the audit trail keeps the run", err=True)
            raise RuntimeError(message) from None
        finally:
            if db is not None:
                db.close()
    return 0


def _read(session, query: str, args: tuple) -> list[tuple]:
    """Rows of one query; none from a missing or empty history, and a database found damaged is moved aside."""
    import sqlite3

    db = _open(session, write=False)
    if db is None:
        return []
    try:
        return db.execute(query, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such" in str(exc):  # created, not yet written (an empty file is an empty database), or older columns
            return []
        raise
    except sqlite3.DatabaseError as exc:
        if not _damaged(exc):
            raise
        db.close()
        db = None
        _move_aside(session, history_file(session), str(exc))
        return []
    finally:
        if db is not None:
            db.close()


def record_start(session, run_id: str, automation: str, started_at: _dt.datetime, *, pid: int | None = None,
                 host: str | None = None, forced: bool = False, reason: str | None = None) -> None:
    """Record a run as ``running`` when it starts, with its pid and host; :func:`record_finish` completes the row.

    Nothing is written for a dry-run session.
    """
    if session.dry_run or session.paths is None:
        return
    stamp = started_at.isoformat()
    _write(
        session,
        "INSERT INTO runs (run_id, automation, environment, host, pid, started_at, finished_at, status, exit_code, forced, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, automation, session.environment.name, host or session.host.hostname, os.getpid() if pid is None else pid,
         stamp, stamp, RUNNING, NO_EXIT, int(forced), reason),
    )


def record_finish(session, outcome) -> None:
    """Record how a run ended: finishes its ``running`` row in place, or adds the row (never for a dry run)."""
    if session.dry_run or session.paths is None:
        return
    metrics = outcome.metrics
    row = (
        outcome.run_id, outcome.automation, outcome.environment, metrics.get("host", session.host.hostname),
        outcome.started_at.isoformat(), outcome.finished_at.isoformat(), outcome.status, outcome.exit_code,
        outcome.error_class, outcome.error_id, outcome.duration, metrics.get("cpu_seconds"),
        metrics.get("peak_memory_kb"), int(outcome.forced), outcome.reason or None, measures_json(metrics),
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "run_id")
    _write(
        session,
        f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        f" ON CONFLICT(run_id) DO UPDATE SET {updates}",
        row,
    )


def _alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _lock_free(paths, automation: str) -> bool:
    import fcntl

    path = files.lock_file(paths, automation)
    if not path.exists():
        return True
    try:
        handle = files.open_lock(paths, automation)
    except Exception:
        return False  # cannot tell: not abandoned
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        handle.close()  # releases the probe's lock
    return True


def find_abandoned(session) -> list[dict[str, Any]]:
    """``running`` rows of this host whose process is gone and whose automation's lock is free."""
    # One query; a history written before runs were recorded at their start has no pid column: no such column, no rows.
    # It reads the partial index of running rows (runs_running): without it, every status and list read every row.
    rows = _read(
        session,
        "SELECT run_id, automation, host, pid, started_at FROM runs WHERE environment = ? AND status = ?",
        (session.environment.name, RUNNING),
    )
    here = session.host.hostname
    found = []
    for run_id, automation, host, pid, started_at in rows:
        if host == here and not _alive(pid) and _lock_free(session.paths, automation):
            found.append({"run_id": run_id, "automation": automation, "host": host, "pid": pid, "started_at": started_at})
    return found


def mark_abandoned(session, run: dict[str, Any]) -> bool:
    """Mark one :func:`find_abandoned` run abandoned (finished now), with a ``run.abandoned`` audit event.

    :returns: False when the row was no longer running (another process marked or finished it).
    """
    now = _dt.datetime.now(_dt.timezone.utc).isoformat()
    changed = _write(
        session,
        "UPDATE runs SET status = ?, finished_at = ?, exit_code = ?, error_class = ? WHERE run_id = ? AND status = ?",
        (ABANDONED, now, NO_EXIT, "abandoned", run["run_id"], RUNNING),
    )
    if changed:
        session.audit("run.abandoned", automation=run["automation"], run_id=run["run_id"], pid=run["pid"], host=run["host"])
    return bool(changed)


def reap_abandoned(session) -> list[dict[str, Any]]:
    """Find and mark every abandoned run of the environment (see :func:`find_abandoned`); returns those marked."""
    if session.dry_run or session.paths is None:
        return []
    return [run for run in find_abandoned(session) if mark_abandoned(session, run)]


@hookimpl
def reap_abandoned_runs(session) -> None:
    """Mark the runs whose process died abandoned, before a run takes its lock."""
    reap_abandoned(session)


@hookimpl
def on_run_start(session, request, run_id) -> None:
    """Record the run as ``running``, with this process's pid and the host (never for a dry-run session)."""
    from envfence.models import utcnow

    record_start(session, run_id, request.automation.name, utcnow(), forced=request.force, reason=request.reason)


@hookimpl
def on_run_finish(session, request, outcome) -> None:
    """Record the run (never for a dry-run session)."""
    record_finish(session, outcome)


@hookimpl
def run_history(session, automation, limit, since):
    """The environment's runs, newest first (started at or after ``since`` when given); an empty list when none was recorded.

    Abandoned runs are marked first; a damaged history is moved aside.
    """
    from envfence.models import RunOutcome

    if history_file(session) is None:
        return None
    reap_abandoned(session)
    query = f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE environment = ?"
    args: list = [session.environment.name]
    if automation:
        query += " AND automation = ?"
        args.append(automation)
    if since is not None:  # ISO times of one offset sort as they compare: the index on start time answers
        query += " AND started_at >= ?"
        args.append(since.astimezone(_dt.timezone.utc).isoformat())
    query += " ORDER BY started_at DESC LIMIT ?"
    args.append(int(limit))
    rows = _read(session, query, tuple(args))
    if not rows:  # a history written before runs kept their measures has no such column until the next run
        rows = _read(session, query.replace(", measures FROM", ", NULL FROM", 1), tuple(args))
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
                metrics={"host": r["host"], "cpu_seconds": r["cpu_seconds"], "peak_memory_kb": r["peak_memory_kb"],
                         **measures_from(r["measures"])},
            )
        )
    return runs


#: Runs per automation, UTC day, status and duration bucket (the first bound a run's duration is within;
#: NULL for a run that did not end by itself); ``{table}`` reads the whole file in order when there is no window.
_GROUPS = (
    "SELECT automation, substr(started_at, 1, 10) AS day, status, {bucket} AS bucket, count(*),"
    " coalesce(sum(CASE WHEN status IN ('succeeded', 'failed') THEN {duration} END), 0.0), max(started_at), max(finished_at)"
    " FROM {table} WHERE environment = ?{since} GROUP BY automation, day, status, bucket"
)
#: The stored duration; a row written without one (an older envfence) from its times.
_DURATION = "coalesce(duration, (julianday(finished_at) - julianday(started_at)) * 86400.0)"
#: Each business metric's value in the newest run that reported it (SQLite takes the bare columns from
#: the row of the one max()), and its sum; a damaged measures value counts as none.
_METRICS = (
    "SELECT r.automation, m.key, json_extract(m.value, '$.value'), coalesce(json_extract(m.value, '$.unit'), ''),"
    " max(r.started_at), sum(json_extract(m.value, '$.value'))"
    " FROM {table}, json_each(CASE WHEN json_valid(r.measures) THEN r.measures ELSE '{{}}' END, '$.business') AS m"
    " WHERE r.environment = ? AND r.measures IS NOT NULL AND m.key IS NOT NULL"
    " AND json_type(m.value, '$.value') IN ('integer', 'real'){since} GROUP BY r.automation, m.key"
)
_STEPS = (
    "SELECT r.automation, s.key, s.value, max(r.started_at)"
    " FROM {table}, json_each(CASE WHEN json_valid(r.measures) THEN r.measures ELSE '{{}}' END, '$.steps') AS s"
    " WHERE r.environment = ? AND r.measures IS NOT NULL AND s.key IS NOT NULL AND s.type IN ('integer', 'real'){since}"
    " GROUP BY r.automation, s.key"
)


def _bucket(buckets) -> str:
    """The SQL of a run's duration bucket: the index of the first bound it is within, len(buckets) above them all."""
    bounds = " ".join(f"WHEN {_DURATION} <= ? THEN {i}" for i in range(len(buckets)))
    return f"CASE WHEN status NOT IN ('succeeded', 'failed') THEN NULL {bounds} ELSE {len(buckets)} END"


def _groups(rows, width: int):
    """:class:`RunGroup` of the rows of :data:`_GROUPS` (one per bucket), the buckets counted up to each bound."""
    from envfence.runs.totals import RunGroup

    merged: dict[tuple, dict] = {}
    for automation, day, status, bucket, count, total, started, finished in rows:
        group = merged.setdefault((automation, day, status), {"runs": 0, "sum": 0.0, "within": [0] * width,
                                                              "started": started, "finished": finished})
        group["runs"] += count
        group["sum"] += total
        group["started"], group["finished"] = max(group["started"], started), max(group["finished"], finished)
        for i in range(width) if bucket is not None else ():
            group["within"][i] += count if bucket <= i else 0
    stamp = _dt.datetime.fromisoformat
    return [RunGroup(a, d, s, g["runs"], float(g["sum"]), tuple(g["within"]), stamp(g["started"]), stamp(g["finished"]))
            for (a, d, s), g in merged.items()]


def _through_start_time(session) -> str:
    """The runs table read through the index on start time, so a window reads only its runs.

    Left to itself, SQLite picks the index by automation (it suits the
    ``GROUP BY``) and visits every run of the file to test its start time.
    """
    found = _read(session, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'runs_by_environment'", ())
    return "runs INDEXED BY runs_by_environment" if found else "runs"


@hookimpl
def run_totals(session, since, buckets):
    """The environment's history summed in SQL: ``GROUP BY`` automation, day, status and bucket, one per metric and step.

    Nothing is read run by run: ``metrics`` on a million runs costs what the
    groups cost. Without a window the file is read in order (a scan is
    cheaper than a million look-ups through an index); with one, the index on
    start time finds it. Abandoned runs are marked first, as ``run_history`` does.
    """
    from envfence.runs.totals import MetricTotal, StepLast, sort_totals

    if history_file(session) is None:
        return None
    reap_abandoned(session)
    window, window_args = ("", ()) if since is None else (
        " AND started_at >= ?", (since.astimezone(_dt.timezone.utc).isoformat(),))
    table = "runs NOT INDEXED" if since is None else _through_start_time(session)
    env = (session.environment.name,)
    rows = _read(session, _GROUPS.format(bucket=_bucket(buckets), duration=_DURATION, table=table, since=window),
                 (*buckets, *env, *window_args))
    measured = {"table": f"{table.replace('runs', 'runs AS r', 1)}", "since": window.replace("started_at", "r.started_at")}
    metrics = _read(session, _METRICS.format(**measured), (*env, *window_args))
    steps = _read(session, _STEPS.format(**measured), (*env, *window_args))
    return sort_totals(
        _groups(rows, len(buckets)),
        (MetricTotal(a, name, float(last), unit, float(total)) for a, name, last, unit, _, total in metrics),
        (StepLast(a, name, float(seconds)) for a, name, seconds, _ in steps),
    )


@hookimpl(optionalhook=True)
def backup_files(session) -> list | None:
    """The history, copied through SQLite's backup API so a run writing meanwhile is never half-copied (the ``backup`` plugin's hook)."""
    from envfence.sqlite_schema import copy

    path = history_file(session)
    if path is None:
        return None
    return [(path, lambda: copy(path))] if path.is_file() and not path.is_symlink() else []
