"""``envfence run NAME``: run an automation where it belongs, or say why not."""

from __future__ import annotations

import os
import sys

import click

from ..errors import EnvfenceError, UsageError
from . import State, parse_assignments, pass_state
from .examples import examples
from .output import dumps, echo_findings, finding_dict, style


@examples(
    "envfence run import-jobs --dry-run    # the plan, nothing written",
    "envfence run import-jobs",
    "envfence --env production run import-jobs --force --reason \"INC-42 replay\"",
)
@click.command()
@click.argument("name", shell_complete=lambda ctx, param, incomplete: _complete_automations(ctx, param, incomplete))
@click.option("--dry-run", is_flag=True, help="Detect, load, validate and check safety, show the plan; write nothing.")
@click.option("--force", is_flag=True, help="Run despite a blocking safety finding (recorded in the audit trail).")
@click.option("--reason", metavar="TEXT", help="Why the run is forced; required with --force in a strict (production) profile.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Runtime override for this run (repeatable).")
@click.option("--wait", is_flag=True, help="If the automation is already running here, wait for it instead of refusing.")
@click.option("--pass-exit-code", is_flag=True, help="Exit with the job's own code when it ran (it may then look like one of envfence's).")
@pass_state
def run(state: State, name, dry_run, force, reason, assignments, wait, pass_exit_code) -> None:
    """Run automation NAME in the current environment.

    \b
    Exit codes: 0 the run succeeded, 1 the job failed (its own code is in
    the output, --json, the history and the audit trail), 2 usage,
    3 blocked by a safety guard or already running, 4 configuration.
    The reference: docs/running.md#exit-codes (`envfence docs running`).
    """
    from ..runner import find_automation

    state.overrides.update(parse_assignments(assignments))
    _run(state, name, lambda session: find_automation(session, name), dry_run, force, reason, wait, f"run {name} {{override}}",
         pass_exit_code)


@examples(
    "envfence exec -- python sync.py       # a one-off command, guarded and recorded",
    "envfence --env production exec -- ./backfill.sh --since 2026-01-01",
)
@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")
@click.option("--force", is_flag=True, help="Run despite a blocking safety finding (recorded in the audit trail).")
@click.option("--reason", metavar="TEXT", help="Why the run is forced; required with --force in a strict (production) profile.")
@pass_state
def exec_(state: State, command: tuple[str, ...], force: bool, reason: str | None) -> None:
    """Run any command with this environment's configuration under plain names.

    
    envfence exec -- python manage.py migrate
    envfence --env prod exec --force --reason "hotfix" -- ./fix.sh
    The same guards as `run` decide (exit 3 when blocked), the command gets
    the variables a command automation gets (credentials under their plain
    names, no other environment's), reads this terminal's stdin, and its
    output is shown with secrets masked. It is recorded in history and the
    audit trail as the ad-hoc run "exec". Exit code: the command's.
    """
    from ..models import Automation
    from ..runs.execute import shell_join

    line = tuple(command)
    automation = Automation("exec", f"ad-hoc: {shell_join(line)}", command=line, adhoc=True)

    def find(session):
        # The command receives the whole environment view: a read of every key, on the record. It goes out with
        # the run's first event (its start, or a refusal): before the command sees a value, in the same flush.
        session.config_read("exec", session.config.environment_view(), defer=True)
        return automation

    # The command's own exit code is the answer, as with any command runner.
    _run(state, "exec", find, False, force, reason, False, f"exec {{override}} -- {shell_join(line)}", True)


def _run(
    state: State, name: str, find, dry_run: bool, force: bool, reason: str | None, wait: bool, again: str, pass_exit_code: bool
) -> None:
    """Open the session, decide, run and report ``find(session)``; exits with the run's code.

    :param again: the command line that overrides a block, ``{override}`` standing for the options.
    :param pass_exit_code: exit with the job's own code when it ran.
    """
    from ..runner import fail_unopened

    if reason is not None and not force:
        raise UsageError("--reason goes with --force", "add --force, or drop --reason")
    try:
        session = state.session(dry_run=dry_run)
    except EnvfenceError as exc:  # an invalid run is a failure like any other
        fail_unopened(state.plugins, exc, name)
        raise
    try:
        _decide_and_run(state, session, name, find, dry_run, force, reason, wait, again, pass_exit_code)
    finally:
        session.audit_log.flush()  # what find deferred (exec's read) is on the trail even if nothing followed it (Ctrl-C)


