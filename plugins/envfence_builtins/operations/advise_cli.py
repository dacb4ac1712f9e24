"""``envfence advise [--all-environments]``: recommendations with their numbers and what acts on them."""

from __future__ import annotations

import click

from envfence import slotted
from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps, style

from envfence_builtins.operations.advice_hooks import AdviceHooks


@examples(
    "envfence advise",
    "envfence --env production --json advise",
    "envfence advise --all-environments",
)
@click.command()
@json_option
@click.option("--all-environments", "every", is_flag=True, help="Advise on every declared environment, not only this one.")
@pass_state
def advise(state: State, every: bool) -> None:
    """Concrete recommendations from the run history: each with its numbers and the setting or command that acts.

    Durations that grow, limits that flap or are never approached, business
    metrics that shift, retries that never help, a disk that fills, schedules
    that pile up on one host, environments without alert channels. Advice is
    no failure: the exit code is 0.
    """
    import datetime as _dt

    session = state.session()
    names = list(session.settings.environments) if every else [session.environment.name]
    now = _dt.datetime.now(_dt.timezone.utc)
    found, seen = [], set()
    for env in names:
        current = session if env == session.environment.name else state.session_for(env)
        for item in AdviceHooks(current.plugins).advice(session=current, now=now).flat():
            key = (item.code, item.environment, item.automation)
            if key not in seen:  # settings-wide advice (alert channels) comes once whichever environment found it
                seen.add(key)
                found.append(item)
    if state.json:
        click.echo(dumps({"environments": names, "advice": [slotted.asdict(a) for a in found]}))
        return
    if not found:
        click.echo(f"no advice for {', '.join(names)}: nothing in the history or the settings calls for a change")
        return
    click.echo(style(f"{len(found)} piece(s) of advice for {', '.join(names)}", bold=True))
    for item in found:
        about = f" {item.automation}" if item.automation else ""
        click.echo(f"{style(item.code, fg='yellow', bold=True)} {item.environment}{about}: {item.message}")
        click.echo(f"  do: {item.action}")
