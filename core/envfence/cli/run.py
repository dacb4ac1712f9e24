"""``envfence run NAME``: run an automation where it belongs, or say why not."""

from __future__ import annotations

import os
import sys

import click

from ..errors import EnvfenceError, UsageError
from . import State, json_option, parse_assignments, pass_state
from .output import dumps, echo_findings, finding_dict, style


@click.command()
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Detect, load, validate and check safety, show the plan; write nothing.")
@click.option("--force", is_flag=True, help="Run despite a blocking safety finding (recorded in the audit trail).")
@click.option("--reason", metavar="TEXT", help="Why the run is forced; required with --force in a strict (production) profile.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Runtime override for this run (repeatable).")
@click.option("--wait", is_flag=True, help="If the automation is already running here, wait for it instead of refusing.")
@click.option("--pass-exit-code", is_flag=True, help="Exit with the job's own code when it ran (it may then look like one of envfence's).")
@json_option
@pass_state
def run(state: State, name, dry_run, force, reason, assignments, wait, pass_exit_code) -> None:
    """Run automation NAME in the current environment.

    \b
    Exit codes: 0 the run succeeded, 1 the job failed (its own code is in
    the output, --json, the history and the audit trail), 2 usage,
    3 blocked by a safety guard or already running, 4 configuration.
    The reference: docs/running.md#exit-codes
    """
    from ..models import RunRequest
    from ..runner import Runner, fail_unopened, find_automation

    if reason is not None and not force:
        raise UsageError("--reason goes with --force", "add --force, or drop --reason")
    overrides = parse_assignments(assignments)
    state.overrides.update(overrides)
    try:
        session = state.session(dry_run=dry_run)
    except EnvfenceError as exc:  # an invalid run is a failure like any other
        fail_unopened(state.plugins, exc, name)
        raise
    _quiet_default_log_handler()
    try:
        automation = find_automation(session, name)
    except EnvfenceError as exc:
        Runner(session).fail(exc, name)
        raise
    verbose = state.verbose(session)
    printing = not state.json

    def echo(line: str) -> None:
        try:
            click.echo(line, err=state.json)  # with --json, stdout holds only the JSON
        except BrokenPipeError:
            # The reader left (`envfence run X | head -1`): the run goes on, its lines still logged,
            # and keeps its real status; the rest of its output goes nowhere.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # no file descriptor behind stdout (embedded, tests)
                pass

    # Only a person at a terminal is asked; cron and CI have no stdin.
    on_terminal = force and session.profile.interactive and sys.stdin.isatty() and printing
    confirm = _confirm_by_typing(name) if on_terminal else None

    if printing and verbose:
        mode = "dry run of" if dry_run else "running"
        click.echo(style(f"{mode} {name} in {session.environment.name} ({session.environment.describe()})", bold=True), err=True)
    if not session.profile.strict and not state.json:
        _warn_before_running(session, name, ask=session.profile.interactive and not dry_run and _on_a_terminal())
    runner = Runner(session, echo=echo, confirm=confirm, wait=wait, embedded=False)
    result = runner.run(RunRequest(automation, dry_run=dry_run, force=force, reason=reason))
    code = result.job_exit_code if pass_exit_code and result.job_exit_code is not None else result.exit_code
    if state.json:
        click.echo(dumps(result_data(result)))
        click.get_current_context().exit(code)

    _report(result, session, name, force, verbose)
    click.get_current_context().exit(code)


def _on_a_terminal() -> bool:
    """True when a person can answer (cron and CI have no terminal on stdin)."""
    return sys.stdin.isatty()


def _warn_before_running(session, name: str, ask: bool) -> None:
    """Development runs past error-level findings, but not in silence: print them, and ask a person at a terminal.

    A strict profile blocks on them instead (``VALIDATION_FAILED_STRICT``).
    :raises SafetyError: the person at the terminal chose not to go on.
    """
    errors = session.report.errors
    if not errors:
        return
    env = session.environment.name
    click.echo(style(f"warning: {len(errors)} error(s) in {env}'s configuration, found before the run of {name}:", fg="yellow"), err=True)
    echo_findings(errors, err=True)
    if ask and not click.confirm(f"Run {name} in {env} anyway?", default=False, err=True):
        from ..errors import SafetyError

        raise SafetyError(f"{name} was not run: its configuration has errors", "fix them (envfence check), then run it again")