def _decide_and_run(state: State, session, name: str, find, dry_run: bool, force: bool, reason: str | None, wait: bool,
                    again: str, pass_exit_code: bool) -> None:
    """The rest of :func:`_run` once the session is open: find, decide, run and report; exits with the run's code."""
    from ..models import RunRequest
    from ..runner import Runner

    try:
        automation = find(session)
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

    # Only a person at a terminal is asked; cron and CI have no stdin. Without --force,
    # development asks only about confirmable findings (a suspect host, a malformed credential).
    on_terminal = (force or not session.profile.strict) and session.profile.interactive and sys.stdin.isatty() and printing
    confirm = _confirm_by_typing(name) if on_terminal else None

    if printing and verbose and not automation.adhoc:  # an ad-hoc command's own output is all it needs
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

    _report(result, session, name, force, verbose, again, automation.adhoc)
    click.get_current_context().exit(code)


def _on_a_terminal() -> bool:
    """True when a person can answer (cron and CI have no terminal on stdin)."""
    return sys.stdin.isatty()


def _warn_before_running(session, name: str, ask: bool) -> None:
    """Development runs past error-level findings, but not in silence: print them, and ask a person at a terminal.

    A strict profile blocks on them instead (``VALIDATION_FAILED_STRICT``).
    A malformed credential is the guard's to ask about (``CREDENTIAL_INVALID``):
    it is shown here, not asked about twice.
    :raises SafetyError: the person at the terminal chose not to go on.
    """
    errors = session.report.errors
    if not errors:
        return
    env = session.environment.name
    click.echo(style(f"warning: {len(errors)} error(s) in {env}'s configuration, found before the run of {name}:", fg="yellow"), err=True)
    echo_findings(errors, err=True)
    others = [f for f in errors if not session.config.holds_credential(f.key)]
    if ask and others and not click.confirm(f"Run {name} in {env} anyway?", default=False, err=True):
        from ..errors import SafetyError

        raise SafetyError(f"{name} was not run: its configuration has errors", "fix them (envfence check), then run it again")


def _report(result, session, name, force, verbose, again, adhoc=False) -> None:
    """Tell the user how the run ended, on stderr.

    An ad-hoc command (``exec``) speaks for itself: no success line, and its
    non-zero exit is its exit code, not an error message (the runner records
    no failure for it).
    """
    from ..runner import current_user

    outcome, env = result.outcome, session.environment.name
    if outcome.status == "blocked":
        _explain_block(result, session, name, force, again)
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
        # Terse (production, -q): success prints nothing, so cron mails only failures.
        if verbose and not adhoc:
            click.echo(style(f"{name} succeeded in {env} ({outcome.duration:.2f}s, {outcome.run_id})", fg="green"), err=True)
    elif outcome.status == "failed" and result.failure is not None:
        _explain_failure(result, session, name, verbose)


def _complete_automations(ctx, param, incomplete):
    from .completion import automations

    return automations(ctx, param, incomplete)


def _confirm_by_typing(name: str):
    def confirm(env: str, blocking) -> bool:
        # What is being overridden comes first: the name is typed knowing it.
        click.echo(style(f"You are about to run {name} in {env} past:", fg="yellow"), err=True)
        echo_findings(blocking, err=True)
        return click.prompt(f"Type the environment's name ({env}) to go on", default="", show_default=False, err=True) == env

    return confirm


def _explain_block(result, session, name, force, again) -> None:
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
    override = "--force --reason TEXT" if session.profile.strict or any(f.confirmable for f in blocking) else "--force"
    chosen = f"--env {env} " if session.environment.method == "flag" else ""
    click.echo(
        f"  to override: envfence {chosen}{again.format(override=override)}; every override is recorded in the audit trail "
        "(user, host, reason)",
        err=True,
    )


def _explain_failure(result, session, name, verbose) -> None:
    failure = result.failure
    log = session.log_file  # the logging strategy names its file
    # Without a log file the detail would be nowhere: it is shown here, redacted, in every profile.
    shown = session.profile.tracebacks or verbose or log is None
    if shown:
        # A console log sink has shown the failure's record, traceback included: say the rest only.
        on_console = getattr(session.logging, "console", False)
        if result.detail and not on_console:
            click.echo(result.detail.rstrip("\n"), err=True)
        what = "" if on_console else f": {failure.message}"
        where = f"details in {log}" if log is not None else "no log file holds it (no logging strategy wrote one; is -p no:logging set?)"
        click.echo(
            style(f"envfence: {name} failed ({failure.classification}){what}", fg="red")
            + f"\n  {_job_exit(result)}; error id {failure.error_id}; {where}",
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
