"""The shared store: run history, run locks and the audit trail in PostgreSQL, for several machines.

Selected by the settings::

    [store]
    url = "postgresql://envfence@db.internal:5432/envfence"   # no password here
    fallback = "refuse"                                      # or "local"

The password comes from the credential ``STORE_PASSWORD`` and the whole URL
may come from ``STORE_URL``, both read through the environment's prefix
(``PROD_STORE_PASSWORD``), so each environment connects with its own role.
``STORE_ADMIN_URL`` is the owning role's URL, used only by ``envfence store
init``, ``migrate`` and ``import``.

What the store does, once selected:

- ``acquire_run_lock``: a PostgreSQL advisory lock per automation and
  environment, on a connection only that run uses while it holds it (kept by
  the process for its next run): two hosts never run the same automation at
  once, and the lock goes when the process dies.
- ``on_run_finish`` / ``run_history``: the same records and queries as the
  SQLite history, for every environment in one place (``status --compare``).
- ``audit_event``: a hash-chained, append-only table, checked by ``envfence
  audit verify``.

The local SQLite history and file audit trail keep being written beside it.
When the database cannot be reached, ``fallback = "refuse"`` (the default)
refuses the run (exit 4); ``"local"`` runs under the local file lock and
spools the run's records in the environment's tree (``store-spool.jsonl``),
forwarded the next time the store is reached: each record carries an id the
database keeps unique, so nothing is lost or recorded twice.

psycopg is imported only inside the functions that talk to the database.
"""

from __future__ import annotations

import contextlib
import os
import time

from envfence import hookimpl
from envfence.models import SettingSpec

from envfence_builtins.store.store_settings import TABLE, settings_of

# The client, the audit chain and the queue are imported by the hooks that use a store: every session asks
# this plugin what it declares and whether it chains an event, and a project without [store] only reads
# its settings (store_settings) to answer.


def _unused(session) -> bool:
    """True when the project has no ``[store]``: every hook answers without importing the client."""
    return settings_of(session.settings) is None


@hookimpl
def declare_tables():
    """The ``[store]`` table."""
    return [TABLE]


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """The store's credentials, secret wherever they appear (only when ``[store]`` is used)."""
    if settings_of(settings) is None:
        return []
    return [
        SettingSpec("STORE_URL", "the shared store's URL, password included (replaces [store] url)", secret=True, credential=True, plugin="store"),
        SettingSpec("STORE_PASSWORD", "the password of the [store] url's role", secret=True, credential=True, plugin="store"),
        SettingSpec("STORE_ADMIN_URL", "the owning role's URL, for envfence store init/migrate/import", secret=True, credential=True, plugin="store"),
    ]


@hookimpl
def on_run_start(session, request, run_id) -> None:
    """Mirror the run in the store as ``running``: any host sees it, and sees it abandoned if its process dies."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return
    from envfence_builtins.store.postgres_client import STARTED, STORE_LOCKED, record_run, running_row, spool, store_for

    store = store_for(session)
    if store is None or session.dry_run:
        return
    session.stash[STARTED] = True
    row = running_row(session, run_id, request.automation.name, request.force, request.reason)
    if not session.stash.get(STORE_LOCKED, False):  # run under the local lock: the store hears of it later, whole
        spool(store, {"kind": "run", "row": row})
        return
    record_run(session, store, row)


@hookimpl
def on_run_finish(session, request, outcome) -> None:
    """Record how the run ended in the store; kept in the spool when the store is away, whatever the fallback."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return
    from envfence_builtins.store.postgres_client import record_run, run_row, store_for

    store = store_for(session)
    if store is None or session.dry_run:
        return
    record_run(session, store, run_row(session, outcome))


