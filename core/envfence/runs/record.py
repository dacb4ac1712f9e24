"""Recording a run: its failures, its outcome, its audit events and the plugins that track runs.

Every failure is classified (``classify_error``), logged with its redacted
detail under a new error id, and handed to ``on_error``. The decision (blocked
or forced) and the run's start and end are audited; ``on_run_start`` and
``on_run_finish`` let the history and status plugins keep their records. A
tracker's trouble never changes the run's result (their policy is ``LOG``).
"""

from __future__ import annotations

import os
from typing import Any

from .. import slotted
from ..errors import EXIT_BLOCKED, EXIT_FINDINGS, EnvfenceError, SafetyError
from ..models import Failure, Finding, RunOutcome, RunRequest, utcnow


def new_id(prefix: str) -> str:
    """A short random id, e.g. ``run-5f2c9a1e`` or ``E7d01b3c4``: the system's random bytes, as ``secrets.token_hex``
    reads them (secrets would load OpenSSL through hmac, for nothing here)."""
    return f"{prefix}{os.urandom(4).hex()}"


def current_user() -> str:
    """The user running envfence, for the audit trail."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _message(error: BaseException) -> str:
    return error.message if isinstance(error, EnvfenceError) else f"{type(error).__name__}: {error}"


def fail(session: Any, error: BaseException, automation: str | None, traceback_text: str | None = None) -> tuple[Failure, str]:
    """Classify ``error``, log its redacted detail under a new error id, and call ``on_error``.

    :param traceback_text: the detail to log; None formats the traceback
        (an :class:`EnvfenceError` has none: its message and hint say it all).
    :returns: the :class:`Failure` and its redacted detail.
    """
    redactor = session.redactor()
    classification = session.plugins.classify_error(error=error, session=session).first or "bug"
    failure = Failure(
        error_id=new_id("E"),
        classification=classification,
        message=redactor(_message(error)),
        automation=automation,
        exception=error,
    )
    if traceback_text is None and isinstance(error, EnvfenceError):
        traceback_text = ""
    if traceback_text is None:
        import traceback

        traceback_text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    # The logger's records are redacted once, at its boundary (Session.logger).
    session.logger(error_id=failure.error_id, automation=automation).error(
        f"[{failure.error_id}] {classification} failure in {automation}: {failure.message}"
        + (f"\n{traceback_text}" if traceback_text else "")
    )
    session.plugins.on_error(session=session, failure=failure)
    return failure, redactor(traceback_text)


def fail_unopened(plugins: Any, error: BaseException, automation: str | None) -> Failure:
    """Report a failure that stopped the session from opening: ``on_error`` with no session."""
    from ..pipeline import unopened_redactor

    failure = Failure(
        error_id=new_id("E"),
        classification=plugins.classify_error(error=error, session=None).first or "bug",
        message=unopened_redactor(plugins)(_message(error)),
        automation=automation,
        exception=error,
    )
    plugins.on_error(session=None, failure=failure)
    return failure


def outcome(
    session: Any, run_id: str, request: RunRequest, status: str, code: int, started: Any,
    *, failure: Failure | None = None, forced: bool = False, metrics: dict[str, Any] | None = None,
) -> RunOutcome:
    """How the run ended, as history and status plugins keep it."""
    return RunOutcome(
        run_id=run_id,
        automation=request.automation.name,
        environment=session.environment.name,
        status=status,
        exit_code=code,
        started_at=started,
        finished_at=utcnow(),
        error_class=failure.classification if failure else None,
        error_id=failure.error_id if failure else None,
        forced=forced,
        reason=request.reason if forced else None,
        metrics=metrics or {},
    )


def blocked(session: Any, request: RunRequest, codes: list[str]) -> None:
    """Audit a run the guards blocked."""
    session.audit(
        "run.blocked",
        automation=request.automation.name,
        codes=codes,
        host=session.host.hostname,
        user=current_user(),
        dry_run=request.dry_run,
    )


def forced(session: Any, request: RunRequest, codes: list[str]) -> None:
    """Audit a run forced past the guards: who, where, why."""
    session.audit(
        "run.forced",
        automation=request.automation.name,
        user=current_user(),
        host=session.host.hostname,
        reason=request.reason or "",
        overridden=codes,
        dry_run=request.dry_run,
        # Without --force, a person at a terminal confirmed past confirmable findings.
        confirmed_at_terminal=not request.force,
    )


def started(session: Any, request: RunRequest, run_id: str, forced: bool) -> None:
    """Audit the start of a real run and tell the ``on_run_start`` plugins."""
    session.audit("run.started", automation=request.automation.name, run_id=run_id, forced=forced, host=session.host.hostname)
    session.plugins.on_run_start(session=session, request=request, run_id=run_id)


def finished(session: Any, request: RunRequest, result: RunOutcome, exit_code: int) -> None:
    """Tell the ``on_run_finish`` plugins (history, trackers) and audit the end of a real run.

    :param exit_code: envfence's own exit code; the outcome's ``exit_code`` is the job's.
    """
    session.plugins.on_run_finish(session=session, request=request, outcome=result)
    session.audit(
        "run.finished",
        automation=request.automation.name,
        run_id=result.run_id,
        status=result.status,
        exit_code=exit_code,
        job_exit_code=result.exit_code,
        error_class=result.error_class,
        error_id=result.error_id,
        duration=round(result.duration, 3),
    )


# --- the stage: from a decision and an execution to a result -------------------------


@slotted.frozen
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


@slotted.define
class Recorder:
    """Keeps what one run came to: its decision, start, failures, outcome and end.

    :param details: where each failure's redacted detail is kept, by error id.
    """

    session: Any
    request: RunRequest
    decision: Any  #: the :class:`~envfence.runs.decide.Decision`
    run_id: str
    started: Any  #: when the run was asked for
    details: dict[str, str] = slotted.field(factory=dict)

    def decided(self) -> RunResult | None:
        """Record the decision: a refused run's result (audited ``run.blocked``), or None when it goes ahead.

        A run forced past blocking findings is audited ``run.forced`` (who, where, why) before anything runs.
        """
        codes = [f.code for f in self.decision.blocking]
        if self.decision.refusal is not None:
            failure = self.fail(SafetyError(self.decision.refusal, ""), traceback=False)
            blocked(self.session, self.request, codes)
            return RunResult(self._outcome("blocked", EXIT_BLOCKED, failure=failure), self.decision.findings, failure)
        if self.decision.forced:
            forced(self.session, self.request, codes)
        return None

    def not_started(self, error: EnvfenceError) -> RunResult:
        """The result of a run whose environment could not be readied (its tree, its lock)."""
        failure = self.fail(error, traceback=False)
        status = "blocked" if error.exit_code == EXIT_BLOCKED else "failed"
        outcome = self._outcome(status, error.exit_code, failure=failure)
        return RunResult(outcome, self.decision.findings, failure, self.decision.blocking, detail=self.detail(failure))

    def job_started(self) -> None:
        """Audit the start of the job and tell the ``on_run_start`` plugins."""
        started(self.session, self.request, self.run_id, self.decision.forced)

    def result(self, execution: Any) -> RunResult:
        """Record an :class:`~envfence.runs.execute.Execution`: its failure, its outcome, and the end of a real run."""
        failure = None if execution.error is None else self.fail(execution.error, traceback=execution.traceback)
        outcome = self._outcome(
            execution.status, execution.code, failure=failure, forced=self.decision.forced,
            metrics=execution.metrics, started=execution.started,
        )
        result = RunResult(
            outcome, self.decision.findings, failure, self.decision.blocking, execution.plan, self.detail(failure),
            execution.code if execution.job_ran else None,
        )
        if not self.request.dry_run:
            finished(self.session, self.request, outcome, result.exit_code)
        return result

    def fail(self, error: BaseException, traceback: bool = True) -> Failure:
        """Classify ``error``, log its redacted detail (its traceback when ``traceback``), call ``on_error``."""
        failure, detail = fail(self.session, error, self.request.automation.name, None if traceback else "")
        self.details[failure.error_id] = detail
        return failure

    def detail(self, failure: Failure | None) -> str:
        """The redacted detail of ``failure`` ("" when it has none)."""
        return self.details.get(failure.error_id, "") if failure is not None else ""

    def _outcome(self, status: str, code: int, *, started: Any = None, **extra: Any) -> RunOutcome:
        return outcome(self.session, self.run_id, self.request, status, code, started or self.started, **extra)
