"""The webhook queue in the shared store: receivers and workers on several hosts share one queue per environment.

Same life of an event as the SQLite queue (:mod:`.webhook_queue`), the same
methods, so ``envfence serve`` and ``envfence worker`` use either. What
changes across hosts:

- a claim is ``SELECT … FOR UPDATE SKIP LOCKED`` then an ``UPDATE`` in one
  transaction: workers on any host take different events and never wait on
  each other's rows;
- a worker's liveness is a session-level advisory lock on its token, held by
  the queue's connection while the process lives: a running event whose
  token's lock is free again belonged to a worker that died, on whichever
  host, and goes back to pending;
- a connection the server dropped (a restart) is opened again at the next
  use, and the process's worker locks are taken again on it. A keeper thread
  looks every :data:`KEEP_SECONDS`, so a worker busy with a long run gets its
  lock back too; and no claim is taken back in the first
  :data:`RESTART_GRACE` seconds after the server started, the time live
  workers have to take their locks again.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping

from envfence_builtins.store.postgres_client import Store, advisory_key
from envfence_builtins.webhook_service.webhook_queue import STATUSES, WebhookEvent, next_status
from envfence_builtins.webhook_service.webhook_queue import _event as event_from_row

TABLE = "envfence_webhook_events"
#: Seconds between the keeper's looks at the connection (and its worker locks).
KEEP_SECONDS = 1.0
#: Seconds after the server (re)started during which no worker's claim is taken back.
RESTART_GRACE = 10.0
_COLUMNS = (
    "seq", "route", "event_id", "provider", "event_type", "automation", "payload", "headers", "received_at", "status",
    "attempts", "max_attempts", "next_attempt_at", "claimed_by", "run_id", "last_error", "finished_at",
)


class PostgresQueue:
    """One environment's webhook queue in the store. Thread-safe: one connection, one lock.

    The same methods as :class:`~envfence_builtins.webhook_service.webhook_queue.WebhookQueue`,
    so the receiver, the workers and ``envfence queue`` use either.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.environment = store.environment
        #: Where the queue is, for messages: the store's name (no password) and the environment.
        self.where = f"{store.name} ({store.environment})"
        self._lock = threading.Lock()
        self._tokens: set[str] = set()  #: workers of this process: their advisory locks live on this connection
        self._db = self._open()
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def _open(self):
        return self.store.connect(f"envfence queue {self.environment}", pooled=False, doing="open the webhook queue")

    def close(self) -> None:
        """Close the connection (which lets go of this process's worker locks)."""
        self._closed.set()
        with self._lock:
            self._db.close()

    def _connection(self):
        """The queue's connection; one the server dropped is opened again, with this process's worker locks."""
        if self._db.closed or self._db.broken:
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = self._open()
            for token in self._tokens:  # taken again; the old session's, if it lingers, ends with it
                self._db.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key("worker", token),))
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock, self.store.translated(f"use the webhook queue of {self.environment}"):
            db = self._connection()
            with db.transaction():
                yield db

    def _mine(self, db, token: str) -> None:
        """Hold ``token``'s advisory lock on this connection: the token's worker is alive while it is held."""
        if token not in self._tokens:
            db.execute("SELECT pg_advisory_lock(%s)", (advisory_key("worker", token),))
            self._tokens.add(token)
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep, name="envfence-queue-keeper", daemon=True)
                self._keeper.start()

    def _keep(self) -> None:
        """Look at the connection now and then, so that worker locks lost to a restart come back during a long run."""
        while not self._closed.wait(KEEP_SECONDS):
            with contextlib.suppress(Exception):  # the store is away: the next look tries again
                with self._transaction() as db:
                    db.execute("SELECT 1")

    # --- accepting -----------------------------------------------------------

    def accept(
        self, *, route: str, event_id: str, provider: str, event_type: str | None, automation: str,
        body: bytes, headers: Mapping[str, str], max_attempts: int, ignored: bool = False,
    ) -> bool:
        """Store a verified delivery (committed before returning); False when ``event_id`` is already known, on any route.

        An event id is accepted once per environment whatever the route, as
        in the SQLite queue: the table's unique index on ``(environment,
        event_id)`` decides, so two hosts receiving the same id at once queue it once.
        """
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                f"INSERT INTO {TABLE} (environment, route, event_id, provider, event_type, automation, payload, headers,"
                " received_at, status, max_attempts, next_attempt_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT DO NOTHING RETURNING seq",
                (self.environment, route, event_id, provider, event_type, automation, body, json.dumps(dict(headers)), now,
                 "ignored" if ignored else "pending", max_attempts, now),
            ).fetchone()
        return row is not None

    # --- claiming ------------------------------------------------------------

    def claim(self, token: str, now: float | None = None) -> WebhookEvent | None:
        """Take the oldest due pending event for worker ``token``, or None; workers on other hosts skip it."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            self._mine(db, token)
            row = db.execute(
                f"UPDATE {TABLE} SET status='running', claimed_by=%s, claimed_at=now(), attempts=attempts+1 WHERE seq = ("
                f" SELECT seq FROM {TABLE} WHERE environment=%s AND status='pending' AND next_attempt_at <= %s"
                " ORDER BY next_attempt_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED"
                f") RETURNING {', '.join(_COLUMNS)}",
                (token, self.environment, now),
            ).fetchone()
        return _event(row) if row else None

    def started(self, seq: int, token: str, run_id: str) -> None:
        """Note, before the automation runs, which run a claimed event started (recovery asks how that run ended)."""
        with self._transaction() as db:
            db.execute(f"UPDATE {TABLE} SET run_id=%s WHERE seq=%s AND claimed_by=%s AND status='running'", (run_id, seq, token))

    def finish(self, seq: int, token: str, *, succeeded: bool, run_id: str | None, error: str | None,
               retry_base: float = 2.0, retry_max: float = 300.0, final: bool = False) -> str:
        """Record how a claimed event's run ended; returns its new status (``lost`` when no longer its claimant's)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                f"SELECT attempts, max_attempts FROM {TABLE} WHERE seq=%s AND claimed_by=%s AND status='running' FOR UPDATE",
                (seq, token),
            ).fetchone()
            if row is None:
                return "lost"
            status, due = next_status(*row, succeeded=succeeded, final=final, now=now, retry_base=retry_base, retry_max=retry_max)
            db.execute(
                f"UPDATE {TABLE} SET status=%s, next_attempt_at=%s, run_id=%s, last_error=%s, claimed_by=NULL,"
                " finished_at=%s WHERE seq=%s",
                (status, due, run_id, error, now if status in ("succeeded", "dead") else None, seq),
            )
        return status

    def release(self, seq: int, token: str, error: str, delay: float = 1.0) -> bool:
        """Give back a claimed event whose job never started (its try is not counted); False when no longer its claimant's."""
        with self._transaction() as db:
            return db.execute(
                f"UPDATE {TABLE} SET status='pending', attempts=greatest(attempts-1, 0), claimed_by=NULL, last_error=%s,"
                " next_attempt_at=%s WHERE seq=%s AND claimed_by=%s AND status='running'",
                (error, time.time() + delay, seq, token),
            ).rowcount == 1

    def recover(self, finished: Callable[[WebhookEvent], bool] | None = None) -> int:
        """Put back to pending the running events of workers that are gone, on any host; returns how many.

        ``finished(event)`` says whether the run the event started succeeded:
        such an event is succeeded, never run again. A claim taken before the
        server last started lost its worker's lock in the restart: it is left
        alone for :data:`RESTART_GRACE` seconds, while live workers take theirs again.
        """
        with self._transaction() as db:
            owners = [r[0] for r in db.execute(
                f"SELECT claimed_by FROM {TABLE} WHERE environment=%s AND status='running' GROUP BY claimed_by"
                " HAVING bool_and(claimed_at >= pg_postmaster_start_time())"
                " OR now() - pg_postmaster_start_time() > make_interval(secs => %s)",
                (self.environment, RESTART_GRACE),
            )]
        freed = 0
        for owner in owners:
            if owner not in self._tokens:  # a worker of this process is alive
                freed += self._take_back(owner, finished)
        return freed

    def _take_back(self, owner: str, finished: Callable[[WebhookEvent], bool] | None) -> int:
        """Return ``owner``'s claims when its worker's lock is free (held here meanwhile, so it cannot come back halfway)."""
        key = advisory_key("worker", owner)
        with self._transaction() as db:
            if not db.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]:
                return 0  # its worker's connection is alive
            claims = [_event(r) for r in db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE environment=%s AND status='running' AND claimed_by=%s",
                (self.environment, owner),
            ).fetchall()]
        done = [e.seq for e in claims if e.run_id and finished is not None and finished(e)]
        with self._transaction() as db:
            if not db.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()[0]:
                return 0
            for seq in done:
                db.execute(f"UPDATE {TABLE} SET status='succeeded', claimed_by=NULL, finished_at=%s, last_error=NULL"
                           " WHERE seq=%s AND status='running' AND claimed_by=%s", (time.time(), seq, owner))
            return db.execute(
                f"UPDATE {TABLE} SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END,"
                " claimed_by=NULL, last_error='interrupted: the worker stopped during the run'"
                " WHERE environment=%s AND status='running' AND claimed_by=%s",
                (self.environment, owner),
            ).rowcount

    # --- managing ------------------------------------------------------------

    def list(self, status: str | None = None, limit: int = 100) -> list[WebhookEvent]:
        """Events newest first, optionally of one status."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE environment=%s" + (" AND status=%s" if status else "")
        args = (self.environment, *((status,) if status else ()), limit)
        return self._select(query + " ORDER BY seq DESC LIMIT %s", args)

    def find(self, ref: str) -> list[WebhookEvent]:
        """The events whose event id (or else queue number) is ``ref``: more than one when routes share an id."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM {TABLE} WHERE environment=%s AND "
        found = self._select(query + "event_id=%s ORDER BY seq", (self.environment, ref))
        if not found and ref.isdigit():
            found = self._select(query + "seq=%s", (self.environment, int(ref)))
        return found

    def retry(self, seq: int) -> bool:
        """Make a dead (or dropped) event pending again, with fresh tries; False if it is not dead or dropped."""
        with self._transaction() as db:
            return db.execute(
                f"UPDATE {TABLE} SET status='pending', attempts=0, next_attempt_at=%s, finished_at=NULL"
                " WHERE environment=%s AND seq=%s AND status IN ('dead', 'dropped')",
                (time.time(), self.environment, seq),
            ).rowcount == 1

    def drop(self, seq: int) -> bool:
        """Give up on a pending or dead event; its id stays known so a replay is still refused."""
        with self._transaction() as db:
            return db.execute(
                f"UPDATE {TABLE} SET status='dropped', finished_at=%s WHERE environment=%s AND seq=%s"
                " AND status IN ('pending', 'dead')",
                (time.time(), self.environment, seq),
            ).rowcount == 1

    def prune(self, before: float) -> int:
        """Empty the body and headers of events finished before ``before``; returns how many.

        The row stays, with its id, route and status, for replay protection;
        dead events keep theirs, as ``queue retry`` needs it.
        """
        with self._transaction() as db:
            return db.execute(
                f"UPDATE {TABLE} SET payload='', headers='{{}}' WHERE environment=%s"
                " AND status IN ('succeeded', 'ignored', 'dropped') AND coalesce(finished_at, received_at) < %s"
                " AND (length(payload) > 0 OR headers <> '{}')",
                (self.environment, before),
            ).rowcount

    def counts(self) -> dict[str, int]:
        """How many events are in each status."""
        with self._transaction() as db:
            rows = db.execute(f"SELECT status, count(*) FROM {TABLE} WHERE environment=%s GROUP BY status",
                              (self.environment,)).fetchall()
        return {status: 0 for status in STATUSES} | dict(rows)

    def writable(self) -> bool:
        """True when the store answers (a receiver says it is not ready otherwise)."""
        try:
            with self._transaction() as db:
                db.execute("SELECT 1")
            return True
        except Exception:
            return False

    def _select(self, query: str, args: tuple) -> list[WebhookEvent]:
        with self._transaction() as db:
            return [_event(row) for row in db.execute(query, args).fetchall()]


def _event(row: tuple) -> WebhookEvent:
    return event_from_row(dict(zip(_COLUMNS, row)))  # the same columns as the SQLite queue's
