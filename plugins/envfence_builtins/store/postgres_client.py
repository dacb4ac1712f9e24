"""The shared store's client: its settings, the connection (``Store``), the spool kept while the database is away, run rows, advisory locks, shared state.

What the ``store`` plugin's hooks (:mod:`envfence_builtins.store.postgres_store`)
and its commands (``store_cli``) do with the database; the queue over it is
:mod:`envfence_builtins.store.postgres_queue`, the audit chain
:mod:`envfence_builtins.store.postgres_audit`, the schema
:mod:`envfence_builtins.store.postgres_schema`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import reveal
from envfence.stash import StashKey
from envfence_builtins.store.postgres_audit import append_audit
from envfence_builtins.store.postgres_schema import RUNS, STATE
from envfence_builtins.store.store_settings import settings_of


SPOOL_NAME = "store-spool.jsonl"
_RUN_COLUMNS = (
    "run_id", "automation", "environment", "host", "started_at", "finished_at", "status", "exit_code",
    "error_class", "error_id", "duration", "cpu_seconds", "peak_memory_kb", "forced", "reason", "measures",
)


class StoreUnavailable(ConfigurationError):
    """The shared store cannot be reached or refused the connection (exit 4)."""

    reason = ""  #: what happened, without the advice


class StoreBehind(StoreUnavailable):
    """The store lacks a column this envfence writes: its schema is older (``envfence store migrate`` brings it up).

    Records are spooled as when the store is away, and sent once it is migrated.
    """


#: True once the session said that the store's schema is behind: said once, however many writes meet it.
SAID_BEHIND = StashKey[bool]()


def say_behind(session, exc: StoreBehind, what: str) -> None:
    """Warn, once per session, that the store must be migrated (``what``: where the records go meanwhile).

    A run logs it (its log file keeps it too); a command that only reads (``status``) has no log sink: stderr.
    """
    if session.stash.get(SAID_BEHIND, False):
        return
    session.stash[SAID_BEHIND] = True
    if session.prepared:
        session.logger().warning(f"{exc.reason}; {what}")
    else:
        import click

        click.echo(f"envfence: warning: {exc.reason}; {what}", err=True)


def masked_url(url: str) -> str:
    """The URL with its password and query left out: the store's name in messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + host, parts.path, "", ""))
    except ValueError:
        return "(an unreadable store URL)"


def advisory_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for ``parts`` (stable across hosts and versions)."""
    digest = hashlib.sha256("\0".join(("envfence", *parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Store:
    """One environment's connection details to the shared store. Never prints its URL."""

    def __init__(self, url: str, environment: str, fallback: str, timeout: float, paths, redactor) -> None:
        self._url = url
        self.name = masked_url(url)
        self.environment = environment
        self.fallback = fallback
        self.timeout = timeout
        self.paths = paths  #: the environment's tree, which holds the spool
        self._redact = redactor

    @property
    def spool(self) -> Path | None:
        """Where records wait while the store is away: ``<tree>/store-spool.jsonl``."""
        return self.paths.base / SPOOL_NAME if self.paths is not None else None

    def __repr__(self) -> str:
        return f"Store({self.name}, environment={self.environment!r})"

    def unavailable(self, error: BaseException, doing: str) -> StoreUnavailable:
        """The error for a store that cannot be reached: names it, says what to do, shows no secret."""
        detail = self._redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        detail = detail.replace(self._url, self.name)
        error = StoreUnavailable(
            f"the shared store {self.name} cannot be reached to {doing}: {detail} "
            "(start the database, or set [store] fallback = \"local\" to run with a local lock)",
            "check [store] url and the STORE_URL / STORE_PASSWORD credentials with `envfence store check`",
        )
        error.reason = f"the shared store {self.name} cannot be reached ({detail})"
        return error

    def connect(self, application: str = "envfence", pooled: bool = True, doing: str = "connect"):
        """A connection (autocommit); the pooled one is reused by this process.

        :raises StoreUnavailable: the database cannot be reached.
        """
        import psycopg

        key = (os.getpid(), self._url)
        if pooled:
            db = _pool.get(key)
            if db is not None and not db.closed and not db.broken:
                return db
        try:
            db = psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(self.timeout)), application_name=application[:63])
        except psycopg.Error as exc:
            raise self.unavailable(exc, doing) from None
        if pooled:
            _pool[key] = db
        return db

    @contextlib.contextmanager
    def using(self, doing: str) -> Iterator[Any]:
        """The pooled connection, with a dropped connection turned into :class:`StoreUnavailable`."""
        db = self.connect(doing=doing)
        try:
            with self.translated(doing):
                yield db
        except StoreUnavailable:
            _pool.pop((os.getpid(), self._url), None)
            with contextlib.suppress(Exception):
                db.close()
            raise

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """psycopg's errors as envfence's: a missing table, a missing privilege, a store gone away."""
        import psycopg

        try:
            yield
        except psycopg.errors.UndefinedColumn:
            behind = StoreBehind(
                f"the store's schema is behind: run `envfence store migrate` (the shared store {self.name} cannot {doing})",
                "run `envfence store migrate` as the owning role (`envfence store check` shows the migrations pending)",
            )
            behind.reason = f"the store's schema is behind: run `envfence store migrate` (the shared store {self.name})"
            raise behind from None
        except psycopg.errors.UndefinedTable:
            raise ConfigurationError(
                f"the shared store {self.name} has no envfence tables (cannot {doing})",
                "run `envfence store init` as the owning role (see `envfence store check`)",
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ConfigurationError(
                f"the shared store {self.name} refused to {doing}: {self._redact(str(exc).splitlines()[0])}",
                "grant the role what docs/several-machines.md lists (`envfence store check` shows what is missing)",
            ) from None
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc, doing) from None


