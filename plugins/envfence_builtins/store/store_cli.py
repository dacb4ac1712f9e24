"""``envfence store init|migrate|check|import``: the shared store's schema and data moves.

``init``, ``migrate`` and ``import`` connect as ``STORE_ADMIN_URL`` when that
credential is set (the role that owns the tables), else as the store's own
URL; ``check`` connects as envfence runs, to see what that role may do.
"""

from __future__ import annotations

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import Progress, dumps, style
from envfence.errors import EXIT_FINDINGS, ConfigurationError

from envfence_builtins.store import postgres_schema as schema
from envfence_builtins.store import postgres_separation as separation
from envfence_builtins.store.postgres_client import StoreUnavailable, admin_store, insert_run, store_for
from envfence_builtins.store.store_settings import settings_of
from envfence_builtins.store.postgres_schema import AUDIT, RUNS


@click.group()
def store() -> None:
    """Manage the shared PostgreSQL store ([store] in the settings)."""


def _finish(state: State, data: dict, lines: list[str], ok: bool = True) -> None:
    if state.json:
        click.echo(dumps(data))
    else:
        for line in lines:
            click.echo(line, err=not ok)
    if not ok:
        click.get_current_context().exit(EXIT_FINDINGS)


def separation_of(session) -> separation.Separation:
    """The roles ``[store] roles`` and ``readers`` declare (checked)."""
    return separation.from_settings(settings_of(session.settings) or {}, session.settings.environments, str(session.settings.source))


def _migrate(state: State, create: bool) -> None:
    session = state.session()
    target = admin_store(session)
    declared = separation_of(session)
    with target.using("apply migrations") as db:
        before = schema.current_version(db)
        if before is None and not create:
            raise ConfigurationError(f"the shared store {target.name} was never initialised", "run `envfence store init` first")
        applied = schema.migrate(db, create=create)
        if declared.declared:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
                separation.apply(db, declared)
    data = {"store": target.name, "from": before or 0, "to": schema.LATEST, "applied": [m.version for m in applied],
            "roles": {env: list(roles) for env, roles in declared.roles.items()}, "readers": list(declared.readers)}
    if applied:
        lines = [f"applied migration {m.version}: {m.description}" for m in applied]
        lines.append(f"{target.name} is at schema version {schema.LATEST}")
    else:
        lines = [f"{target.name} is already at schema version {schema.LATEST}; nothing to do"]
    if declared.declared:
        lines += [f"{env}'s rows: only {', '.join(roles)} (row-level security)" for env, roles in declared.roles.items()]
        lines += [f"every environment's rows, read only: {r}" for r in declared.readers]
    else:
        lines.append("warning: no [store.roles]: environments are not kept apart in the database (see docs/several-machines.md)")
    _finish(state, data, lines)


@examples(
    "envfence --env production store init",
)
@store.command("init")
@json_option
@pass_state
def init_cmd(state: State) -> None:
    """Create the store's tables (safe to repeat: applies only what is missing)."""
    _migrate(state, create=True)


@examples(
    "envfence --env production store migrate",
)
@store.command("migrate")
@json_option
@pass_state
def migrate_cmd(state: State) -> None:
    """Bring an initialised store's schema up to this envfence's version."""
    _migrate(state, create=False)


@examples(
    "envfence --env production store check",
)
@store.command("check")
@json_option
@pass_state
def check_cmd(state: State) -> None:
    """Check the store: reachable, migrated, and what envfence's role may do. Exit 1 on a problem."""
    session = state.session()
    target = store_for(session)
    if target is None:
        raise ConfigurationError(f"{session.settings.source} has no [store] table", 'add [store] url = "postgresql://..." (see docs/several-machines.md)')
    others = [e for e in session.settings.environments if e != target.environment] or ["envfence-check"]
    try:
        with target.using("check it") as db:
            data = {"store": target.name, "reachable": True, **schema.check(db)}
            if data["version"] == schema.LATEST:
                data["separation"], found = separation.probe(db, target.environment, others)
                data["problems"] += found
                if not separation_of(session).declared:
                    data["warnings"].append("no [store.roles] in the settings: `envfence store init` keeps no environment "
                                            "apart (see docs/several-machines.md)")
    except StoreUnavailable as exc:
        data = {"store": target.name, "reachable": False, "problems": [exc.message], "warnings": [], "migrated": False}
    data["fallback"] = target.fallback
    data["ok"] = not data["problems"]
    lines = [f"{'ok' if data['ok'] else 'problem'}: {target.name}"]
    if data["reachable"]:
        lines.append(f"  schema version {data['version']} (this envfence: {data['latest']})")
    lines += [f"  problem: {p}" for p in data["problems"]] + [f"  warning: {w}" for w in data["warnings"]]
    if not state.json and data["ok"]:
        for line in lines:
            click.echo(style(line, fg="yellow") if "warning" in line else line)
        return
    _finish(state, data, lines, ok=data["ok"])


