"""``envfence health``: one Nagios line first, then each check; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import attrs
import click

from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps, style
from envfence.errors import EnvfenceError

from envfence_builtins.operations.health import STATES, Check, run_checks, summary, worst

_COLOURS = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "magenta"}


def _report(session, send: bool) -> dict:
    """One environment's checks, sent as alerts when asked."""
    checks = run_checks(session)
    data = {"environment": session.environment.name, "status": worst(checks), "checks": checks}
    if send:
        from envfence_builtins.operations.alerts import alerts_from_checks, dispatch, held_state

        session.prepare()
        try:
            with held_state(session):  # from reading the open incidents to saving them: one alert across hosts
                data["alerts"] = dispatch(session, alerts_from_checks(session, checks))
        except EnvfenceError as exc:  # the checks still stand; monitoring hears UNKNOWN, not a plugin crash
            checks.append(Check("alerts", "UNKNOWN", f"alerts not sent: {exc.message} ({exc.hint})"))
            data["status"] = worst(checks)
    return data


def _every_environment(state: State, send: bool) -> list[dict]:
    """The report of each declared environment; one whose session cannot open is UNKNOWN, the others still run."""
    current = state.session()
    reports = []
    for env in current.settings.environments:
        try:
            session = current if env == current.environment.name else state.session_for(env)
            reports.append(_report(session, send))
        except EnvfenceError as exc:
            check = Check("session", "UNKNOWN", f"cannot open {env}: {exc.message}")
            reports.append({"environment": env, "status": "UNKNOWN", "checks": [check]})
    return reports


@click.command()
@json_option
@click.option("--alert", "send", is_flag=True, help="Also send what crossed a threshold through the environment's alert channels (once per incident).")
@click.option("--all-environments", "every", is_flag=True,
              help="Check every declared environment: one summary line each, the exit code of the worst.")
@pass_state
def health(state: State, send: bool, every: bool) -> None:
    """Check this environment's health (every environment's with --all-environments): missed runs, failures, thresholds, locks, disk, audit chain.

    \b
    Exit codes follow the Nagios plugin convention:
    0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    reports = _every_environment(state, send) if every else [_report(state.session(), send)]
    status = worst(Check(r["environment"], r["status"], "") for r in reports)
    for report in reports:
        report["summary"] = summary(report["environment"], report["checks"])
    if state.json:
        rows = [{"environment": r["environment"], "status": r["status"], "exit_code": STATES.index(r["status"]),
                 "summary": r["summary"], "checks": [attrs.asdict(c) for c in r["checks"]],
                 **({"alerts": r["alerts"]} if "alerts" in r else {})} for r in reports]
        data = {"status": status, "exit_code": STATES.index(status), "environments": rows} if every else rows[0]
        click.echo(dumps(data))
    else:
        if every:
            states = ", ".join(f"{r['environment']} {r['status']}" for r in reports)
            click.echo(f"{status} - {len(reports)} environment(s): {states}")
        # Across environments, OK checks only with -v: one environment's profile does not speak for the others.
        verbose = state.verbosity > 0 if every else state.verbose(state.session())
        for report in reports:
            click.echo(report["summary"])
            for check in report["checks"]:
                if check.state != "OK" or verbose:
                    click.echo(f"{'  ' if every else ''}{style(check.state, fg=_COLOURS[check.state], bold=True)} "
                               f"{check.name}: {check.message}")
            if "alerts" in report:
                delivery = report["alerts"]
                click.echo(f"alerts: {len(delivery['sent'])} sent, {len(delivery['pending'])} kept for retry")
    click.get_current_context().exit(STATES.index(status))