#: One reused connection per process and URL.
_pool: dict[tuple[int, str], Any] = {}


#: The session's store, once resolved.
STORE = StashKey[Store]()
#: True while the store's credentials are read (reading one emits an audit event).
RESOLVING = StashKey[bool]()


#: Audit events of the session the store has not written yet (the session's audit
#: log hands its held events to one plugin, the file trail; the store keeps its own).
UNWRITTEN = StashKey[list]()


def store_for(session, purpose: str = "envfence") -> Store | None:
    """The session's store, or None when ``[store]`` is absent.

    :raises ConfigurationError: ``[store]`` is present but gives no URL, or a
        value is invalid; the message names the key.
    """
    table = settings_of(session.settings)
    if table is None:
        return None
    if STORE in session.stash:
        return session.stash[STORE]
    source = session.settings.source
    fallback = table["fallback"]  # one of FALLBACKS: the declaration checked it
    session.stash[RESOLVING] = True
    try:
        url = reveal(session.credential("STORE_URL", by="store")) or str(table.get("url", "") or "")
        password = reveal(session.credential("STORE_PASSWORD", by="store"))
    finally:
        session.stash[RESOLVING] = False
    if not url:
        credential = session.settings.naming.key(session.environment.name, "STORE_URL")
        raise ConfigurationError(
            f"{source}: [store] gives no url for {session.environment.name}",
            f'set [store] url = "postgresql://user@host/database", or the credential {credential}',
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(f"{source}: [store] url must start with postgresql://", "write it as postgresql://user@host:port/database")
    if password:
        parts = urlsplit(url)
        if parts.password is None:
            from urllib.parse import quote

            netloc = f"{quote(parts.username or '', safe='')}:{quote(password, safe='')}@{parts.hostname or ''}"
            if parts.port:
                netloc += f":{parts.port}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    store = Store(url, session.environment.name, fallback, float(table.get("connect_timeout", 5)), session.paths, session.redactor())
    session.stash[STORE] = store
    return store


def admin_store(session) -> Store:
    """The store as its owning role (``STORE_ADMIN_URL``), else as the runtime role; for schema commands."""
    store = store_for(session)
    if store is None:
        raise ConfigurationError(f"{session.settings.source} has no [store] table", 'add [store] url = "postgresql://..." (see docs/several-machines.md)')
    admin = reveal(session.credential("STORE_ADMIN_URL", by="store"))
    if not admin:
        return store
    return Store(admin, store.environment, store.fallback, store.timeout, store.paths, session.redactor())


def can_spool(store: Store) -> bool:
    """True when the environment's tree exists to keep records in (it is never created for them)."""
    return store.paths is not None and store.paths.base.is_dir()


@contextlib.contextmanager
def _spool_lock(store: Store) -> Iterator[None]:
    """The spool's lock (``locks/store-spool.lock``): appends and forwarding never interleave."""
    import fcntl

    from envfence import files

    with files.open_lock(store.paths, "store-spool") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def spool(store: Store, *items: dict[str, Any]) -> None:
    """Append records to the environment's spool, each line whole and fsynced.

    :raises EnvfenceError: there is no environment tree to spool into.
    """
    from envfence import files

    if not can_spool(store):
        raise EnvfenceError(f"the shared store {store.name} is away and there is no environment tree to keep records in",
                            "run `envfence init`, or bring the database back")
    with _spool_lock(store), files.open_append(store.paths, SPOOL_NAME, binary=True) as out:
        out.write(b"".join(json.dumps(i, sort_keys=True, default=str).encode("utf-8") + b"\n" for i in items))
        out.flush()
        os.fsync(out.fileno())


def forward(store: Store, db, key: bytes | None = None) -> int:
    """Send the spooled records to the store, then remove the spool; returns how many were sent.

    Runs are keyed by run id and audit records by event id, both unique in
    the database: a spool sent twice (a crash before it was removed) adds
    nothing the second time.
    """
    from envfence import files

    if not can_spool(store) or not (store.spool.exists() or store.spool.is_symlink()):
        return 0
    with _spool_lock(store):
        fd = os.open(store.spool, os.O_RDONLY | os.O_NOFOLLOW)  # a link here is refused, never read through
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read()
        items = []
        for line in raw.splitlines():
            with contextlib.suppress(ValueError):  # a line torn by a crash mid-write was never a whole record
                items.append(json.loads(line))
        for row in (i["row"] for i in items if i.get("kind") == "run"):
            finish_run(db, row)  # a run's start, then its end, in the order they happened
        by_env: dict[str, list] = {}
        for item in items:
            if item.get("kind") == "audit":
                by_env.setdefault(item["entry"]["environment"], []).append((item["event_id"], item["entry"]))
        for environment, entries in by_env.items():
            append_audit(db, environment, entries, key)
        files.remove(store.paths, SPOOL_NAME)
        return len(items)


def forward_quietly(store: Store, db, session) -> None:
    """Forward the spool if there is one; a failure leaves it for next time and is logged.

    :raises StoreBehind: the store must be migrated first (the spool waits for it).
    """
    try:
        with store.translated("forward spooled records"):
            sent = forward(store, db, audit_key_of(session))
    except StoreBehind:
        raise
    except Exception as exc:  # the spool stays; the next reach of the store tries again
        session.logger().warning(session.redactor()(f"could not forward the spooled records to {store.name}: {exc}"))
        return
    if sent:
        session.logger().info(f"forwarded {sent} spooled record(s) to {store.name}")


def run_row(session, outcome) -> dict[str, Any]:
    """A run as a row of the runs table."""
    from envfence.runs.measures import measures_json

    metrics = outcome.metrics
    return {
        "run_id": outcome.run_id, "automation": outcome.automation, "environment": outcome.environment,
        "host": metrics.get("host", session.host.hostname), "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(), "status": outcome.status, "exit_code": outcome.exit_code,
        "error_class": outcome.error_class, "error_id": outcome.error_id, "duration": outcome.duration,
        "cpu_seconds": metrics.get("cpu_seconds"), "peak_memory_kb": metrics.get("peak_memory_kb"),
        "forced": bool(outcome.forced), "reason": outcome.reason or None, "measures": measures_json(metrics),
    }


def insert_run(db, row: dict[str, Any]) -> None:
    """Record a run once (a run id already there is left as it is)."""
    db.execute(
        f"INSERT INTO {RUNS} ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('%s' for _ in _RUN_COLUMNS)}) "
        "ON CONFLICT (run_id) DO NOTHING",
        [row.get(c) for c in _RUN_COLUMNS],
    )


def finish_run(db, row: dict[str, Any]) -> None:
    """Record a run's row: a start is added; an end finishes the ``running`` row in place, or is added.

    A run already finished is left as it is, so a spool forwarded twice
    changes nothing the second time; one another host saw ``abandoned`` (its
    lock lost to a database restart) is finished by its own end. (One
    statement in the usual case: only the run's own process and its spool
    write a run id.)
    """
    from envfence_builtins.store.postgres_separation import RUN_FINISH_COLUMNS

    if row["status"] != "running":
        finished = db.execute(
            f"UPDATE {RUNS} SET {', '.join(f'{c} = %s' for c in RUN_FINISH_COLUMNS)} WHERE run_id = %s"
            " AND status IN ('running', 'abandoned')",
            [*(row.get(c) for c in RUN_FINISH_COLUMNS), row["run_id"]],
        ).rowcount
        if finished:
            return
    insert_run(db, row)


def running_row(session, run_id: str, automation: str, forced: bool, reason: str | None) -> dict[str, Any]:
    """A run as it starts: ``running``, no exit code yet (-1, as the local history keeps it)."""
    from envfence.models import utcnow

    stamp = utcnow().isoformat()
    return {"run_id": run_id, "automation": automation, "environment": session.environment.name,
            "host": session.host.hostname, "started_at": stamp, "finished_at": stamp, "status": "running",
            "exit_code": -1, "forced": bool(forced), "reason": reason or None}


def abandoned(db, environment: str, runs: list) -> list:
    """``runs`` with each ``running`` run whose process is gone shown ``abandoned``, from any host.

    A run holds its advisory lock while it runs: a ``running`` row whose
    automation's lock nobody holds, or older than a later run of the same
    automation, lost its process. The row is marked in the store when the
    role may (a reader only sees it so).
    """
    from envfence import slotted
    import psycopg

    later: dict[str, Any] = {}
    shown = []
    for run in sorted(runs, key=lambda r: r.started_at, reverse=True):
        if run.status == "running" and (run.automation in later or not _lock_held(db, advisory_key("run", environment, run.automation))):
            run = slotted.evolve(run, status="abandoned", error_class="abandoned")
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                db.execute(f"UPDATE {RUNS} SET status = 'abandoned', error_class = 'abandoned', finished_at = now()"
                           " WHERE run_id = %s AND status = 'running'", (run.run_id,))
        later.setdefault(run.automation, run)
        shown.append(run)
    order = {r.run_id: i for i, r in enumerate(runs)}
    return sorted(shown, key=lambda r: order[r.run_id])


def _lock_held(db, key: int) -> bool:
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    return db.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)", (high, low),
    ).fetchone()[0]


