"""``envfence health``: one Nagios line first, then each check; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import attrs
import click

from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps, style

from .health import STATES, run_checks, summary, worst

_COLOURS = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "magenta"}


@click.command()
@json_option
@click.option("--alert", "send", is_flag=True, help="Also send what crossed a threshold through the environment's alert channels (once per incident).")
@pass_state
def health(state: State, send: bool) -> None:
    """Check this environment's health: missed runs, failures, thresholds, locks, disk, audit chain.

    \b
    Exit codes follow the Nagios plugin convention:
    0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    session = state.session()
    checks = run_checks(session)
    status = worst(checks)
    delivery = None
    if send:
        from .alerts import alerts_from_checks, dispatch

        session.prepare()
        delivery = dispatch(session, alerts_from_checks(session, checks))
    if state.json:
        data = {"environment": session.environment.name, "status": status, "exit_code": STATES.index(status),
                "summary": summary(session.environment.name, checks), "checks": [attrs.asdict(c) for c in checks]}
        if delivery is not None:
            data["alerts"] = delivery
        click.echo(dumps(data))
    else:
        click.echo(summary(session.environment.name, checks))
        verbose = state.verbose(session)
        for check in checks:
            if check.state != "OK" or verbose:
                click.echo(f"{style(check.state, fg=_COLOURS[check.state], bold=True)} {check.name}: {check.message}")
        if delivery is not None:
            click.echo(f"alerts: {len(delivery['sent'])} sent, {len(delivery['pending'])} kept for retry")
    click.get_current_context().exit(STATES.index(status))
