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

from typing import TYPE_CHECKING, Callable

from .automations import collect as collect_automations, find as find_automation  # noqa: F401  (library API)
from .models import Failure, Finding, RunRequest, utcnow
from .runs import execute, record
from .runs.context import RunContext, show  # noqa: F401  (library API)
from .runs.decide import decide
from .runs.decisions import log_decisions
from .runs.execute import (  # noqa: F401  (library API)
    PASSTHROUGH_PREFIXES,
    PASSTHROUGH_VARIABLES,
    AlreadyRunning,
    ResourceLimitHit,
    RunFailed,
    exit_code,
    lock_holder,
    lock_path,
    plan,
    run_lock,
    subprocess_environment,
    usage,
    usage_since,
)
from .runs.record import RunResult, current_user, fail_unopened, new_id  # noqa: F401  (library API)

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Session


#: The library API: what embedding code and plugins import from here.
__all__ = [
    "AlreadyRunning",
    "PASSTHROUGH_PREFIXES",
    "PASSTHROUGH_VARIABLES",
    "RunContext",
    "RunFailed",
    "RunResult",
    "Runner",
    "collect_automations",
    "current_user",
    "exit_code",
    "fail_unopened",
    "find_automation",
    "lock_holder",
    "lock_path",
    "new_id",
    "plan",
    "run_lock",
    "show",
    "subprocess_environment",
    "usage",
    "usage_since",
]

class Runner:
    """Runs automations in one session's environment: it sequences the stages, each of which owns its step.

    :param session: the open :class:`~envfence.pipeline.Session`.
    :param echo: prints a line of the automation's output (default ``print``).
    :param confirm: asked before a forced run, with the environment's name
        and the blocking findings being overridden; returns True to go on. The CLI passes one only on a development
        terminal; without it no question is ever asked.
    :param wait: wait for a running run of the same automation instead of refusing.
    :param embedded: True (library use): the embedding code owns logging and
        envfence adds no sink; the command line passes False to have the
        logging strategy install the environment's sinks.
    """

    def __init__(
        self,
        session: "Session",
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
        """Decide, execute, record ``request``; never raises for a failure of the automation."""
        session, run_id, started = self.session, new_id("run-"), utcnow()
        decision = decide(session, request, self.confirm)
        recorder = record.Recorder(session, decision.request, decision, run_id, started, self.details)
        refused = recorder.decided()
        if refused is not None:
            return refused
        if request.dry_run:
            return recorder.result(execute.dry_run(session, decision.request, run_id, self.echo, started, self.embedded))
        try:
            with execute.readied(session, request.automation, wait=self.wait, echo=self.echo, embedded=self.embedded) as lock_fd:
                recorder.job_started()
                log_decisions(session, decision, request.automation.name)
                # Recorded while the lock is held: the next run of the automation starts after this one is on record.
                return recorder.result(execute.run_job(session, decision.request, run_id, self.echo, lock_fd))
        except execute.NotStarted as exc:
            return recorder.not_started(exc.error)

    def fail(self, error: BaseException, automation: str | None, traceback_text: str | None = None) -> Failure:
        """Classify ``error``, log its redacted detail under a new error id, and call ``on_error``."""
        failure, detail = record.fail(self.session, error, automation, traceback_text)
        self.details[failure.error_id] = detail
        return failure

    def subprocess_environment(self, run_id: str, dry_run: bool) -> dict[str, str]:
        """The variables of a command automation (see :func:`envfence.runs.execute.subprocess_environment`)."""
        return subprocess_environment(self.session, run_id, dry_run)