def read_runs(db, environment: str, automation: str | None, limit: int):
    """An environment's runs, newest first, as :class:`~envfence.models.RunOutcome`."""
    from envfence.models import RunOutcome
    from envfence.runs.measures import measures_from

    query = f"SELECT {', '.join(_RUN_COLUMNS)} FROM {RUNS} WHERE environment = %s"
    args: list[Any] = [environment]
    if automation:
        query += " AND automation = %s"
        args.append(automation)
    query += " ORDER BY started_at DESC LIMIT %s"
    args.append(int(limit))
    runs = []
    for values in db.execute(query, args).fetchall():
        r = dict(zip(_RUN_COLUMNS, values))
        runs.append(
            RunOutcome(
                run_id=r["run_id"], automation=r["automation"], environment=r["environment"], status=r["status"],
                exit_code=r["exit_code"], started_at=r["started_at"], finished_at=r["finished_at"],
                error_class=r["error_class"], error_id=r["error_id"], forced=r["forced"], reason=r["reason"],
                metrics={"host": r["host"], "cpu_seconds": r["cpu_seconds"], "peak_memory_kb": r["peak_memory_kb"],
                         **measures_from(r["measures"])},
            )
        )
    return runs


#: True when the session's run holds its lock in the store (its ``running`` row then says the run is alive).
STORE_LOCKED = StashKey[bool]()
#: True once a run of the session started: from then on the store being away never changes its result.
STARTED = StashKey[bool]()


