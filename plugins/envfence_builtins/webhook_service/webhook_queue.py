"""The environment's webhook queue: accepted events, durable, claimed once.

One SQLite file in the environment's own tree (``queue/webhooks.sqlite3``),
in WAL mode with ``synchronous=FULL``: an event is on disk before the
receiver answers 2xx, so a crash or a kill -9 loses no accepted event.
The file, SQLite's side files and the workers' lock files are checked and
created through :mod:`envfence.files`, so none is reached through a link.

An event's life::

    pending --claim--> running --succeeded--> succeeded
                          |---failed, tries left--> pending (later, backoff)
                          |---failed, no tries left / blocked--> dead
    ignored  (its type is not one the route wants; kept for replay protection)
    dropped  (by ``envfence queue drop``; kept for replay protection)

A claim is one conditional ``UPDATE`` inside an immediate transaction, so two
workers (threads or processes) never hold the same event. Each worker holds
an ``flock`` on a file named after its claim token while it lives; a running
event whose worker's lock is free again belonged to a dead worker and goes
back to pending (its try counted). An event id is accepted once per
environment, whatever the route: the same delivery is never queued twice,
nor replayed to another route that shares its secret (replay protection that
survives restarts).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from envfence import slotted
from envfence import files
from envfence.errors import EnvfenceError

#: Where the queue lives, relative to the environment's tree.
QUEUE_DIR = "queue"
QUEUE_FILE = "webhooks.sqlite3"
STATUSES = ("pending", "running", "succeeded", "dead", "ignored", "dropped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    event_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    event_type TEXT,
    automation TEXT NOT NULL,
    payload BLOB NOT NULL,
    headers TEXT NOT NULL,
    received_at REAL NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    claimed_by TEXT,
    run_id TEXT,
    last_error TEXT,
    finished_at REAL,
    UNIQUE (event_id)
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
"""
#: A queue made before ids were unique per environment (``UNIQUE (route, event_id)``) gets an index to look ids up by.
_OLD_QUEUE_INDEX = "CREATE INDEX IF NOT EXISTS events_event_id ON events (event_id)"


def _baseline(db: sqlite3.Connection) -> None:
    """Migration 1: a new queue, or any earlier release's (no version kept), gets this schema's table and indexes."""
    from envfence.sqlite_schema import statements

    for statement in statements(_SCHEMA):
        db.execute(statement)
    if not _ids_unique(db):
        db.execute(_OLD_QUEUE_INDEX)


#: The queue's migrations (``PRAGMA user_version`` counts those applied; see :mod:`envfence.sqlite_schema`).
MIGRATIONS = (_baseline,)


@slotted.frozen
class WebhookEvent:
    """One accepted delivery, as an automation sees it in ``ctx.event``.

    ``attempt`` counts tries, this one included: above 1, an earlier try
    failed or was interrupted, so an automation makes its effect idempotent
    keyed by ``id``.
    """

    seq: int
    id: str
    route: str
    provider: str
    type: str | None
    automation: str
    body: bytes = slotted.field(repr=False)
    headers: Mapping[str, str] = slotted.field(repr=False)
    received_at: float
    status: str
    attempt: int
    max_attempts: int
    next_attempt_at: float
    run_id: str | None = None
    last_error: str | None = None
    finished_at: float | None = None

    @property
    def payload(self) -> Any:
        """The JSON body, parsed."""
        return json.loads(self.body)

    def summary(self) -> dict[str, Any]:
        """The event without its body and headers, for listings and JSON output."""
        return {
            "seq": self.seq, "id": self.id, "route": self.route, "provider": self.provider, "type": self.type,
            "automation": self.automation, "status": self.status, "attempts": self.attempt,
            "max_attempts": self.max_attempts, "received_at": self.received_at, "next_attempt_at": self.next_attempt_at,
            "run_id": self.run_id, "last_error": self.last_error, "finished_at": self.finished_at,
        }


class _Pending:
    """A delivery waiting for the group commit that stores it."""

    __slots__ = ("row", "result", "stored")

    def __init__(self, row: tuple) -> None:
        self.row = row
        self.result: bool | None = None
        self.stored: bool | BaseException | None = None  #: set once the commit is done (or failed)


