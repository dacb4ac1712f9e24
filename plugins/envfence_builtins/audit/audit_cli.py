"""``envfence audit show|verify|anchor|keygen|restart``: read, check, anchor and start over the environment's trail.

``show`` and ``verify`` stream the trail (memory stays flat however long it
is) and never write it; ``show --last N`` reads from the end.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import color_enabled, dumps, style
from envfence.cli.params import Since
from envfence.errors import EXIT_FINDINGS, EnvfenceError, UsageError

from envfence import audit_chain

from .append import ACKNOWLEDGED, LOST, append
from .head import parse_anchor
from .reading import open_snapshot, records, records_from_end
from .sealing import move_aside, seal
from .trail_files import trail_path
from .trail_session import audit_key, has_runs
from .verify import verify
from .audit_hooks import AuditHooks


@click.group()
def audit() -> None:
    """Read, verify and anchor the environment's audit trail."""


def _session(state: State):
    session = state.session()
    if session.paths is None:
        raise click.UsageError("no plugin computes the environment's directories; enable the directories plugin")
    return session


def _matches(record: dict, since, events) -> bool:
    if since is not None:
        try:
            at = _dt.datetime.fromisoformat(record.get("at", ""))
        except (TypeError, ValueError):
            return False
        if at < since:
            return False
    return not events or any(fnmatch.fnmatchcase(str(record.get("event")), e) for e in events)


def _line(record: dict, colour: bool) -> str:
    data = record.get("data") or {}
    details = " ".join(f"{k}={json_short(v)}" for k, v in data.items()) if isinstance(data, dict) else json_short(data)
    at, event = str(record.get("at")), str(record.get("event"))
    if colour:
        at, event = style(at, dim=True), style(event, bold=True)
    return f"{at} #{record.get('seq')} {event} {record.get('user')}@{record.get('host')} {details}"


def _echo_in_batches(lines, size: int = 2000, sep: str = "\n") -> int:
    """Print ``lines`` a batch at a time (one write per line is most of the cost on a long trail); how many.

    Each line is followed by ``sep``.
    """
    batch, count = [], 0
    for line in lines:
        batch.append(line)
        count += 1
        if len(batch) == size:
            click.echo(sep.join(batch) + sep, nl=False)
            batch = []
    if batch:
        click.echo(sep.join(batch) + sep, nl=False)
    return count


@examples(
    "envfence audit show --last 20",
    "envfence audit show --event 'run.*' --since 24h",
    "envfence --env production --json audit show --event run.forced",
)
@audit.command("show")
@json_option
@click.option("--since", type=Since(), help="Only records from this moment on: an age (2h, 7d) or an ISO date or time.")
@click.option("--event", "events", multiple=True, metavar="NAME", help="Only these events (globs allowed: run.*); repeatable.")
@click.option("--last", "last", type=click.IntRange(1, 1_000_000), metavar="N", help="Only the last N records (read from the end).")
@pass_state
def show(state: State, since, events, last) -> None:
    """Show the environment's audit records, oldest first."""
    session = _session(state)
    paths = session.paths
    trail = trail_path(paths)
    if last is not None:
        found = iter(records_from_end(paths, last, lambda r: _matches(r, since, events)))
    else:
        found = (r for r in records(paths) if _matches(r, since, events))
    if state.json:
        # Streamed, one record a line (compact: the indenting encoder is pure
        # Python, several times slower): a long trail never sits in memory.
        encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
        click.echo("[")
        _echo_in_batches(((",\n" if n else "") + encode(record) for n, record in enumerate(found)), sep="")
        click.echo("\n]")
        return
    colour = color_enabled()
    if _echo_in_batches(_line(record, colour) for record in found):
        return
    if not _exists(paths):
        click.echo(f"no audit trail yet for {session.environment.name} ({trail}); it starts with `envfence init` or the first run")
    else:
        click.echo("no matching records")


def _exists(paths) -> bool:
    with open_snapshot(paths) as snapshot:
        return snapshot.fd is not None