def record_run(session, store: Store, row: dict[str, Any]) -> None:
    """Write a run's row (its start, or its end) to the store, or to the spool when the store is away: never lost."""
    try:
        with store.using("record the run") as db:
            finish_run(db, row)
    except StoreBehind as exc:
        spool(store, {"kind": "run", "row": row})
        say_behind(session, exc, f"the run's records are kept in {store.spool} and sent once it is migrated")
    except StoreUnavailable as exc:
        spool(store, {"kind": "run", "row": row})
        session.logger().warning(f"{exc.reason}; the run's record is kept in {store.spool} and sent when the store is back")


#: The most runs the store's totals are summed from (the newest), read one by one.
TOTALS_LIMIT = 1_000_000


#: Connections that held a run's lock and let it go, per process and URL: the next run
#: reuses one instead of paying for a new connection. One run, one connection: a
#: session-level advisory lock is re-entrant within its connection, so two threads
#: never share one.
_idle_locks: dict[tuple[int, str], list[Any]] = {}
_idle_guard = threading.Lock()


def lock_connection(store: Store, name: str):
    """A connection for one run's lock: an idle one of this process, or a new one."""
    with _idle_guard:
        idle = _idle_locks.setdefault((os.getpid(), store._url), [])
        if idle:
            return idle.pop()
    return store.connect(name, pooled=False, doing="take the run's lock")


