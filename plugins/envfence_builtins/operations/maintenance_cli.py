"""``envfence pause`` and ``envfence resume``: hold an automation (or all) in this environment, on the record."""

from __future__ import annotations

import datetime as _dt

import click

from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps
from envfence.cli.params import Age
from envfence.models import utcnow

from envfence_builtins.operations.maintenance_windows import ALL, pauses, set_pause


class Until(click.ParamType):
    """A moment ahead: an age from now (``2h``, ``3d``) or an ISO date or time (UTC when no zone)."""

    name = "TIME"

    def convert(self, value, param, ctx):
        if isinstance(value, _dt.datetime):
            return value
        try:
            return (utcnow() + Age().convert(value, param, ctx)).replace(microsecond=0)
        except click.BadParameter:
            pass
        try:
            moment = _dt.datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither an age (2h, 3d) nor an ISO date or time (2026-12-24T08:00)", param, ctx)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)
        if moment <= utcnow():
            self.fail(f"{value!r} is in the past", param, ctx)
        return moment


def _target(session, automation: str | None, every: bool) -> str:
    from envfence.runner import find_automation

    if every == bool(automation):
        raise click.UsageError("name one automation, or pass --all")
    return ALL if every else find_automation(session, automation).name


@examples(
    "envfence pause import-jobs --until 2h --reason \"Airtable maintenance\"",
    "envfence --env production pause --all --reason \"migration\"",
)
@click.command()
@json_option
@click.argument("automation", required=False)
@click.option("--all", "every", is_flag=True, help="Pause every automation of this environment.")
@click.option("--until", type=Until(), help="When the pause ends by itself: an age (2h, 3d) or an ISO time; default: until resumed.")
@click.option("--reason", required=True, help="Why: recorded with the pause and in the audit trail.")
@pass_state
def pause(state: State, automation, every: bool, until, reason: str) -> None:
    """Pause AUTOMATION (or --all) in this environment: its runs are refused (exit 3) unless forced."""
    from envfence.runner import current_user

    session = state.session()
    name = _target(session, automation, every)
    session.prepare()
    reason = session.redactor()(reason)
    record = {"until": until.isoformat() if until else None, "reason": reason, "by": current_user(), "at": utcnow().isoformat()}
    set_pause(session, name, record)
    session.audit("automation.paused", automation=name, until=record["until"], reason=reason)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "automation": name, **record}))
    else:
        what = "every automation" if name == ALL else name
        click.echo(f"paused {what} in {session.environment.name} {'until ' + record['until'] if until else 'until resumed'}")


@examples(
    "envfence resume import-jobs",
    "envfence --env production resume --all",
)
@click.command()
@json_option
@click.argument("automation", required=False)
@click.option("--all", "every", is_flag=True, help="Lift the pause of every automation (the --all pause and each one's own).")
@pass_state
def resume(state: State, automation, every: bool) -> None:
    """Lift the pause of AUTOMATION (or --all) in this environment."""
    session = state.session()
    name = _target(session, automation, every)
    current = pauses(session)
    lifted = [n for n in current if every or n == name]
    if lifted:
        session.prepare()
        for n in lifted:
            set_pause(session, n, None)
            session.audit("automation.resumed", automation=n)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "resumed": lifted}))
    elif lifted:
        click.echo(f"resumed {', '.join('every automation' if n == ALL else n for n in lifted)} in {session.environment.name}")
    else:
        click.echo(f"{'nothing' if every else name} was paused in {session.environment.name}")