def _report(result, session, name, force, verbose) -> None:
    """Tell the user how the run ended, on stderr."""
    from ..runner import current_user

    outcome, env = result.outcome, session.environment.name
    if outcome.status == "blocked":
        _explain_block(result, session, name, force)
    else:
        warnings = [f for f in result.findings if f.severity != "error"]
        if warnings and verbose:
            echo_findings(warnings, err=True)
        for finding in result.overridden:
            who = f"user {current_user()}, host {session.host.hostname}" + (f", reason {outcome.reason!r}" if outcome.reason else "")
            click.echo(
                style(f"warning: forced past {finding.code}: {finding.message}", fg="yellow")
                + f"\n  recorded in the audit trail ({who})",
                err=True,
            )
    if outcome.status == "dry-run":
        click.echo(f"dry run: {name} would {'be forced to ' if result.overridden else ''}run in {env}; nothing was written", err=True)
    elif outcome.status == "succeeded":
        if verbose:
            click.echo(style(f"{name} succeeded in {env} ({outcome.duration:.2f}s, {outcome.run_id})", fg="green"), err=True)
        else:
            click.echo(f"{outcome.run_id} {name} succeeded {outcome.duration:.2f}s", err=True)
    elif outcome.status == "failed":
        _explain_failure(result, session, name, verbose)


def _confirm_by_typing(name: str):
    def confirm(env: str) -> bool:
        click.echo(style(f"You are forcing {name} past a safety guard in {env}.", fg="yellow"), err=True)
        return click.prompt(f"Type the environment's name ({env}) to go on", default="", show_default=False, err=True) == env

    return confirm


def _explain_block(result, session, name, force) -> None:
    failure = result.failure
    env = session.environment.name
    blocking = [f for f in result.findings if f.severity == "error"]
    click.echo(style(f"envfence: blocked: {name} will not run in {env}", fg="red", bold=True), err=True)
    if failure is not None and not blocking:  # the lock
        click.echo(f"  {failure.message}", err=True)
        if getattr(failure.exception, "hint", ""):
            click.echo(f"  fix: {failure.exception.hint}", err=True)
        return
    echo_findings(blocking, err=True)
    if force and failure is not None:
        click.echo(f"  override refused: {failure.message}", err=True)
    override = "--force --reason TEXT" if session.profile.strict else "--force"
    chosen = f"--env {env} " if session.environment.method == "flag" else ""
    click.echo(
        f"  to override: envfence {chosen}run {name} {override}; every override is recorded in the audit trail "
        "(user, host, reason)",
        err=True,
    )


def _explain_failure(result, session, name, verbose) -> None:
    failure = result.failure
    log = session.log_file or "the log"  # the logging strategy names its file
    if session.profile.tracebacks or verbose:
        if result.detail:
            click.echo(result.detail.rstrip("\n"), err=True)
        click.echo(
            style(f"envfence: {name} failed ({failure.classification}): {failure.message}", fg="red")
            + f"\n  {_job_exit(result)}; error id {failure.error_id}; details in {log}",
            err=True,
        )
    else:
        click.echo(
            f"envfence: error {failure.error_id}: {name} failed in {session.environment.name} "
            f"({failure.classification}, {_job_exit(result)}); details: grep {failure.error_id} {log}",
            err=True,
        )


def _job_exit(result) -> str:
    return f"job exit {result.job_exit_code}" if result.job_exit_code is not None else f"exit {result.exit_code}"


def result_data(result) -> dict:
    """A run's result as JSON data (no traceback, no secret)."""
    outcome, failure = result.outcome, result.failure
    return {
        "run_id": outcome.run_id,
        "automation": outcome.automation,
        "environment": outcome.environment,
        "status": outcome.status,
        "exit_code": result.exit_code,
        "job_exit_code": result.job_exit_code,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
        "duration": round(outcome.duration, 3),
        "forced": outcome.forced,
        "reason": outcome.reason,
        "metrics": dict(outcome.metrics),
        "findings": [finding_dict(f) for f in result.findings],
        "overridden": [f.code for f in result.overridden],
        "plan": list(result.plan),
        "error": None
        if failure is None
        else {"id": failure.error_id, "class": failure.classification, "message": failure.message},
    }


def _quiet_default_log_handler() -> None:
    """Drop loguru's default stderr handler: it would print records unredacted.

    The CLI owns the process, so it decides where records go: the
    ``configure_logging`` strategy, or the runner's redacting fallback.
    """
    from loguru import logger

    try:
        logger.remove(0)
    except ValueError:
        pass