def try_lock(db, store: Store, key: int, name: str):
    """``(connection, taken)``: try the lock, naming the connection after its holder
    (``pg_stat_activity`` shows who holds it); an idle connection the server dropped is replaced."""
    import psycopg

    try:
        return db, db.execute("SELECT pg_try_advisory_lock(%s), set_config('application_name', %s, false)",
                              (key, name[:63])).fetchone()[0]
    except psycopg.OperationalError:  # the server restarted since this connection was idle
        with contextlib.suppress(Exception):
            db.close()
    db = store.connect(name, pooled=False, doing="take the run's lock")
    return db, db.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]


@contextlib.contextmanager
def advisory_lock(session, db, store: Store, automation: str, wait: bool, echo, key: int, held: bool) -> Iterator[None]:
    """Hold the run's lock (already ``held``, or waited for) for the run; refuse when another holds it."""
    from envfence.runner import AlreadyRunning

    try:
        if not held:
            with store.translated("take the run's lock"):
                holder = _holder(db, key)
                if not wait:
                    raise AlreadyRunning(
                        f"{automation} is already running in {store.environment} ({holder})",
                        "wait for it to finish, or pass --wait to start when it does",
                    )
                echo(f"waiting: {automation} is already running ({holder})")
                db.execute("SELECT pg_advisory_lock(%s)", (key,))
                held = True
        session.stash[STORE_LOCKED] = True
        yield
    finally:
        session.stash[STORE_LOCKED] = False
        _release(db, store, key if held else None)


def _release(db, store: Store, key: int | None) -> None:
    """Let go of the lock and keep the connection for the next run; a connection in doubt is closed,
    which ends its session and so releases the lock, as a dead process would."""
    try:
        if key is not None:
            db.execute("SELECT pg_advisory_unlock(%s), set_config('application_name', 'envfence idle', false)", (key,))
        else:
            db.execute("SELECT set_config('application_name', 'envfence idle', false)")
        with _idle_guard:
            _idle_locks.setdefault((os.getpid(), store._url), []).append(db)
    except Exception:
        with contextlib.suppress(Exception):
            db.close()


def _holder(db, key: int) -> str:
    """Who holds advisory lock ``key``: the holder's application name (host and pid) and since when."""
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = db.execute(
        "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
        (high, low),
    ).fetchone()
    if row is None:
        return "held by another host"
    name, since = row
    return name.removeprefix("envfence ") or f"another host, connected since {since:%Y-%m-%d %H:%M:%S %Z}"


#: The environment's audit key, read once per session (None: the environment has none).
AUDIT_KEY = StashKey[Any]()


def audit_key_of(session) -> bytes | None:
    """The environment's audit key from the key ring: it signs the store's records as it signs the file trail's."""
    if AUDIT_KEY not in session.stash:
        from envfence import keyring

        name = session.environment.name
        key = keyring.find(session.root.path, name, session.settings.naming.prefix(name), session.environ, "audit")
        session.stash[AUDIT_KEY] = None if key is None else key.material
    return session.stash[AUDIT_KEY]


@contextlib.contextmanager
def held_state(store: Store, name: str, write: bool) -> Iterator[dict[str, Any]]:
    key = (store.environment, name)
    with store.using(f"hold the {name} state") as db, db.transaction():
        if write:  # readers never wait; writers queue behind each other
            db.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("state", *key),))
        row = db.execute(f"SELECT value FROM {STATE} WHERE environment = %s AND name = %s", key).fetchone()
        value = json.loads(row[0]) if row else {}
        before = json.dumps(value, sort_keys=True, default=str)
        yield value
        if write and json.dumps(value, sort_keys=True, default=str) != before:
            db.execute(
                f"INSERT INTO {STATE} (environment, name, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (environment, name) DO UPDATE SET value = excluded.value, updated_at = now()",
                (*key, json.dumps(value, sort_keys=True, default=str)),
            )