@hookimpl(tryfirst=True)
def run_history(session, automation, limit):
    """The environment's runs from the store; with ``fallback = "local"`` and the store away, the local history answers."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence_builtins.store.postgres_client import (
        STARTED, StoreBehind, StoreUnavailable, abandoned, can_spool, forward_quietly, read_runs, say_behind, store_for,
    )

    store = store_for(session)
    if store is None:
        return None
    try:
        with store.using("read the run history") as db:
            if can_spool(store):
                forward_quietly(store, db, session)
            return abandoned(db, store.environment, read_runs(db, store.environment, automation, limit))
    except StoreBehind as exc:
        say_behind(session, exc, "the local history answers meanwhile")
        return None
    except StoreUnavailable:
        if store.fallback == "local" or session.stash.get(STARTED, False):
            return None  # the local history answers (after a run: its thresholds and alerts read it)
        raise


@hookimpl(tryfirst=True)
def run_totals(session, since, buckets):
    """The store's runs summed (read one by one, as ``run_history`` reads them): the totals of the history that answers.

    None where ``run_history`` gives way to the local history (no store, or
    the store away with ``fallback = "local"``): the local history sums its own.
    """
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence.runs.totals import from_runs
    from envfence_builtins.store.postgres_client import TOTALS_LIMIT, store_for

    if store_for(session) is None:
        return None
    runs = run_history(session, None, TOTALS_LIMIT)
    if runs is None:
        return None
    return from_runs((r for r in runs if since is None or r.started_at >= since), buckets)


@hookimpl
def acquire_run_lock(session, automation, wait, echo):
    """The run's lock in the store: an advisory lock on a connection only this run uses while it holds it.

    With the store away: ``fallback = "local"`` answers None (the core takes
    its file lock); otherwise the run is refused (exit 4).
    """
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence_builtins.store.postgres_client import (
        StoreUnavailable, advisory_key, advisory_lock, forward_quietly, lock_connection, store_for, try_lock,
    )

    store = store_for(session)
    if store is None:
        return None
    if session.prepared:  # the events the audit log sent while the store's credentials were read, first
        _write_unwritten(session, store)
    name = f"envfence {session.host.hostname} pid {os.getpid()} {automation} since {time.strftime('%H:%M:%SZ', time.gmtime())}"
    key = advisory_key("run", store.environment, automation)
    try:  # tried here, so that a store gone away is known while the run can still fall back
        with store.translated("take the run's lock"):
            db, taken = try_lock(lock_connection(store, name), store, key, name)
    except StoreUnavailable as exc:
        if store.fallback == "local":
            echo(f"warning: {exc.reason}; running with the local lock ([store] fallback = \"local\")")
            return None
        raise
    with contextlib.suppress(StoreUnavailable), store.using("forward spooled records") as pooled:
        forward_quietly(store, pooled, session)
    return advisory_lock(session, db, store, automation, wait, echo, key, taken)


@hookimpl
def audit_event(session, event) -> None:
    """Chain the event onto the environment's trail in the store, once the session is prepared.

    Before that, the store keeps the events in the session's stash and writes
    them first, in order, as the file trail does with the ones the audit log
    held; a refused run (``run.blocked``) is recorded at once. With the store
    away the events are spooled in the environment's tree and forwarded later.
    """
    if _unused(session):
        return
    from envfence.audit import KEPT_UNPREPARED
    from envfence_builtins.store.postgres_client import RESOLVING, UNWRITTEN, store_for

    unwritten = session.stash.setdefault(UNWRITTEN, [])
    unwritten.append(event)
    if session.stash.get(RESOLVING, False) or (not session.prepared and event.event not in KEPT_UNPREPARED):
        return
    store = store_for(session)
    if store is None:
        return
    _write_unwritten(session, store)


def _write_unwritten(session, store) -> None:
    """Chain the session's events not yet written onto the store's trail (spooled with the store away)."""
    import uuid

    from envfence import audit_chain
    from envfence_builtins.store.postgres_audit import append_audit
    from envfence_builtins.store.postgres_client import UNWRITTEN, StoreUnavailable, audit_key_of, can_spool, spool

    unwritten = session.stash.setdefault(UNWRITTEN, [])
    if not unwritten:
        return
    common = audit_chain.context(session)
    entries = [(uuid.uuid4().hex, audit_chain.entry(common, e)) for e in unwritten]
    unwritten.clear()
    try:
        with store.using("record an audit event") as db:
            append_audit(db, store.environment, entries, audit_key_of(session))
    except StoreUnavailable:
        if can_spool(store):
            spool(store, *({"kind": "audit", "event_id": i, "entry": e} for i, e in entries))


@hookimpl(optionalhook=True)  # declared by the plugin that offers it; absent without it
def verify_audit_store(session):
    """``envfence audit verify``'s check of the store's chain for this environment, or None without a store."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence_builtins.store.postgres_audit import verify_audit
    from envfence_builtins.store.postgres_client import StoreUnavailable, audit_key_of, can_spool, forward_quietly, store_for

    store = store_for(session)
    if store is None:
        return None
    try:
        with store.using("verify the audit trail") as db:
            if can_spool(store):
                forward_quietly(store, db, session)
            count, problem = verify_audit(db, store.environment, audit_key_of(session))
    except StoreUnavailable as exc:
        return {"store": store.name, "records": 0, "ok": False, "broken": {"seq": None, "reason": exc.message}}
    return {"store": store.name, "records": count, "ok": problem is None, "broken": problem}


@hookimpl(optionalhook=True)  # declared by the plugin that offers it; absent without it
def open_webhook_queue(session):
    """The environment's webhook queue in the store, shared by receivers and workers on every host."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence_builtins.store.postgres_client import store_for

    store = store_for(session)
    if store is None:
        return None
    from envfence_builtins.store.postgres_queue import PostgresQueue

    return PostgresQueue(store)


@hookimpl(optionalhook=True)  # declared by the plugin that offers it; absent without it
def hold_state(session, name, write):
    """The environment's state ``name`` in the store, locked across hosts while held (see the hookspec)."""
    if _unused(session):  # the client stays unloaded: store_for answers None
        return None
    from envfence_builtins.store.postgres_client import StoreUnavailable, held_state, store_for

    store = store_for(session)
    if store is None:
        return None
    try:
        store.connect(doing=f"hold the {name} state")
    except StoreUnavailable:
        if store.fallback == "local":
            return None  # the plugin's own file keeps it meanwhile
        raise
    return held_state(store, name, write)


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``local_runs`` and ``local_audit_records``: what ``store import`` copies from the tree."""
    from envfence_builtins.store.store_hooks import StoreHookspecs

    register(StoreHookspecs)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence store init|migrate|check|import``."""
    from envfence_builtins.store.store_cli import store

    cli.add_command(store)
