"""Running an automation: decide, execute, record.

The pipeline of one run::

    decide   pre_run_safety -> findings; an error blocks the run (exit 3) unless
             forced: --reason in a strict profile, a typed confirmation on a
             development terminal                         (envfence.runs.decide)
    execute  prepare_environment, lock, configure_logging, then the function
             or the command with this environment's variables (envfence.runs.execute)
    record   audit, on_run_start / on_run_finish, every failure classified and
             handed to on_error                           (envfence.runs.record)

A dry run goes through detection, loading, validation and safety, then calls
the automation with ``ctx.dry_run`` set; it writes nothing.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import attrs

from .automations import collect as collect_automations, find as find_automation  # noqa: F401  (library API)
from .errors import EXIT_BLOCKED, EXIT_FINDINGS, ConfigurationError, SafetyError
from .models import Automation, EnvPaths, Failure, Finding, RunOutcome, RunRequest, utcnow
from .runs import record
from .runs.decide import Decision, decide
from .runs.execute import (  # noqa: F401  (library API)
    PASSTHROUGH_PREFIXES,
    PASSTHROUGH_VARIABLES,
    AlreadyRunning,
    RunFailed,
    exit_code,
    install_logging,
    lock_holder,
    lock_path,
    plan,
    remove_sink,
    run_lock,
    subprocess_environment,
    usage,
    usage_since,
)
from .runs.record import current_user, fail_unopened, new_id  # noqa: F401  (library API)


@attrs.define
class RunContext:
    """What an automation receives: everything about its environment, nothing from another.

    Attributes: ``session``, ``automation``, ``run_id``, ``dry_run``,
    ``forced``, ``reason``, ``paths`` (the environment's :class:`EnvPaths`,
    not created in a dry run), ``logger`` (loguru, bound to the run) and
    ``event`` (the webhook event that triggered it, or None).
    """

    session: Any
    automation: Automation
    run_id: str
    dry_run: bool = False
    forced: bool = False
    reason: str | None = None
    paths: EnvPaths | None = None
    logger: Any = None
    echo: Callable[[str], None] = print
    event: Any = None  #: the webhook event that triggered the run (id, payload, headers), or None

    @property
    def environment(self) -> str:
        """The environment's name."""
        return self.session.environment.name

    @property
    def profile(self):
        """The environment's :class:`~envfence.profiles.Profile`."""
        return self.session.profile

    @property
    def config(self):
        """The environment's merged :class:`~envfence.models.Config`."""
        return self.session.config

    def credential(self, name: str) -> Any:
        """Read credential ``name`` through the environment's prefix; the access is audited."""
        return self.session.credential(name, by=f"automation {self.automation.name}")

    def say(self, text: str) -> None:
        """Print a line for the user (secrets redacted) and log it."""
        show(self.echo, self.logger, self.session.redactor()(str(text)))

    def retry(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn``, trying again only where that cannot duplicate a write (see :mod:`envfence.retry`).

        Pass ``idempotent=True`` for a call that is safe to repeat (a read, an upsert on a key field).
        """
        from .retry import retry_call

        def note(attempt: int, error: BaseException, wait: float) -> None:
            if self.logger is not None:
                self.logger.warning(f"try {attempt} failed ({type(error).__name__}: {error}); retrying in {wait:.2f}s")

        kwargs.setdefault("on_retry", note)
        return retry_call(fn, *args, **kwargs)


@attrs.frozen
class RunResult:
    """What a run came to: its outcome, the safety findings, and its failure if any."""

    outcome: RunOutcome
    findings: tuple[Finding, ...] = ()
    failure: Failure | None = None
    overridden: tuple[Finding, ...] = ()  #: blocking findings the run was forced past
    plan: tuple[str, ...] = ()  #: what a dry run of a command would do
    detail: str = ""  #: the failure's redacted traceback, when it has one
    #: The job's own exit code, None when the job did not run (blocked, refused, a dry run of a command).
    job_exit_code: int | None = None

    @property
    def exit_code(self) -> int:
        """envfence's own exit code for the run, which a job's code can never take.

        0 the run succeeded (or a dry run passed), 1 the job failed (whatever
        its own code), 3 the run was blocked, 4 configuration kept it from
        starting. See the table in docs/running.md.
        """
        if self.outcome.status in ("succeeded", "dry-run"):
            return 0
        if self.job_exit_code is not None:
            return EXIT_FINDINGS
        return self.outcome.exit_code


class Runner:
    """Runs automations in one session's environment.

    :param session: the open :class:`~envfence.pipeline.Session`.
    :param echo: prints a line of the automation's output (default ``print``).
    :param confirm: asked before a forced run, with the environment's name
        and the blocking findings being overridden; returns True to go on. The CLI passes one only on a development
        terminal; without it no question is ever asked.
    :param wait: wait for a running run of the same automation instead of refusing.
    :param embedded: True (library use): the embedding code owns logging and
        envfence adds no sink; the command line passes False to install the
        environment's log sinks.
    """

    def __init__(
        self,
        session,
        *,
        echo: Callable[[str], None] = print,
        confirm: Callable[[str, tuple[Finding, ...]], bool] | None = None,
        wait: bool = False,
        embedded: bool = True,
    ) -> None:
        self.session = session
        self.embedded = embedded
        self.echo = echo
        self.confirm = confirm
        self.wait = wait
        #: Redacted tracebacks of this runner's failures, by error id.
        self.details: dict[str, str] = {}

    def check(self, request: RunRequest) -> list[Finding]:
        """The ``pre_run_safety`` findings for ``request``; a failing guard blocks."""
        from .runs.decide import guard_findings

        return guard_findings(self.session, request)

    def run(self, request: RunRequest) -> RunResult:
        """Decide, then run ``request``; never raises for a failure of the automation."""
        session = self.session
        if request.reason:
            # The reason goes to the screen, the trail, the history and trackers: mask it once here.
            request = attrs.evolve(request, reason=session.redactor()(request.reason))
        run_id, started = new_id("run-"), utcnow()
        decision = decide(session, request, self.confirm)
        codes = [f.code for f in decision.blocking]
        if decision.refusal is not None:
            failure = self.fail(SafetyError(decision.refusal, ""), request.automation.name, traceback_text="")
            record.blocked(session, request, codes)
            outcome = record.outcome(session, run_id, request, "blocked", EXIT_BLOCKED, started, failure=failure)
            return RunResult(outcome, decision.findings, failure)
        if decision.forced:
            record.forced(session, request, codes)
        if request.dry_run:
            return self._dry_run(request, run_id, started, decision)
        return self._real_run(request, run_id, started, decision)

    def _dry_run(self, request: RunRequest, run_id: str, started: Any, decision: Decision) -> RunResult:
        automation = request.automation
        lines: list[str] = []
        status, code, failure = "dry-run", 0, None
        if automation.command is not None:
            lines = plan(self.session, automation, run_id)
            for line in lines:
                self.echo(line)
        else:
            from .runs.execute import call_function

            ctx = self._context(request, run_id, dry_run=True)
            try:
                code = exit_code(call_function(self.session, automation, ctx, lambda line: show(self.echo, ctx.logger, line)))
            except SystemExit as exc:
                code = exit_code(exc.code)
            except Exception as exc:
                failure = self.fail(exc, automation.name)
                status, code = "failed", EXIT_FINDINGS
            if code and failure is None:
                status = "failed"
                failure = self.fail(RunFailed(f"{automation.name} (dry run)", code), automation.name, traceback_text="")
        outcome = record.outcome(self.session, run_id, request, status, code, started, failure=failure, forced=decision.forced)
        ran = None if automation.command is not None else code
        return RunResult(outcome, decision.findings, failure, decision.blocking, tuple(lines), self._detail(failure), ran)

    def _real_run(self, request: RunRequest, run_id: str, started: Any, decision: Decision) -> RunResult:
        session, automation = self.session, request.automation
        try:
            session.prepare()  # creates the tree; from here on the audit trail is written
        except (SafetyError, ConfigurationError) as exc:
            failure = self.fail(exc, automation.name)
            code = exc.exit_code
            status = "blocked" if code == EXIT_BLOCKED else "failed"
            outcome = record.outcome(session, run_id, request, status, code, started, failure=failure)
            return RunResult(outcome, decision.findings, failure, decision.blocking)
        paths = session.paths
        session.plugins.reap_abandoned_runs(session=session)  # a run killed earlier is marked before this one starts
        try:
            # An ad-hoc command holds no lock; a shared store may hold the lock across hosts; the file lock is the default.
            lock = nullcontext() if automation.adhoc else session.plugins.acquire_run_lock(
                session=session, automation=automation.name, wait=self.wait, echo=self.echo
            ).first or run_lock(paths, automation.name, wait=self.wait, on_wait=self.echo)
        except ConfigurationError as exc:  # the store that holds the lock cannot be reached
            failure = self.fail(exc, automation.name)
            outcome = record.outcome(session, run_id, request, "failed", exc.exit_code, started, failure=failure)
            return RunResult(outcome, decision.findings, failure, decision.blocking, detail=self._detail(failure))
        try:
            with lock as held:
                sink = install_logging(session, paths, self.embedded)
                try:
                    # A file lock is inherited by the command's process group; a store's lock has no descriptor.
                    return self._execute(request, run_id, decision, getattr(held, "fd", None))
                finally:
                    remove_sink(sink)
        except AlreadyRunning as exc:
            failure = self.fail(exc, automation.name, traceback_text="")
            outcome = record.outcome(session, run_id, request, "blocked", EXIT_BLOCKED, started, failure=failure)
            return RunResult(outcome, decision.findings, failure, decision.blocking, detail=self._detail(failure))

    def _execute(self, request: RunRequest, run_id: str, decision: Decision, lock_fd: int | None) -> RunResult:
        session, automation = self.session, request.automation
        from .runs.execute import execute

        ctx = self._context(request, run_id, dry_run=False)
        record.started(session, request, run_id, decision.forced)
        started, before = utcnow(), usage()
        failure, code = None, 0
        try:
            code = execute(session, automation, ctx, lambda line: show(self.echo, ctx.logger, line), () if lock_fd is None else (lock_fd,))
        except SystemExit as exc:
            code = exit_code(exc.code)
            if code:
                failure = self.fail(RunFailed(automation.name, code), automation.name, traceback_text="")
        except RunFailed as exc:
            code = exc.returncode
            # An ad-hoc command's exit status is its own answer (grep found nothing), not an error to report.
            if not automation.adhoc:
                failure = self.fail(exc, automation.name, traceback_text="")
        except Exception as exc:
            failure, code = self.fail(exc, automation.name), EXIT_FINDINGS
        status = "succeeded" if failure is None and not code else "failed"
        code = code or (EXIT_FINDINGS if failure is not None else 0)
        metrics = {**usage_since(before), "host": session.host.hostname}
        outcome = record.outcome(
            session, run_id, request, status, code, started, failure=failure, forced=decision.forced, metrics=metrics
        )
        result = RunResult(outcome, decision.findings, failure, decision.blocking, detail=self._detail(failure), job_exit_code=code)
        record.finished(session, request, outcome, result.exit_code)
        return result

    def fail(self, error: BaseException, automation: str | None, traceback_text: str | None = None) -> Failure:
        """Classify ``error``, log its redacted detail under a new error id, and call ``on_error``."""
        failure, detail = record.fail(self.session, error, automation, traceback_text)
        self.details[failure.error_id] = detail
        return failure

    def subprocess_environment(self, run_id: str, dry_run: bool) -> dict[str, str]:
        """The variables of a command automation (see :func:`envfence.runs.execute.subprocess_environment`)."""
        return subprocess_environment(self.session, run_id, dry_run)

    def _detail(self, failure: Failure | None) -> str:
        return self.details.get(failure.error_id, "") if failure is not None else ""

    def _context(self, request: RunRequest, run_id: str, dry_run: bool) -> RunContext:
        return RunContext(
            session=self.session,
            automation=request.automation,
            run_id=run_id,
            dry_run=dry_run,
            forced=request.force,
            reason=request.reason,
            paths=self.session.paths,
            logger=self.session.logger(run_id=run_id, automation=request.automation.name),
            echo=self.echo,
            event=request.event,
        )


def show(echo: Callable[[str], None], logger: Any, line: str) -> None:
    """Print a line of the run's output for the user and log it.

    The record is marked ``echoed`` so that a console log sink can leave it
    out: the user sees the line once, on stdout, and the log file keeps it.
    """
    echo(line)
    if logger is not None:
        logger.bind(echoed=True).info(line)
