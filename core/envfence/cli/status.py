"""``envfence status``: the environment's recent runs and each automation's error rate."""

from __future__ import annotations

import click

from . import State, pass_state
from .output import dumps, style

_STATUS_COLOURS = {"succeeded": "green", "failed": "red", "blocked": "yellow"}


def read_history(session, automation: str | None = None, limit: int = 20):
    """The environment's runs, newest first, or None when no plugin keeps history."""
    return session.plugins.call("run_history", session=session, automation=automation, limit=limit)


def run_dict(run) -> dict:
    """A recorded run as JSON data."""
    return {
        "run_id": run.run_id,
        "automation": run.automation,
        "environment": run.environment,
        "host": run.metrics.get("host"),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "exit_code": run.exit_code,
        "error_class": run.error_class,
        "error_id": run.error_id,
        "duration": round(run.duration, 3),
        "cpu_seconds": run.metrics.get("cpu_seconds"),
        "peak_memory_kb": run.metrics.get("peak_memory_kb"),
        "forced": run.forced,
        "reason": run.reason,
    }


def error_rates(runs) -> dict[str, dict]:
    """Per automation: runs, failures and the failure rate over ``runs``."""
    rates: dict[str, dict] = {}
    for run in runs:
        entry = rates.setdefault(run.automation, {"runs": 0, "failed": 0})
        entry["runs"] += 1
        entry["failed"] += run.status != "succeeded"
    for entry in rates.values():
        entry["error_rate"] = round(entry["failed"] / entry["runs"], 3)
    return rates


@click.command()
@click.option("--automation", "automation", metavar="NAME", help="Only this automation's runs.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000), help="How many recent runs.")
@click.option("--json", "json_output", is_flag=True, help="Machine output on stdout.")
@pass_state
def status(state: State, automation, limit, json_output) -> None:
    """Show the current environment's recent runs and error rates."""
    session = state.session()
    runs = read_history(session, automation, limit)
    env = session.environment.name
    if runs is None:
        raise click.ClickException("no plugin keeps run history here (is the `history` plugin disabled?)")
    rates = error_rates(runs)
    if state.json or json_output:
        click.echo(dumps({"environment": env, "runs": [run_dict(r) for r in runs], "error_rates": rates}))
        return
    if not runs:
        click.echo(f"no runs recorded in {env}" + (f" for {automation}" if automation else ""))
        return
    if state.verbose(session):
        click.echo(style(f"# last {len(runs)} run(s) in {env}, newest first", bold=True))
    for run in runs:
        data = run_dict(run)
        mark = style(f"{run.status:<9}", fg=_STATUS_COLOURS.get(run.status))
        line = (
            f"{run.started_at:%Y-%m-%d %H:%M:%S}  {run.automation:<20} {mark} exit {run.exit_code:<3} "
            f"{data['duration']:>8.2f}s"
        )
        if data["cpu_seconds"] is not None:
            line += f"  cpu {data['cpu_seconds']:.2f}s"
        if data["peak_memory_kb"]:
            line += f"  mem {data['peak_memory_kb'] / 1024:.0f} MiB"
        if run.error_class:
            line += f"  {run.error_class} [{run.error_id}]"
        if run.forced:
            line += f"  forced ({run.reason or 'no reason given'})"
        click.echo(line)
    if state.verbose(session):
        click.echo(style("# error rate per automation over these runs", bold=True))
    for name, entry in rates.items():
        click.echo(f"{name:<20} {entry['failed']}/{entry['runs']} failed ({entry['error_rate']:.0%})")
