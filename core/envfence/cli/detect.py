"""``envfence detect``: which environment, why, and what the host says."""

from __future__ import annotations

import click

from . import State, pass_state
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
        "host": {
            "hostname": host.hostname,
            "source": host.source,
            "class": host.environment,
            "ambiguous": host.ambiguous,
            "matches": [{"environment": e, "token": t} for e, t in host.matches],
        },
        "root": {"path": str(root.path), "method": root.method},
        "settings": session.settings.source,
    }


@click.command()
@pass_state
def detect(state: State) -> None:
    """Show the environment, how it was decided, and the host's class."""
    session = state.session()
    data = detection_data(session)
    if state.json:
        click.echo(dumps(data))
        return
    if not state.verbose(session):
        click.echo(
            f"environment={data['environment']} method={data['method'].replace(' ', '_')} "
            f"host_class={data['host']['class'] or 'none'} root={data['root']['path']}"
        )
        return
    env, host = session.environment, session.host
    click.echo(f"environment  {style(env.name, bold=True)}")
    click.echo(f"  decided by {env.describe()}")
    click.echo(f"  at         {data['decided_at']}")
    click.echo(f"host         {host.hostname} [{host.source}]: {host.describe()}")
    click.echo(f"profile      {session.profile.name} (based on {session.profile.based_on}{', strict' if session.profile.strict else ''})")
    click.echo(f"root         {session.root.path} (found by {session.root.method})")
    click.echo(f"settings     {session.settings.source}")
    if host.environment and host.environment != env.name:
        click.echo(
            style(f"note: this host's name says {host.environment}, not {env.name}; runs here are blocked unless forced", fg="yellow"),
        )
