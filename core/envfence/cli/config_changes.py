"""``envfence config migrate`` and ``config history``: the configuration's changes, applied and told.

Values are never shown as they are: a secret's is the mask, any other
value passes the session's redactor (a password inside a URL is masked).
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import EXIT_FINDINGS, EnvfenceError
from ..models import MASK
from . import State, pass_state
from .config import config
from .examples import examples
from .output import dotenv_value, dumps, style


def shown_value(session: Any, key: str, value: str | None) -> str | None:
    """``value`` of ``key`` as a change shows it: masked for a secret, redacted otherwise."""
    from ..layers import is_secret_key

    if value is None:
        return None
    plain = session.settings.naming.split(key)[1]
    declared = set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}
    if is_secret_key(plain, frozenset(declared)) or key in declared:
        return MASK
    return dotenv_value(session.redactor()(value))


def change_data(session: Any, change: Any) -> dict:
    """A :class:`~envfence.migration_files.Change` as JSON data, values shown masked."""
    return {"file": change.file, "action": change.action, "key": change.key, "to": change.to,
            "old": shown_value(session, change.key, change.old), "new": shown_value(session, change.to or change.key, change.new)}


def change_line(c: dict) -> str:
    """One change as a diff line."""
    if c["action"] == "renamed":
        return f"  ~ {c['file']}: {c['key']} -> {c['to']}  (value {c['new']})"
    if c["action"] == "moved":
        return f"  ~ {c['file']} -> {c['to']}: {c['key']}  (value {c['new']})"
    if c["action"] == "removed":
        return f"  - {c['file']}: {c['key']}={c['old']}"
    if c["action"] == "changed":
        return f"  ~ {c['file']}: {c['key']}={c['old']} -> {c['new']}"
    return f"  + {c['file']}: {c['key']}={c['new']}"


def _environments(state: State) -> list[Any]:
    """The sessions to migrate: ``--env``'s alone, else every declared environment's."""
    first = state.session()
    if state.env:
        return [first]
    return [first if env == first.environment.name else state.session_for(env) for env in first.settings.environments]


def _migrate_one(session: Any, dry_run: bool) -> dict:
    from .. import migrations

    env = session.environment.name
    try:
        applied = migrations.dry_run(session) if dry_run else migrations.migrate(session)
    except EnvfenceError as exc:
        redact = session.redactor()  # a Python migration's own exception may quote a value
        return {"environment": env, "migrations": [], "error": redact(exc.message), "hint": redact(exc.hint)}
    return {"environment": env, "migrations": [
        {"migration": a.migration, "version": a.version, "snapshot": a.snapshot,
         "changes": [change_data(session, c) for c in a.changes]} for a in applied]}


@examples(
    "envfence config migrate --dry-run           # the changes, values masked",
    "envfence config migrate                     # every environment",
    "envfence --env production config migrate",
)
@config.command("migrate")
@click.option("--dry-run", is_flag=True, help="Show the changes (values masked); write nothing.")
@pass_state
def migrate(state: State, dry_run: bool) -> None:
    """Apply the project's migrations (migrations/NNNN_*.toml|py) to every environment's .env files.

    Each environment applies, in order, the migrations it has not had. Each
    step is snapshotted first, recorded in the audit trail with the
    configuration version it produces, and rolled back to its snapshot if it
    fails. With --env, only that environment.
    """
    from ..migration_files import discover

    sessions = _environments(state)
    discover(sessions[0].root.path)  # a malformed migration stops everything, before any environment changes
    results = [_migrate_one(session, dry_run) for session in sessions]
    failed = any("error" in r for r in results)
    if state.json:
        click.echo(dumps({"dry_run": dry_run, "environments": results}))
    else:
        for r in results:
            _print(r, dry_run)
    click.get_current_context().exit(EXIT_FINDINGS if failed else 0)


def _print(result: dict, dry_run: bool) -> None:
    env = result["environment"]
    for m in result["migrations"]:
        done = " (dry run)" if dry_run else f" -> {m['version']} (snapshot {m['snapshot']} before it)"
        click.echo(style(f"{env}: {m['migration']}{done}", bold=True))
        for c in m["changes"]:
            click.echo(change_line(c))
        if not m["changes"]:
            click.echo("  no change in this environment's files")
    if "error" in result:
        click.echo(f"envfence: {env}: {result['error']}; its files were put back as they were", err=True)
        click.echo(f"  {result['hint']}", err=True)
    elif not result["migrations"]:
        click.echo(f"{env}: up to date")


@examples(
    "envfence config history",
    "envfence --env production config history HCP_API_KEY",
)
@config.command("history")
@click.argument("key", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="How many git commits to read, newest first.")
@pass_state
def history(state: State, key: str | None, limit: int) -> None:
    """How this environment's configuration changed (KEY's alone when given), values masked.

    From git (the commits of the tracked .env files) and from the
    environment's snapshots, oldest first; each change tied to the migration
    step or deployment that produced it, where one did.
    """
    from ..config_history import history as changes

    session = state.session()
    events = changes(session, key, lambda k, v: shown_value(session, k, v), limit)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "key": key, "events": events}))
        return
    if not events:
        click.echo(f"no recorded change of {key or 'the configuration'} in {session.environment.name} "
                   "(git commits of its .env files, or snapshots: `envfence config snapshot`)")
    for e in events:
        ref = e["ref"][:10] if e["source"] == "git" else e["ref"]
        who = f" {e['who']}:" if e["who"] else ""
        note = f"{who} {e['note']}" if e["note"] else who
        tied = f"  [{', '.join(e['tied_to'])}]" if e["tied_to"] else ""
        click.echo(style(f"{e['when'][:19].replace('T', ' ')}  {e['source']} {ref}  {e['version']}", bold=True) + tied)
        if note.strip():
            click.echo(style(f"  #{note}", dim=True))
        for c in e["changes"]:
            click.echo(change_line(c))
