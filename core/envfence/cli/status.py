"""``envfence status``: the environment's recent runs and each automation's error rate."""

from __future__ import annotations

import click

from ..errors import UsageError
from . import State, pass_state
from .examples import examples
from .output import dumps, style

_STATUS_COLOURS = {"succeeded": "green", "failed": "red", "blocked": "yellow", "abandoned": "red", "running": "cyan"}


def read_history(session, automation: str | None = None, limit: int = 20):
    """The environment's runs, newest first, or None when no plugin keeps history."""
    return session.plugins.run_history(session=session, automation=automation, limit=limit).first


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
        "job_exit_code": run.exit_code if run.status in ("succeeded", "failed") else None,  # history keeps the job's own
        "error_class": run.error_class,
        "error_id": run.error_id,
        "duration": round(run.duration, 3),
        "cpu_seconds": run.metrics.get("cpu_seconds"),
        "peak_memory_kb": run.metrics.get("peak_memory_kb"),
        "forced": run.forced,
        "reason": run.reason,
        "business": dict(run.metrics.get("business") or {}),  # what the job reported: name -> {value, unit}
        "steps": dict(run.metrics.get("steps") or {}),  # seconds per step
    }


def business_text(run) -> str:
    """``records_synced=42 records, rejected=0``: a run's business metrics on one line (empty when none)."""
    parts = []
    for name, entry in sorted((run.metrics.get("business") or {}).items()):
        unit = f" {entry['unit']}" if entry.get("unit") else ""
        parts.append(f"{name}={entry['value']:g}{unit}")
    return ", ".join(parts)


def steps_text(run) -> str:
    """``fetch 1.20s (60%), write 0.80s (40%)``: where a run's time went (empty when it named no steps)."""
    steps = run.metrics.get("steps") or {}
    total = run.duration or sum(steps.values()) or 1.0
    return ", ".join(f"{name} {seconds:.2f}s ({seconds / total:.0%})" for name, seconds in steps.items())


#: A run still going has no outcome yet: it counts neither as a run nor as a failure.
RUNNING = "running"


def _failed(run) -> bool:
    """Every ended run that did not succeed is a failure: failed, and abandoned (its process died)."""
    return run.status not in ("succeeded", RUNNING)


def _rate(failed: int, runs: int) -> float:
    return round(failed / runs, 3) if runs else 0.0


def error_rates(runs) -> dict[str, dict]:
    """Per automation: ended runs, failures and the failure rate over ``runs`` (running ones left out)."""
    rates: dict[str, dict] = {}
    for run in runs:
        entry = rates.setdefault(run.automation, {"runs": 0, "failed": 0})
        entry["runs"] += run.status != RUNNING
        entry["failed"] += _failed(run)
    for entry in rates.values():
        entry["error_rate"] = _rate(entry["failed"], entry["runs"])
    return rates


#: A run this many times slower than its environment's median is an anomaly.
SLOW_FACTOR = 3.0


def _median(values: list[float]) -> float | None:
    from ..stats import median

    return median(values)


def comparison(runs_by_env: dict[str, list]) -> dict:
    """Each automation's runs compared across environments, with what stands out.

    ``runs_by_env`` maps an environment to its runs, newest first. Notes name
    automations that fail in more than one environment (a shared cause) and
    latest runs slower than ``SLOW_FACTOR`` times their environment's median
    (each environment is its own baseline).
    """
    rows, notes = [], []
    # Each environment's runs grouped once (newest first kept): a history of thousands of automations stays linear.
    grouped: dict[str, dict[str, list]] = {}
    for env, runs in runs_by_env.items():
        for run in runs:
            grouped.setdefault(run.automation, {}).setdefault(env, []).append(run)
    for name in sorted(grouped):
        failing, named = [], []
        for env in runs_by_env:
            mine = grouped[name].get(env)
            if not mine:
                continue
            durations = [r.duration for r in mine if r.status in ("succeeded", "failed")]
            cpu = [r.metrics.get("cpu_seconds") for r in mine if r.metrics.get("cpu_seconds") is not None]
            failed = sum(_failed(r) for r in mine)
            ended = sum(r.status != RUNNING for r in mine)
            named.append({
                "automation": name,
                "environment": env,
                "runs": ended,
                "failed": failed,
                "error_rate": _rate(failed, ended),
                "median_seconds": _median(durations),
                "max_seconds": max(durations) if durations else None,
                "median_cpu_seconds": _median(cpu),
                "peak_memory_kb": max((r.metrics.get("peak_memory_kb") or 0 for r in mine), default=0) or None,
                "last_status": mine[0].status,
                "business": _business_medians(mine),
                "error_classes": sorted({r.error_class for r in mine if _failed(r) and r.error_class}),
            })
            if failed:
                failing.append(env)
            baseline = _median(durations[1:])
            if baseline and durations and durations[0] > SLOW_FACTOR * baseline and durations[0] - baseline > 0.05:
                notes.append(
                    f"{name} in {env}: the latest run took {durations[0]:.2f}s, "
                    f"{durations[0] / baseline:.0f}x its median of {baseline:.2f}s"
                )
        if len(failing) > 1:
            notes.append(f"{name} fails in {' and '.join(failing)}: look for a cause they share")
        rows += named
        notes.extend(_across(name, named))
    return {"environments": list(runs_by_env), "automations": rows, "notes": notes}


