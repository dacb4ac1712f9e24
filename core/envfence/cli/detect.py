"""``envfence detect``: which environment, why, and what the host says."""

from __future__ import annotations

import click

from . import State, pass_state
from ..models import Report
from .examples import examples
from .output import dumps, style


def detection_data(session) -> dict:
    """The detection facts as JSON data."""
    env, host, root = session.environment, session.host, session.root
    return {
        "environment": env.name,
        "method": env.method,
        "evidence": env.evidence,
        "decided_at": env.decided_at.isoformat(),
        "profile": {"name": session.profile.name, "based_on": session.profile.based_on, "strict": session.profile.strict},
        "host": host_data(host),
        "root": {"path": str(root.path), "method": root.method},
        "settings": session.settings.source,
    }


def host_data(host) -> dict:
    """The host's identity and class as JSON data; ``real`` is the system's own name under a stand-in."""
    rule = next((r for e, r in host.matches if e == host.environment), None)
    return {
        "hostname": host.hostname,
        "source": host.source,
        "machine_id": host.machine_id,
        "class": host.environment,
        "ambiguous": host.ambiguous,
        "enrolled": host.enrolled,
        "rule": rule,
        "matches": [{"environment": e, "rule" if host.enrolled else "token": t} for e, t in host.matches],
        "suspects": [{"environment": e, "keyword": k} for e, k in host.suspects],
        "real": host_data(host.real) if host.real is not None else None,
    }


def host_notes(session) -> list:
    """What the host plugins say about this host for this environment (``HOST_NOT_ENROLLED`` and the line to add),
    after the plugins that failed while the session was decided (a host classifier that raised): detection
    made without them is said to be so. Only the ``host_notes`` hook is asked, not the whole validation."""
    failed = [f for f in session.load_findings if f.code == "PLUGIN_ERROR"]
    asked = session.plugins.host_notes(session=session)
    return list(Report(tuple(failed)).extend(session.redact_findings(asked.flat() + asked.findings())).findings)


@examples(
    "envfence detect                       # the environment, how it was decided, the host's class",
    "envfence -q detect                    # one line, for scripts",
    "envfence --env production --json detect",
)
@click.command()
@pass_state
def detect(state: State) -> None:
    """Show the environment, how it was decided, and the host's class."""
    session = state.session()
    data = detection_data(session)
    if not state.json and not state.verbose(session):
        click.echo(
            f"environment={data['environment']} method={data['method'].replace(' ', '_')} "
            f"host_class={data['host']['class'] or 'none'} root={data['root']['path']}"
        )
        return
    notes = host_notes(session)
    data["notes"] = [{"code": f.code, "message": f.message, "remediation": f.remediation} for f in notes]
    if state.json:
        click.echo(dumps(data))
        return
    env, host = session.environment, session.host
    click.echo(f"environment  {style(env.name, bold=True)}")
    click.echo(f"  decided by {env.describe()}")
    click.echo(f"  at         {data['decided_at']}")
    for view in (host, host.real):
        if view is None:
            continue
        click.echo(f"host         {view.hostname} [{view.source}]: {view.describe()}")
    click.echo(f"  machine id {_machine_id_text(session)}")
    click.echo(f"profile      {session.profile.name} (based on {session.profile.based_on}{', strict' if session.profile.strict else ''})")
    click.echo(f"root         {session.root.path} (found by {session.root.method})")
    click.echo(f"settings     {session.settings.source}")
    if host.environment and host.environment != env.name:
        says = "this host is enrolled in" if host.enrolled else "this host's name says"
        click.echo(
            style(f"note: {says} {host.environment}, not {env.name}; runs here are blocked unless forced", fg="yellow"),
        )
    for note in notes:
        click.echo(style(f"note: {note.message}", fg="yellow"))
        click.echo(f"  {note.remediation}")


def _machine_id_text(session) -> str:
    """The machine id, or why there is none: only a plugin that classifies hosts reads it."""
    if session.host.machine_id:
        return session.host.machine_id
    if not session.host.classified:
        return "not read (no plugin classifies hosts)"
    return "none (no /etc/machine-id)"
