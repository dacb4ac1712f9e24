"""``envfence audit show`` and ``envfence audit verify``: read the environment's trail (never write it)."""

from __future__ import annotations

import datetime as _dt
import fnmatch

import click

from envfence.cli import State, pass_state
from envfence.cli.output import dumps, style
from envfence.cli.params import Since
from envfence.errors import EXIT_FINDINGS

from .audit_trail import records, trail_path, verify


@click.group()
def audit() -> None:
    """Read the environment's audit trail."""


def _trail(state: State):
    session = state.session()
    paths = session.paths
    if paths is None:
        raise click.UsageError("no plugin computes the environment's directories; enable the directories plugin")
    return session, trail_path(paths)


def _json_option(f):
    def turn_on(ctx, param, value):
        if value:
            ctx.find_object(State).json = True

    return click.option("--json", is_flag=True, expose_value=False, callback=turn_on, help="Machine output (as the global --json).")(f)


@audit.command("show")
@_json_option
@click.option("--since", type=Since(), help="Only records from this moment on: an age (2h, 7d) or an ISO date or time.")
@click.option("--event", "events", multiple=True, metavar="NAME", help="Only these events (globs allowed: run.*); repeatable.")
@pass_state
def show(state: State, since, events) -> None:
    """Show the environment's audit records, oldest first."""
    session, trail = _trail(state)
    found = []
    if trail.exists():
        for record in records(trail):
            try:
                at = _dt.datetime.fromisoformat(record.get("at", ""))
            except ValueError:
                at = None
            if since is not None and (at is None or at < since):
                continue
            if events and not any(fnmatch.fnmatchcase(str(record.get("event")), e) for e in events):
                continue
            found.append(record)
    if state.json:
        click.echo(dumps(found))
        return
    if not trail.exists():
        click.echo(f"no audit trail yet for {session.environment.name} ({trail}); it starts with `envfence init` or the first run")
        return
    for record in found:
        data = record.get("data") or {}
        details = " ".join(f"{k}={json_short(v)}" for k, v in data.items())
        click.echo(
            f"{style(str(record.get('at')), dim=True)} #{record.get('seq')} {style(str(record.get('event')), bold=True)} "
            f"{record.get('user')}@{record.get('host')} {details}"
        )
    if not found:
        click.echo("no matching records")


def json_short(value) -> str:
    """A compact rendering of a record value for one line."""
    import json

    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


@audit.command("verify")
@_json_option
@pass_state
def verify_cmd(state: State) -> None:
    """Check the trail's hash chain; exit 1 and show the first broken record."""
    session, trail = _trail(state)
    if not trail.exists():
        count, problem = 0, None
    else:
        count, problem = verify(trail)
    checked = session.plugins.verify_audit_store(session=session)  # a chain kept in a shared store
    stores = [*checked.values, *({"store": f"plugin {e.plugin}", "records": 0, "ok": False,
                                  "broken": {"seq": None, "reason": session.redactor()(str(e))}} for e in checked.errors)]
    if state.json:
        click.echo(dumps({"trail": str(trail), "exists": trail.exists(), "records": count, "ok": problem is None, "broken": problem, "stores": stores}))
    elif problem is None:
        click.echo(f"ok: {count} record(s), chain intact ({trail})" if trail.exists() else f"no audit trail yet ({trail})")
    else:
        where = f"line {problem['line']}" if problem["line"] else str(trail)
        seq = f" (record #{problem['seq']})" if problem.get("seq") is not None else ""
        click.echo(f"broken: {trail}: {where}{seq}: {problem['reason']}", err=True)
        click.echo(f"  {count} record(s) before it are intact; keep the file as evidence and investigate", err=True)
    for kept in [] if state.json else stores:
        if kept["ok"]:
            click.echo(f"ok: {kept['records']} record(s), chain intact ({kept['store']})")
        else:
            seq = f" record #{kept['broken']['seq']}:" if kept["broken"].get("seq") is not None else ""
            click.echo(f"broken: {kept['store']}:{seq} {kept['broken']['reason']}", err=True)
    if problem is not None or not all(kept["ok"] for kept in stores):
        click.get_current_context().exit(EXIT_FINDINGS)

