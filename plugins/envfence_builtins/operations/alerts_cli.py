"""``envfence alerts show`` and ``envfence alerts retry``: open incidents, and alerts still to deliver."""

from __future__ import annotations

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps
from envfence.errors import EXIT_FINDINGS

from envfence_builtins.operations.alerts_delivery import channels_for, dispatch, load_state


@click.group()
def alerts() -> None:
    """Alerts of this environment: open incidents and undelivered alerts."""


@examples(
    "envfence --env production alerts show",
)
@alerts.command("show")
@json_option
@pass_state
def show(state: State) -> None:
    """Show open incidents, alerts waiting for delivery, and the channels this environment escalates to."""
    session = state.session()
    current = load_state(session) if session.paths is not None else {"incidents": {}, "pending": []}
    channels = channels_for(session.settings, session.environment.name)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "channels": channels, **current}))
        return
    click.echo(f"{session.environment.name}: alerts go to {', '.join(channels)}")
    for incident, data in current["incidents"].items():
        click.echo(f"open   {incident} since {data['since']}: {data['message']}")
    for pending in current["pending"]:
        click.echo(f"kept   {pending['alert']['incident']} ({pending['alert']['state']}) for {', '.join(pending['channels'])}: "
                   f"{pending['attempts']} attempt(s), last error: {pending['last_error']}")
    if not current["incidents"] and not current["pending"]:
        click.echo("no open incident, nothing waiting")


@examples(
    "envfence --env production alerts retry     # send what is still waiting",
)
@alerts.command("retry")
@json_option
@pass_state
def retry(state: State) -> None:
    """Deliver the alerts kept after a failed delivery; exit 1 when some are still undelivered."""
    session = state.session()
    session.prepare()
    result = dispatch(session, [])
    if state.json:
        click.echo(dumps(result))
    else:
        click.echo(f"{len(result['sent'])} delivered, {len(result['pending'])} still kept")
    if result["pending"]:
        click.get_current_context().exit(EXIT_FINDINGS)
