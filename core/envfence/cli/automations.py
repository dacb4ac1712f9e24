"""``envfence list``: every automation, where it may run, its last run and next time here."""

from __future__ import annotations

import click

from . import State, pass_state
from .output import dumps, style


def automation_data(session, automation, last) -> dict:
    """One automation as JSON data, seen from the session's environment."""
    from ..cron import CronError, parse
    from ..models import utcnow

    env = session.environment.name
    schedule = automation.schedule_for(env)
    try:
        upcoming = parse(schedule).next_after(utcnow()) if schedule else None
    except CronError:  # a plugin registered a schedule that is no cron expression: list it, with no next time
        upcoming = None
    return {
        "name": automation.name,
        "description": automation.description,
        "kind": "command" if automation.command is not None else "function",
        "environments": [*automation.environments] or ["*"],
        "allowed_here": automation.allows(env),
        "settings": [*automation.settings],
        "schedule": schedule,
        "next_run": upcoming,
        "last_run": None
        if last is None
        else {
            "run_id": last.run_id,
            "started_at": last.started_at,
            "status": last.status,
            "duration": round(last.duration, 3),
        },
        "plugin": automation.plugin,
    }


@click.command("list")
@pass_state
def list_automations(state: State) -> None:
    """List automations: description, environments, last run and next scheduled time here."""
    from ..runner import collect_automations

    session = state.session()
    env = session.environment.name
    items = []
    for automation in collect_automations(session).values():
        runs = session.plugins.call("run_history", session=session, automation=automation.name, limit=1) or []
        items.append(automation_data(session, automation, runs[0] if runs else None))
    if state.json:
        click.echo(dumps({"environment": env, "automations": items}))
        return
    if not items:
        click.echo("no automations; declare them under [automations] in the settings")
        return
    verbose = state.verbose(session)
    for item in items:
        if not verbose:  # one line each, for scripts and operators
            last = item["last_run"]
            click.echo(
                f"{item['name']} environments={','.join(item['environments'])} allowed={str(item['allowed_here']).lower()} "
                f"last={last['status'] + '@' + last['started_at'].strftime('%Y-%m-%dT%H:%M:%SZ') if last else 'never'} "
                f"next={item['next_run'].strftime('%Y-%m-%dT%H:%MZ') if item['next_run'] else 'unscheduled'}"
            )
            continue
        allowed = "" if item["allowed_here"] else style(f" (not allowed in {env})", fg="yellow")
        click.echo(style(item["name"], bold=True) + allowed + (f"  {item['description']}" if item["description"] else ""))
        click.echo(f"    environments: {', '.join(item['environments'])}")
        last = item["last_run"]
        click.echo(
            "    last run:     "
            + (f"{last['started_at']:%Y-%m-%d %H:%M:%S} {last['status']} ({last['duration']:.2f}s)" if last else "never")
        )
        if item["schedule"] and item["next_run"]:
            click.echo(f"    schedule:     {item['schedule']}, next {item['next_run']:%Y-%m-%d %H:%M} UTC")


list = list_automations  # noqa: A001  the name COMMANDS looks up