def json_short(value) -> str:
    """A compact rendering of a record value for one line."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


@examples(
    "envfence --env production audit verify",
    "envfence --env production audit verify --anchor \"$(cat anchor.txt)\"",
)
@audit.command("verify")
@json_option
@click.option("--anchor", "anchor_line", metavar="LINE", help="A line printed by `envfence audit anchor`: the trail must still extend it.")
@pass_state
def verify_cmd(state: State, anchor_line) -> None:
    """Check the trail: its chain, its head and signature, an anchor; exit 1 and show the first problem."""
    session = _session(state)
    anchor = parse_anchor(anchor_line) if anchor_line else None
    key = audit_key(session)
    verdict = verify(session.paths, key=key, anchor=anchor, has_runs=lambda: has_runs(session))
    problem, trail = verdict.problem, verdict.trail
    if problem is not None:  # a security event: the alert channels hear of it (never written into the broken trail)
        session.audit("audit.broken", trail=str(trail), reason=problem["reason"], line=problem.get("line"), seq=problem.get("seq"))
    checked = AuditHooks(session.plugins).verify_audit_store(session=session)  # a chain kept in a shared store
    stores = [*checked.values, *({"store": f"plugin {e.plugin}", "records": 0, "ok": False,
                                  "broken": {"seq": None, "reason": session.redactor()(str(e))}} for e in checked.errors)]
    if state.json:
        click.echo(dumps({
            "trail": str(trail), "exists": verdict.exists, "records": verdict.records, "ok": verdict.ok,
            "broken": problem, "notes": verdict.notes, "signed": verdict.signed,
            "anchored": verdict.anchored if anchor else None, "stores": stores,
        }))
    elif problem is None:
        if not verdict.exists:
            click.echo(f"no audit trail yet ({trail})")
        else:
            sealed = "signed head" if verdict.signed else ("head not signed: no audit key (envfence audit keygen)" if key is None else "")
            anchored = f"; extends the anchor at record #{anchor.seq}" if anchor else ""
            click.echo(f"ok: {verdict.records} record(s), chain intact, {sealed}{anchored} ({trail})")
        for note in verdict.notes:
            click.echo(f"  note: {note}")
    else:
        where = f"line {problem['line']}" if problem["line"] else str(trail.name)
        seq = f" (record #{problem['seq']})" if problem.get("seq") is not None else ""
        click.echo(f"broken: {trail}: {where}{seq}: {problem['reason']}", err=True)
        click.echo(f"  {verdict.records} record(s) before it are intact; keep the files as evidence and investigate", err=True)
    for kept in [] if state.json else stores:
        if kept["ok"]:
            click.echo(f"ok: {kept['records']} record(s), chain intact ({kept['store']})")
        else:
            seq = f" record #{kept['broken']['seq']}:" if kept["broken"].get("seq") is not None else ""
            click.echo(f"broken: {kept['store']}:{seq} {kept['broken']['reason']}", err=True)
    if problem is not None or not all(kept["ok"] for kept in stores):
        click.get_current_context().exit(EXIT_FINDINGS)


@examples(
    "envfence --env production audit anchor > anchor.txt   # keep it somewhere else",
)
@audit.command("anchor")
@json_option
@pass_state
def anchor_cmd(state: State) -> None:
    """Verify the trail, seal its head (signed with the audit key) and print a line to keep elsewhere.

    Keep the line where the trail's writers cannot change it (a ticket, the
    status base); `envfence audit verify --anchor LINE` later proves that the
    trail still extends it.
    """
    session = _session(state)
    key = audit_key(session)
    verdict = verify(session.paths, key=None, has_runs=lambda: has_runs(session))
    if not verdict.ok or not verdict.exists:
        reason = verdict.problem["reason"] if verdict.problem else "there is no trail yet"
        raise EnvfenceError(f"{verdict.trail}: not anchored: {reason}", "run `envfence audit verify` and investigate first")
    if key is not None and verdict.head is not None and verdict.head.mac and not verify(session.paths, key=key).ok:
        raise EnvfenceError(
            f"{verdict.trail}: its head's signature is not the audit key's; not anchored",
            "run `envfence audit verify`: the trail or its head was rewritten without the key",
        )
    head = seal(session.paths, key)
    if state.json:
        click.echo(dumps({"anchor": head.anchor(), "seq": head.seq, "hash": head.hash, "signed": bool(head.mac)}))
        return
    click.echo(head.anchor())
    if key is None:
        click.echo("  note: unsigned: no audit key (run `envfence audit keygen`); the line still pins the trail's content", err=True)


@examples(
    "envfence --env production audit keygen",
)
@audit.command("keygen")
@json_option
@pass_state
def keygen(state: State) -> None:
    """Create this environment's audit key file (owner-only, outside the tree; never overwritten)."""
    import secrets

    from envfence import keyring

    session = _session(state)
    path = keyring.create(session.root.path, session.environment.name, "audit", secrets.token_hex(32).encode() + b"\n")
    click.echo(dumps({"key_file": str(path)}) if state.json else f"created {path} (mode 600); keep it out of version control and out of the trail writers' reach")
    if _exists(session.paths) and verify(session.paths).ok:
        seal(session.paths, audit_key(session))


@examples(
    "envfence --env production audit restart --reason \"INC-7: trail restored from backup\"",
)
@audit.command("restart")
@click.option("--reason", required=True, help="Why the trail is started over (recorded as its first record).")
@pass_state
def restart(state: State, reason: str) -> None:
    """Start over a trail that fails verification, on the record.

    A broken trail is moved aside (kept as evidence) and a new one starts with
    the reason. A trail that a run started over because the old one was gone
    is kept, and the acknowledgement is recorded in it.
    """
    session = _session(state)
    if not reason.strip():
        raise UsageError("--reason is empty", "say why the trail is started over")
    paths = session.paths
    verdict = verify(paths, key=audit_key(session), has_runs=lambda: has_runs(session))
    if verdict.ok:
        raise UsageError(f"{verdict.trail} verifies; it is not started over", "nothing to do")
    common = audit_chain.context(session)
    reason = session.redactor()(reason)
    if verdict.unacknowledged and verdict.problem["reason"].startswith(LOST):
        # Runs went on in a trail an append started over: keep it, and record the acknowledgement.
        entry = {"at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "event": ACKNOWLEDGED, "environment": paths.environment, **common, "data": {"reason": reason}}
        append(paths, [entry], key=audit_key(session), context=common)
        click.echo(f"recorded the acknowledgement in {verdict.trail}")
        return
    moved = move_aside(paths)
    data = {"problem": (verdict.problem or {}).get("reason"), "moved": [p.name for p in moved]}
    entry = {"at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "event": "audit.moved_aside", "environment": paths.environment, **common, "data": data}
    append(paths, [entry], key=audit_key(session), context=common, restart_reason=reason)
    for path in moved:
        click.echo(f"kept {path}")
    click.echo(f"started a new trail: {verdict.trail}")