@examples(
    "envfence --env production store import",
)
@store.command("import")
@json_option
@pass_state
def import_cmd(state: State) -> None:
    """Copy this environment's SQLite history and file audit trail into the store.

    Runs already in the store are skipped. The audit records keep their
    numbers and hashes, so `envfence audit verify` checks the same chain in
    the store; an import that was done already adds only what is new, and a
    store holding a different trail for the environment is left untouched.
    """
    session = state.session()
    target = admin_store(session)
    runs = _local_runs(session)
    records, trail = _local_trail(session)
    unkept = [what for what, got in (("run history (the history plugin)", runs), ("audit trail (the audit plugin)", records))
              if got is None]
    runs, records = runs or [], records or []
    with target.using("import") as db, Progress(state, "importing") as progress:
        progress.expect(len(runs) + len(records))
        before = db.execute(f"SELECT count(*) FROM {RUNS} WHERE environment = %s", (target.environment,)).fetchone()[0]
        with db.transaction():
            for row in runs:
                insert_run(db, row)
                progress.advance()
        after = db.execute(f"SELECT count(*) FROM {RUNS} WHERE environment = %s", (target.environment,)).fetchone()[0]
        added = _import_trail(db, target, records, trail)
        progress.advance(len(records))
    data = {
        "store": target.name, "environment": target.environment,
        "runs": {"read": len(runs), "added": after - before},
        "audit": {"trail": str(trail) if trail else None, "read": len(records), "added": added},
    }
    lines = [
        f"runs: {after - before} added of {len(runs)} read ({target.environment})",
        f"audit records: {added} added of {len(records)} read" + (f" ({trail})" if trail else ""),
    ] + [f"nothing read of the {what}: it is disabled" for what in unkept]
    data["not_read"] = unkept
    _finish(state, data, lines)


def _local_runs(session) -> list[dict] | None:
    """The environment's finished runs from the history kept in its tree (``local_runs``); None when no plugin keeps one."""
    from envfence_builtins.store.store_hooks import StoreHooks

    rows = StoreHooks(session.plugins).local_runs(session=session).first
    return None if rows is None else [dict(row) for row in rows]


def _local_trail(session):
    """The environment's file trail records, verified first by the plugin keeping it (``local_audit_records``)."""
    from envfence_builtins.store.store_hooks import StoreHooks

    kept = StoreHooks(session.plugins).local_audit_records(session=session).first
    if kept is None:
        return None, None
    return list(kept["records"]), kept.get("trail")


def _import_trail(db, target, records: list[dict], trail) -> int:
    """Copy the file records verbatim after the ones the store already has from the same trail."""
    import psycopg

    try:
        return _copy_trail(db, target, records, trail)
    except psycopg.errors.UniqueViolation:  # the table's key: another writer chained a record meanwhile
        raise ConfigurationError(
            f"records were added to {target.environment}'s trail in {target.name} during the import; nothing was imported",
            "run `envfence store import` again (it compares the store's trail with the file first)",
        ) from None


def _copy_trail(db, target, records: list[dict], trail) -> int:
    from envfence.audit_chain import canonical

    added = 0
    with db.transaction():
        present = [h for (h,) in db.execute(f"SELECT hash FROM {AUDIT} WHERE environment = %s ORDER BY seq", (target.environment,))]
        if present != [r["hash"] for r in records[: len(present)]]:
            raise ConfigurationError(
                f"the shared store {target.name} already holds a different audit trail for {target.environment}; "
                f"{trail} is not imported",
                "import a trail before the environment records into the store, or keep the file as the older trail",
            )
        for record in records[len(present):]:
            body = {k: v for k, v in record.items() if k != "hash"}
            db.execute(
                f"INSERT INTO {AUDIT} (environment, seq, event_id, at, event, host, record, prev, hash) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (target.environment, record["seq"], f"file:{record['hash']}", str(record.get("at")), str(record.get("event")),
                 record.get("host"), canonical(body).decode("utf-8"), record["prev"], record["hash"]),
            )
            added += 1
    return added