class GroupCommit:
    """Rows that arrive while a commit is syncing wait and go to disk together in the next one.

    Concurrent requests share one sync instead of queueing for one each;
    each caller still returns only once its own row is on disk.

    :param store: ``store(batch)`` writes the :class:`_Pending` rows in one
        transaction, setting each one's ``stored`` (its result, or the exception
        that kept the batch from disk).
    """

    def __init__(self, store: Callable[[list[_Pending]], None]) -> None:
        self._store = store
        self._group = threading.Condition()
        self._waiting: list[_Pending] = []
        self._syncing = False

    def submit(self, row: tuple) -> bool:
        """Store ``row`` with whatever else is waiting; its result once it is on disk (the batch's exception if not)."""
        entry = _Pending(row)
        with self._group:
            self._waiting.append(entry)
            while entry.stored is None:
                if self._syncing:
                    self._group.wait()
                    continue
                self._syncing = True
                batch, self._waiting = self._waiting, []
                self._group.release()
                try:
                    self._store(batch)
                finally:
                    self._group.acquire()
                    self._syncing = False
                    self._group.notify_all()
        if isinstance(entry.stored, BaseException):
            raise entry.stored
        return entry.stored


def next_status(attempts: int, max_attempts: int, *, succeeded: bool, final: bool, now: float,
                retry_base: float, retry_max: float) -> tuple[str, float]:
    """A finished try's new status and when the event is next due (exponential backoff with jitter)."""
    if succeeded:
        return "succeeded", now
    if final or attempts >= max_attempts:
        return "dead", now
    return "pending", now + min(retry_max, retry_base * 2 ** (attempts - 1)) * (0.5 + random.random() / 2)


def worker_lock(token: str) -> str:
    """The lock file a worker holds while it lives, relative to the environment's tree."""
    return f"{QUEUE_DIR}/workers/{token}.lock"


def _gone_workers(paths, owners: list[str]) -> Iterator[str]:
    """The claim tokens among ``owners`` whose worker is gone (its lock file free), each yielded while its lock is held.

    The lock file is removed once the caller has put the worker's events back.
    """
    import fcntl

    for owner in owners:
        lock = worker_lock(owner)
        try:
            handle = files.open_append(paths, lock, binary=True)
        except EnvfenceError:
            continue  # a link or worse where the lock belongs: leave it for `envfence check`
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its worker is alive
            yield owner
            files.remove(paths, lock)


def _ids_unique(db: sqlite3.Connection) -> bool:
    """True when the table's own constraint makes event ids unique (a queue made by this version)."""
    for _, name, unique, *_ in db.execute("PRAGMA index_list(events)").fetchall():
        if unique and [row[2] for row in db.execute(f"PRAGMA index_info({name!r})").fetchall()] == ["event_id"]:
            return True
    return False


def _connect_checked(paths, relative: str) -> sqlite3.Connection:
    """SQLite's connection to the queue file, checked to hold the very file envfence checked (no link swapped in)."""
    return files.open_by_name(paths, relative, lambda path: sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30), lambda db: db.close())


def _open(paths) -> tuple[Path, sqlite3.Connection]:
    """The queue file of ``paths``'s tree, created and checked, and SQLite's connection to it, upgraded to this schema."""
    from envfence.sqlite_schema import check_not_newer, upgrade

    relative = f"{QUEUE_DIR}/{QUEUE_FILE}"
    # SQLite opens its files by name: each is checked (and the database created) through
    # envfence.files first, so none is reached through a link or shares its content through a hard link.
    for name in (relative, *(relative + side for side in ("-wal", "-shm", "-journal"))):
        if files.check_file(paths, name) is not None:
            files.ensure_file(paths, name)  # raises the SafetyError naming the link
    path = files.ensure_file(paths, relative)
    db = _connect_checked(paths, relative)
    try:
        check_not_newer(db, MIGRATIONS, str(path))  # before anything changes the file, even its journal mode
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # each commit reaches the disk before the 2xx
        upgrade(db, MIGRATIONS, str(path))  # a queue from a later release is refused, left as it is
    except sqlite3.DatabaseError as exc:
        db.close()
        raise damaged(path, exc) from None
    except EnvfenceError:
        db.close()
        raise
    return path, db


def _inode(path: Path) -> tuple[int, int] | None:
    """The regular file at ``path`` as ``(device, inode)``; None when it is gone or not a regular file."""
    import os
    import stat

    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None


def damaged(path: Path, exc: Exception) -> EnvfenceError:
    """The error for a queue file SQLite cannot read. It is never replaced: accepted events may still be recovered from it."""
    return EnvfenceError(
        f"{path} is damaged ({exc}); it may hold accepted webhook events, so it is left as it is",
        f"recover what it holds (sqlite3 {path} .recover), or move it aside (mv {path} {path}.damaged) to start an empty queue",
    )


def queue_path(paths) -> Path:
    """The queue file of an environment's tree (not created)."""
    return paths.base / QUEUE_DIR / QUEUE_FILE


def backup_files(paths) -> list[tuple[Path, Any]]:
    """The queue file and its reader for ``envfence backup``: a consistent copy through SQLite's backup API."""
    path = queue_path(paths)
    if not path.is_file() or path.is_symlink():
        return []

    def read() -> bytes:
        import sqlite3

        from envfence.sqlite_schema import copy

        try:
            return copy(path)
        except sqlite3.DatabaseError as exc:
            raise damaged(path, exc) from None

    return [(path, read)]


