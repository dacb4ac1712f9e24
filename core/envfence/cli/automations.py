"""``envfence list``: every automation, where it may run, its last run and next time here."""

from __future__ import annotations

import datetime
import json

import click

from . import State, pass_state
from .examples import examples
from .output import dumps, style


def automation_data(session, automation, last) -> dict:
    """One automation as JSON data, seen from the session's environment."""
    from ..automations import installed_firing
    from ..cron import CronError, parse, schedule_zone

    env = session.environment.name
    schedule = automation.schedule_for(env)
    try:
        zone = schedule_zone(session.environ, session.settings.timezone)
        # As the scheduler that runs it fires: daylight saving differs between cron, systemd and Kubernetes.
        scheduler = (installed_firing(session, automation) or (schedule, "crontab"))[1]
        upcoming = parse(schedule).next_after(datetime.datetime.now(zone), scheduler) if schedule else None
    except CronError:  # a bad schedule or zone (check reports it): list the automation, with no next time
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
        "state": automation_state(session, automation),
    }


def automation_state(session, automation) -> dict:
    """What plugins say of the automation's state here (``paused``...), merged."""
    state: dict = {}
    for result in session.plugins.automation_state(session=session, automation=automation).values:
        state.update(result)
    return state


@examples(
    "envfence list",
    "envfence -v list                      # with schedules and next firing times",
    "envfence --env production --json list",
)
@click.command("list")
@pass_state
def list_automations(state: State) -> None:
    """List automations: description, environments, last run and next scheduled time here."""
    session = state.session()
    env = session.environment.name
    items = []
    for automation in session.automations.values():
        runs = session.plugins.run_history(session=session, automation=automation.name, limit=1).first or []
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
            # In UTC, as last= is, so scripts compare them without a zone database.
            upcoming = item["next_run"] and item["next_run"].astimezone(datetime.timezone.utc)
            click.echo(
                f"{item['name']} environments={','.join(item['environments'])} allowed={str(item['allowed_here']).lower()} "
                f"last={last['status'] + '@' + last['started_at'].strftime('%Y-%m-%dT%H:%M:%SZ') if last else 'never'} "
                f"next={upcoming.strftime('%Y-%m-%dT%H:%MZ') if upcoming else 'unscheduled'}"
                + "".join(f" {key}={json.dumps(value, separators=(',', ':'), default=str)}" for key, value in item["state"].items())
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
            click.echo(f"    schedule:     {item['schedule']}, next {item['next_run']:%Y-%m-%d %H:%M %Z}")
        for key, value in item["state"].items():
            click.echo(style(f"    {key + ':':<14}{_short(value)}", fg="yellow"))


def _short(value) -> str:
    """A state value on one line: a mapping as ``until=... reason=...``."""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items() if v is not None) or "yes"
    return str(value)


list = list_automations  # noqa: A001  the name COMMANDS looks up
