"""``envfence health``: one Nagios line first, then each check; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import click

from envfence import slotted
from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps, style
from envfence.errors import EnvfenceError

from envfence_builtins.operations.health_checks import STATES, nagios_text, performance, run_checks, summary, worst
from envfence_builtins.operations.health_hooks import Check

_COLOURS = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "magenta"}


class NagiosCommand(click.Command):
    """A command that speaks only the monitoring plugin protocol: whatever fails, exit 3 and a first line saying why.

    The Monitoring Plugins Development Guidelines allow exit codes 0-3 only;
    a usage error, settings that cannot be read or a bug are UNKNOWN.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _unknown(ctx, f"bad usage: {exc.format_message()} (see envfence health --help)")
            raise AssertionError("unreachable")  # _unknown exits

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except EnvfenceError as exc:
            _unknown(ctx, f"cannot check: {exc.message} ({exc.hint})")
        except Exception as exc:  # a bug still answers monitoring in its protocol
            _unknown(ctx, f"cannot check: internal error {type(exc).__name__}: {exc}")


def _unknown(ctx: click.Context, why: str) -> None:
    from envfence.cli import error_redactor

    why = error_redactor(ctx)(why)
    state = ctx.find_object(State)
    if (state is not None and state.json) or "--json" in ctx.meta.get("envfence.args", ()):
        click.echo(dumps({"status": "UNKNOWN", "exit_code": 3, "summary": f"UNKNOWN - {why}", "checks": []}))
    else:
        click.echo(f"UNKNOWN - {nagios_text(why)}")
    ctx.exit(STATES.index("UNKNOWN"))


def _report(session, send: bool) -> dict:
    """One environment's checks, sent as alerts when asked."""
    checks = run_checks(session)
    data = {"environment": session.environment.name, "status": worst(checks), "checks": checks,
            "perfdata": performance(session)}
    if send:
        from envfence_builtins.operations.health_hooks import HealthHooks

        session.prepare()
        try:
            sent = HealthHooks(session.plugins).health_alerts(session=session, checks=checks).first
        except EnvfenceError as exc:  # the checks still stand; monitoring hears UNKNOWN, not a plugin crash
            sent, problem = None, f"alerts not sent: {exc.message} ({exc.hint})"
        else:
            problem = None if sent is not None else "alerts not sent: no plugin sends them (enable the alerts plugin)"
        if problem is None:
            data["alerts"] = sent
        else:
            checks.append(Check("alerts", "UNKNOWN", problem))
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
            reports.append({"environment": env, "status": "UNKNOWN", "checks": [check], "perfdata": []})
    return reports


@examples(
    "envfence health",
    "envfence --env production health --alert   # for cron or a monitoring agent",
    "envfence health --all-environments",
)
@click.command(cls=NagiosCommand)
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
        if every:  # one line holds every environment's figures: each label says whose
            report["perfdata"] = [slotted.evolve(p, label=f"{report['environment']} {p.label}") for p in report["perfdata"]]
    if state.json:
        rows = [{"environment": r["environment"], "status": r["status"], "exit_code": STATES.index(r["status"]),
                 "summary": r["summary"], "checks": [slotted.asdict(c) for c in r["checks"]],
                 "perfdata": [str(p) for p in r["perfdata"]],
                 **({"alerts": r["alerts"]} if "alerts" in r else {})} for r in reports]
        data = {"status": status, "exit_code": STATES.index(status), "environments": rows} if every else rows[0]
        click.echo(dumps(data))
    elif status != "OK" or state.verbosity >= 0:
        # -q, as the scheduled check runs: silent when all is well, or cron would mail the OK line every few minutes
        _print(state, reports, status, every)
    click.get_current_context().exit(STATES.index(status))


def _print(state: State, reports: list[dict], status: str, every: bool) -> None:
    """The plugin's output: status and perfdata on the first line, then one line per check (names made safe)."""
    perfdata = " ".join(str(p) for r in reports for p in r["perfdata"])
    tail = f" | {perfdata}" if perfdata else ""
    if every:
        states = ", ".join(f"{r['environment']} {r['status']}" for r in reports)
        click.echo(f"{status} - {len(reports)} environment(s): {states}{tail}")
    # Across environments, OK checks only with -v: one environment's profile does not speak for the others.
    verbose = state.verbosity > 0 if every else state.verbose(state.session())
    for i, report in enumerate(reports):
        click.echo(nagios_text(report["summary"]) + (tail if not every and i == 0 else ""))
        for check in report["checks"]:
            if check.state != "OK" or verbose:
                click.echo(f"{'  ' if every else ''}{style(check.state, fg=_COLOURS[check.state], bold=True)} "
                           f"{nagios_text(check.name)}: {nagios_text(check.message)}")
        if "alerts" in report:
            delivery = report["alerts"]
            click.echo(f"alerts: {len(delivery['sent'])} sent, {len(delivery['pending'])} kept for retry")