class WebhookQueue:
    """The queue of one environment. Thread-safe: one connection, one lock.

    :param paths: the environment's :class:`~envfence.models.EnvPaths`;
        the file is created inside its tree, never through a symlink.
    """

    def __init__(self, paths) -> None:
        self.path, self._db = _open(paths)
        self.where = str(self.path)  #: where the queue is, for messages
        self.paths = paths
        self._lock = threading.Lock()
        self._commits = GroupCommit(self._store)
        self._identity = _inode(self.path)

    def check_in_place(self) -> None:
        """Raise :class:`EnvfenceError` when the queue file was moved, removed or replaced (by a link) since it was opened.

        SQLite keeps writing to the file it opened: events accepted into a
        file no longer at its place would be lost to every later start.
        """
        if _inode(self.path) != self._identity:
            raise EnvfenceError(f"{self.path} was replaced or removed while the queue was open; no event is accepted into it",
                                "put the queue file back, or restart `envfence serve` (it refuses a link there)")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- accepting -----------------------------------------------------------

    def accept(
        self, *, route: str, event_id: str, provider: str, event_type: str | None, automation: str,
        body: bytes, headers: Mapping[str, str], max_attempts: int, ignored: bool = False,
    ) -> bool:
        """Store a verified delivery, synced to disk; False when ``event_id`` is already known, on any route.

        Deliveries arriving together share one sync (:class:`GroupCommit`).
        """
        now = time.time()
        return self._commits.submit((route, event_id, provider, event_type, automation, body, json.dumps(dict(headers)), now,
                                     "ignored" if ignored else "pending", max_attempts, now))

    def _store(self, batch: list["_Pending"]) -> None:
        try:
            self.check_in_place()
            with self._transaction() as db:
                for entry in batch:
                    cursor = db.execute(
                        "INSERT INTO events (route, event_id, provider, event_type, automation, payload, headers,"
                        " received_at, status, max_attempts, next_attempt_at) SELECT ?,?,?,?,?,?,?,?,?,?,?"
                        " WHERE NOT EXISTS (SELECT 1 FROM events WHERE event_id = ?)",
                        (*entry.row, entry.row[1]),
                    )
                    entry.result = cursor.rowcount == 1
        except BaseException as exc:  # nothing of the batch is stored: every caller hears why
            for entry in batch:
                entry.stored = exc
            raise
        for entry in batch:
            entry.stored = entry.result

    # --- claiming ------------------------------------------------------------

    def claim(self, token: str, now: float | None = None) -> WebhookEvent | None:
        """Take the oldest due pending event for worker ``token``, or None; atomic across processes."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE events SET status='running', claimed_by=?, attempts=attempts+1 WHERE seq = ("
                " SELECT seq FROM events WHERE status='pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT 1"
                ") AND status='pending' RETURNING *",
                (token, now),
            )
            rows = cursor.fetchall()  # the statement must be done before the commit
            columns = [d[0] for d in cursor.description]
        return _event(dict(zip(columns, rows[0]))) if rows else None

    def finish(self, seq: int, token: str, *, succeeded: bool, run_id: str | None, error: str | None,
               retry_base: float = 2.0, retry_max: float = 300.0, final: bool = False) -> str:
        """Record how a claimed event's run ended; returns its new status.

        A failure goes back to pending after an exponential backoff (with
        jitter), or to ``dead`` when its tries are used up or ``final``.
        Only the claimant may finish it: a claim taken over by recovery stays
        with its new owner.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT attempts, max_attempts FROM events WHERE seq=? AND claimed_by=? AND status='running'",
                             (seq, token)).fetchone()
            if row is None:
                return "lost"
            status, due = next_status(*row, succeeded=succeeded, final=final, now=now, retry_base=retry_base, retry_max=retry_max)
            db.execute(
                "UPDATE events SET status=?, next_attempt_at=?, run_id=?, last_error=?, claimed_by=NULL,"
                " finished_at=? WHERE seq=?",
                (status, due, run_id, error, now if status in ("succeeded", "dead") else None, seq),
            )
        return status

    def release(self, seq: int, token: str, error: str, delay: float = 1.0) -> bool:
        """Give back a claimed event whose job never started (its try is not counted); False when no longer its claimant's."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE events SET status='pending', attempts=max(attempts-1, 0), claimed_by=NULL, last_error=?,"
                " next_attempt_at=? WHERE seq=? AND claimed_by=? AND status='running'",
                (error, time.time() + delay, seq, token),
            ).rowcount == 1

    def started(self, seq: int, token: str, run_id: str) -> None:
        """Note, before the automation runs, which run a claimed event started (recovery asks how that run ended)."""
        with self._transaction() as db:
            db.execute("UPDATE events SET run_id=? WHERE seq=? AND claimed_by=? AND status='running'", (run_id, seq, token))

    def recover(self, finished: Callable[[WebhookEvent], bool] | None = None) -> int:
        """Put back to pending the running events of workers that are gone; returns how many.

        ``finished(event)`` says whether the run the event started (``event.run_id``)
        succeeded: a worker can die after its run is recorded and before the
        queue hears of it, and such an event is succeeded, never run again.
        """
        with self._lock:
            owners = [r[0] for r in self._db.execute("SELECT DISTINCT claimed_by FROM events WHERE status='running'")]
        freed = 0
        for owner in _gone_workers(self.paths, owners):
            done = [e.seq for e in self._select("SELECT * FROM events WHERE status='running' AND claimed_by=?", (owner,))
                    if e.run_id and finished is not None and finished(e)]
            with self._transaction() as db:
                for seq in done:
                    db.execute("UPDATE events SET status='succeeded', claimed_by=NULL, finished_at=?, last_error=NULL"
                               " WHERE seq=? AND status='running' AND claimed_by=?", (time.time(), seq, owner))
                freed += db.execute(
                    "UPDATE events SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,"
                    " claimed_by=NULL, last_error='interrupted: the worker stopped during the run'"
                    " WHERE status='running' AND claimed_by=?",
                    (owner,),
                ).rowcount
        return freed

    # --- managing ------------------------------------------------------------

    def list(self, status: str | None = None, limit: int = 100) -> list[WebhookEvent]:
        """Events newest first, optionally of one status."""
        query = "SELECT * FROM events" + (" WHERE status=?" if status else "") + " ORDER BY seq DESC LIMIT ?"
        return self._select(query, ((status,) if status else ()) + (limit,))

    def find(self, ref: str) -> list[WebhookEvent]:
        """The events whose event id (or else queue number) is ``ref``: more than one when routes share an id."""
        found = self._select("SELECT * FROM events WHERE event_id=? ORDER BY seq", (ref,))
        if not found and ref.isdigit():
            found = self._select("SELECT * FROM events WHERE seq=?", (int(ref),))
        return found

    def retry(self, seq: int) -> bool:
        """Make a dead (or dropped) event pending again, with fresh tries; False if it is not dead or dropped."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE events SET status='pending', attempts=0, next_attempt_at=?, finished_at=NULL"
                " WHERE seq=? AND status IN ('dead', 'dropped')",
                (time.time(), seq),
            ).rowcount == 1

    def drop(self, seq: int) -> bool:
        """Give up on a pending or dead event; its id stays known so a replay is still refused."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE events SET status='dropped', finished_at=? WHERE seq=? AND status IN ('pending', 'dead')",
                (time.time(), seq),
            ).rowcount == 1

    def prune(self, before: float) -> int:
        """Empty the body and headers of events finished before ``before``; returns how many.

        The row stays, with its id, route and status: replay protection needs
        the id for ever (a GitHub delivery carries no timestamp to go stale),
        the payload not. Dead events keep theirs, as ``queue retry`` needs it.
        """
        with self._transaction() as db:
            return db.execute(
                "UPDATE events SET payload=x'', headers='{}' WHERE status IN ('succeeded', 'ignored', 'dropped')"
                " AND COALESCE(finished_at, received_at) < ? AND (length(payload) > 0 OR headers != '{}')",
                (before,),
            ).rowcount

    def counts(self) -> dict[str, int]:
        """How many events are in each status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM events GROUP BY status").fetchall()
        return {status: 0 for status in STATUSES} | dict(rows)

    def writable(self) -> bool:
        """True when a write transaction can be started (the disk and the lock are usable)."""
        try:
            self.check_in_place()
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
            return True
        except (sqlite3.Error, EnvfenceError):
            return False

    def _select(self, query: str, args: tuple) -> list[WebhookEvent]:
        with self._lock:
            cursor = self._db.execute(query, args)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return [_event(dict(zip(columns, row))) for row in rows]


def _event(row: Mapping[str, Any]) -> WebhookEvent:
    return WebhookEvent(
        seq=row["seq"], id=row["event_id"], route=row["route"], provider=row["provider"], type=row["event_type"],
        automation=row["automation"], body=bytes(row["payload"]), headers=json.loads(row["headers"]),
        received_at=row["received_at"], status=row["status"], attempt=row["attempts"], max_attempts=row["max_attempts"],
        next_attempt_at=row["next_attempt_at"], run_id=row["run_id"], last_error=row["last_error"],
        finished_at=row["finished_at"],
    )