def _business_medians(runs) -> dict[str, float]:
    """The median of each business metric the successful runs reported."""
    from ..stats import median

    values: dict[str, list[float]] = {}
    for run in runs:
        if run.status == "succeeded":
            for metric, entry in (run.metrics.get("business") or {}).items():
                values.setdefault(metric, []).append(entry["value"])
    return {metric: median(found) for metric, found in sorted(values.items())}


def _across(name: str, rows: list[dict]) -> list[str]:
    """What sets one environment apart from another on the same work: the same error class, far slower, far less done."""
    notes = []
    classes: dict[str, list[str]] = {}
    for row in rows:
        for error_class in row["error_classes"]:
            classes.setdefault(error_class, []).append(row["environment"])
    notes += [f"{name} fails with {cls} errors in {' and '.join(envs)}" for cls, envs in sorted(classes.items()) if len(envs) > 1]
    timed = [r for r in rows if r["median_seconds"]]
    if len(timed) > 1:
        slow, fast = max(timed, key=lambda r: r["median_seconds"]), min(timed, key=lambda r: r["median_seconds"])
        ratio = slow["median_seconds"] / fast["median_seconds"]
        if ratio >= SLOW_FACTOR and slow["median_seconds"] - fast["median_seconds"] > 0.05:
            notes.append(f"{name} is {ratio:.1f}x slower in {slow['environment']} than in {fast['environment']} "
                         f"(median {slow['median_seconds']:.2f}s against {fast['median_seconds']:.2f}s)")
    return notes


def _show_comparison(state: State, automation, limit) -> None:
    runs_by_env = {}
    current = state.session()
    for env in current.settings.environments:
        session = current if env == current.environment.name else state.session_for(env)
        runs = read_history(session, automation, limit)
        if runs is None:
            raise click.ClickException("no plugin keeps run history here (is the `history` plugin disabled?)")
        runs_by_env[env] = runs
    data = comparison(runs_by_env)
    if state.json:
        click.echo(dumps(data))
        return
    if not data["automations"]:
        click.echo("no runs recorded in any environment")
        return
    click.echo(style(f"# each automation across environments (last {limit} runs of each)", bold=True))
    for row in data["automations"]:
        median = "-" if row["median_seconds"] is None else f"{row['median_seconds']:.2f}s"
        cpu = "" if row["median_cpu_seconds"] is None else f"  cpu {row['median_cpu_seconds']:.2f}s"
        if row["peak_memory_kb"]:
            cpu += f"  mem {row['peak_memory_kb'] / 1024:.0f} MiB"
        if row["business"]:
            cpu += "  [" + ", ".join(f"{k} {v:g}" for k, v in row["business"].items()) + "]"
        click.echo(
            f"{row['automation']:<20} {row['environment']:<12} {row['runs']:>4} run(s)  "
            f"{row['failed']} failed ({row['error_rate']:.0%})  median {median}{cpu}  last {row['last_status']}"
        )
    for note in data["notes"]:
        click.echo(style(f"note: {note}", fg="yellow"))


