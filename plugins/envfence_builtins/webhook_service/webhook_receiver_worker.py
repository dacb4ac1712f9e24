"""Running queued webhook events through the normal runner: guards, lock, history, audit.

A :class:`Worker` claims one due event at a time from the environment's
queue and runs its route's automation with the event in ``ctx.event``. A
succeeded run finishes the event; a failed one goes back to the queue with
an exponential backoff until its tries are used up, then it is dead; a run
a safety guard blocks is dead at once (waiting would not change the
guard's mind). ``envfence queue retry`` gives a dead event fresh tries.

The worker runs as threads of ``envfence serve`` or as ``envfence worker``
processes beside it; each claim is atomic, so an event is never run by two
at once, and a finished event is never run again.

A queue kept in a shared store can go away for a while (the database
restarts): the loop says so in the log and tries again, a run the store
kept from starting gives its event back untried, and how a run ended is
written to the queue once the store answers again.
"""

from __future__ import annotations

import fcntl
import secrets
import threading
from typing import Callable

from envfence import files
from envfence.errors import EXIT_CONFIG, EnvfenceError
from envfence.models import Automation, RunRequest

from envfence_builtins.webhook_service.webhook_queue import WebhookEvent, WebhookQueue, worker_lock

#: Seconds between looks at the queue when nothing woke the worker.
POLL_SECONDS = 0.5
#: Seconds between looks for claims of workers that died.
RECOVER_SECONDS = 5.0
#: Seconds a finished run's result waits at most for the queue to answer again.
FINISH_PATIENCE = 120.0
#: The events being run in this process, by queue number: the queue and claim token each belongs to.
_running: dict[int, tuple[WebhookQueue, str]] = {}


def note_start(event, run_id: str) -> None:
    """Record on the queue the run ``event`` starts (called by ``on_run_start``, before the automation runs)."""
    claim = _running.get(getattr(event, "seq", None))
    if claim is not None:
        claim[0].started(event.seq, claim[1], run_id)


class Worker:
    """Claims and runs the queue's events in one environment.

    :param session: the environment's prepared session.
    :param queue: its :class:`WebhookQueue`.
    :param automations: the automations routes name, by name.
    :param echo: where the automations' output lines go.
    :param retry_base: seconds of the first backoff (doubling on each try).
    """

    def __init__(self, session, queue: WebhookQueue, automations: dict[str, Automation], *,
                 echo: Callable[[str], None] = print, retry_base: float = 2.0) -> None:
        #: The session and automations in use, replaced together by :meth:`swap` (a reload).
        self._live = (session, dict(automations))
        self.queue = queue
        self.echo = echo
        self.retry_base = retry_base
        self.log = session.logger(component="webhooks")
        self.token = "w" + secrets.token_hex(8)
        # Held while this worker lives: recovery knows a claim is orphaned when this lock is free.
        self._lock = files.open_append(session.paths, worker_lock(self.token), binary=True)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._dispatching = threading.Lock()

    @property
    def session(self):
        """The session in use (its settings and thresholds judge the next run)."""
        return self._live[0]

    @property
    def automations(self) -> dict[str, Automation]:
        """The automations the routes name, by name."""
        return self._live[1]

    def swap(self, session, automations: dict[str, Automation]) -> None:
        """Run the next events with ``session`` and ``automations`` (the event in hand finishes with the old ones)."""
        self._live = (session, dict(automations))

    def close(self) -> None:
        """Let go of the worker's lock (its claims are all finished by then)."""
        files.remove(self.session.paths, worker_lock(self.token))
        self._lock.close()

    def recover(self) -> None:
        """Return the claims of dead workers to the queue (those whose run had succeeded are finished instead)."""
        freed = self.queue.recover(finished=self._succeeded)
        if freed:
            self.log.warning(f"{freed} webhook event(s) interrupted by a stopped worker are queued again")

    def _succeeded(self, event: WebhookEvent) -> bool:
        runs = self.session.plugins.run_history(session=self.session, automation=event.automation, limit=1000).first or []
        return any(r.run_id == event.run_id and r.status == "succeeded" for r in runs)

    def run_once(self) -> WebhookEvent | None:
        """Claim and run one due event; returns it, or None when none is due."""
        with self._dispatching:
            event = self.queue.claim(self.token)
            if event is None:
                return None
            self.dispatch(event)
            return event

    def loop(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Run events until ``stop`` is set; the event in hand is always finished first."""
        import time

        last_recovery, pause = 0.0, POLL_SECONDS
        while not stop.is_set():
            try:
                if time.monotonic() - last_recovery > RECOVER_SECONDS:
                    self.recover()
                    last_recovery = time.monotonic()
                if self.run_once() is not None:
                    pause = POLL_SECONDS
                    continue
            except EnvfenceError as exc:  # the queue's store is away: say so, and look again later
                self.log.warning(f"the webhook queue cannot be used now: {exc.message}; trying again in {pause:.1f}s")
                stop.wait(pause)
                pause = min(pause * 2, RECOVER_SECONDS)
                continue
            if wake is not None:
                wake.wait(POLL_SECONDS)
                wake.clear()
            else:
                stop.wait(POLL_SECONDS)

    def dispatch(self, event: WebhookEvent) -> str:
        """Run ``event``'s automation through the runner and record how it ended; returns the event's status."""
        from envfence.runner import Runner

        session, automations = self._live  # one configuration for the whole try, whatever a reload does meanwhile
        automation = automations.get(event.automation)
        run_id = error = None
        final = False
        if automation is None:
            succeeded, final, error = False, True, f"no automation named {event.automation!r}"
        else:
            _running[event.seq] = (self.queue, self.token)
            try:
                result = Runner(session, echo=self.echo, wait=True, embedded=False).run(
                    RunRequest(automation, event=event)
                )
            except Exception as exc:  # the runner could not keep its record: try again later
                succeeded, error = False, session.redactor()(f"{type(exc).__name__}: {exc}")
            else:
                outcome = result.outcome
                run_id, succeeded = outcome.run_id, outcome.status == "succeeded"
                final = outcome.status == "blocked"
                if result.failure is not None:
                    error = f"{outcome.status}: {result.failure.message} (error {result.failure.error_id})"
                if result.job_exit_code is None and outcome.status == "failed" and outcome.exit_code == EXIT_CONFIG:
                    # The job never started (its lock's store was away): the event goes back untried.
                    return self._settle(lambda: self.queue.release(event.seq, self.token, error or "", self.retry_base)
                                        and "pending", event, False, error)
            finally:
                _running.pop(event.seq, None)
        return self._settle(lambda: self.queue.finish(event.seq, self.token, succeeded=succeeded, run_id=run_id, error=error,
                                                      retry_base=self.retry_base, final=final), event, succeeded, error)

    def _settle(self, write: Callable[[], str | bool], event: WebhookEvent, succeeded: bool, error: str | None) -> str:
        """Write how the event's try ended, waiting for a queue that is away (up to :data:`FINISH_PATIENCE`)."""
        import time

        deadline, pause = time.monotonic() + FINISH_PATIENCE, POLL_SECONDS
        while True:
            try:
                status = write() or "lost"
                break
            except EnvfenceError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, RECOVER_SECONDS)
        from envfence_builtins.webhook_service.webhook_receiver_app import printable

        line = f"webhook event {printable(event.id)} ({printable(event.type or 'untyped')}) on {event.route}: {event.automation} try {event.attempt} -> {status}"
        (self.log.info if succeeded else self.log.warning)(line + (f" ({error})" if error else ""))
        return status