@examples(
    "envfence status",
    "envfence status --automation import-jobs --limit 5",
    "envfence status --compare              # every environment side by side",
)
@click.command()
@click.option("--automation", "automation", metavar="NAME", help="Only this automation's runs.",
              shell_complete=lambda ctx, param, incomplete: __import__("envfence.cli.completion", fromlist=["x"]).automations(ctx, param, incomplete))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000), help="How many recent runs.")
@click.option("--compare", is_flag=True, help="Compare every environment: error rates, durations, anomalies.")
@pass_state
def status(state: State, automation, limit, compare) -> None:
    """Show the current environment's recent runs and error rates (--compare: every environment)."""
    if compare:
        _show_comparison(state, automation, limit)
        return
    session = state.session()
    runs = read_history(session, automation, limit)
    env = session.environment.name
    if runs is None:
        raise click.ClickException("no plugin keeps run history here (is the `history` plugin disabled?)")
    if automation and not runs and automation not in session.automations and automation != "exec":
        # A typo would otherwise look like an automation that never ran.
        import difflib

        guess = difflib.get_close_matches(automation, sorted(session.automations), n=1)
        raise UsageError(
            f"no automation {automation!r} in this project, and no run of it recorded in {env}",
            f"did you mean {guess[0]!r}?" if guess else "`envfence list` shows the automations",
        )
    rates = error_rates(runs)
    if state.json:
        click.echo(dumps({"environment": env, "runs": [run_dict(r) for r in runs], "error_rates": rates}))
        return
    if not runs:
        click.echo(f"no runs recorded in {env}" + (f" for {automation}" if automation else ""))
        return
    if not session.profile.debug and state.verbosity <= 0:
        _monitoring_form(runs, rates)
        return
    _runs_listing(state, session, runs, rates)
    if session.profile.debug and state.verbose(session):
        _detail(session, runs)


def _monitoring_form(runs, rates) -> None:
    """Production's status: one ``key=value`` line per automation, its newest run first (for monitoring and grep)."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    newest = {}
    for run in runs:
        newest.setdefault(run.automation, run)
    for name, run in newest.items():
        entry = rates[name]
        state = "ok" if run.status in ("succeeded", "running") else "failing"
        started = run.started_at.astimezone(timezone.utc)
        click.echo(
            f"{name} state={state} last={run.status}@{started:%Y-%m-%dT%H:%M:%SZ} age={int((now - started).total_seconds())}s "
            f"runs={entry['runs']} failed={entry['failed']} error_rate={entry['error_rate']:.0%}"
        )


def _detail(session, runs) -> None:
    """Development's status ends with where things are and the last error, for debugging."""
    paths = session.paths
    click.echo(style("# detail", bold=True))
    if paths is not None:
        click.echo(f"tree        {paths.base}")
        click.echo(f"log         {session.log_file or paths.log_file()}")
    click.echo(f"settings    {session.settings.source or 'none (defaults)'}")
    click.echo(f"profile     {session.profile.name} (based on {session.profile.based_on})")
    failed = next((r for r in runs if r.status not in ("succeeded", "running")), None)
    if failed is None:
        click.echo("last error  none in these runs")
    else:
        where = f" [{failed.error_id}]: the traceback is in the log under that id" if failed.error_id else ""
        click.echo(f"last error  {failed.started_at:%Y-%m-%d %H:%M:%S} {failed.automation} {failed.status} "
                   f"({failed.error_class or 'no class'}){where}")


def _runs_listing(state, session, runs, rates) -> None:
    """The recent runs, one line each, then the error rate per automation (headers when verbose)."""
    env = session.environment.name
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
        if run.error_class and run.error_class != run.status:  # an abandoned run says so once, with no error id
            line += f"  {run.error_class}" + (f" [{run.error_id}]" if run.error_id else "")
        if run.forced:
            line += f"  forced ({run.reason or 'no reason given'})"
        if business_text(run):
            line += f"  [{business_text(run)}]"
        click.echo(line)
        if steps_text(run) and state.verbose(session):
            click.echo(f"{'':21}steps: {steps_text(run)}")
    if state.verbose(session):
        click.echo(style("# error rate per automation over these runs", bold=True))
    for name, entry in rates.items():
        click.echo(f"{name:<20} {entry['failed']}/{entry['runs']} failed ({entry['error_rate']:.0%})")
