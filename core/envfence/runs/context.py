"""What a function automation receives: :class:`RunContext`, and :func:`show` for its output lines."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .. import slotted
from ..models import Automation, Config, ConfigValue, EnvPaths
from .measures import Measures

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import Session
    from ..session_logging import Logger
    from ..profiles import Profile

T = TypeVar("T")


@slotted.define
class RunContext:
    """What an automation receives: everything about its environment, nothing from another.

    Attributes: ``session``, ``automation``, ``run_id``, ``dry_run``,
    ``forced``, ``reason``, ``paths`` (the environment's :class:`EnvPaths`,
    not created in a dry run), ``logger`` (loguru, bound to the run),
    ``event`` (the webhook event that triggered it, or None) and
    ``measures`` (what the job reported through :meth:`metric` and :meth:`step`).
    """

    session: "Session"
    automation: Automation
    run_id: str
    dry_run: bool = False
    forced: bool = False
    reason: str | None = None
    paths: EnvPaths | None = None
    logger: "Logger | None" = None
    echo: Callable[[str], None] = print
    #: The webhook event that triggered the run (id, payload, headers), or None; its class is the webhook plugin's.
    event: Any = None
    #: What the job reports (:meth:`metric`, :meth:`step`, retries), kept with the run.
    measures: Measures = slotted.field(factory=Measures)

    @property
    def environment(self) -> str:
        """The environment's name."""
        return self.session.environment.name

    @property
    def profile(self) -> "Profile":
        """The environment's :class:`~envfence.profiles.Profile`."""
        return self.session.profile

    @property
    def config(self) -> Config:
        """The environment's merged :class:`~envfence.models.Config`, without another environment's prefixed keys."""
        return self.session.config.own_view()

    def credential(self, name: str) -> ConfigValue | None:
        """Read credential ``name`` through the environment's prefix; the access is audited."""
        return self.session.credential(name, by=f"automation {self.automation.name}")

    def say(self, text: str) -> None:
        """Print a line for the user (secrets redacted) and log it."""
        show(self.echo, self.logger, self.session.redactor()(str(text)))

    def metric(self, name: str, value: float, unit: str | None = None) -> None:
        """Report what the job did: ``ctx.metric("records_synced", 42, unit="records")``.

        Kept with the run, shown by ``status``, ``metrics`` and ``report``, and
        bounded by ``min_<name>`` / ``max_<name>`` thresholds. A later value of
        the same name replaces the earlier one (report the total).

        :raises envfence.runs.measures.MeasureError: a name that is no identifier, a value that is no finite number.
        """
        self.measures.metric(name, value, unit)

    def step(self, name: str) -> AbstractContextManager[None]:
        """Time a part of the job: ``with ctx.step("fetch"): ...``; the report shows where a job's time goes.

        The same step run again adds up; a step that raises is timed all the same.
        """
        return self.measures.step(name)

    def retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn``, trying again only where that cannot duplicate a write (see :mod:`envfence.retry`).

        Pass ``idempotent=True`` for a call that is safe to repeat (a read, an upsert on a key field).
        """
        from ..retry import retry_call

        def note(attempt: int, error: BaseException, wait: float) -> None:
            self.measures.retries += 1  # counted with the run: advise notices retries that never help
            if self.logger is not None:
                self.logger.warning(f"try {attempt} failed ({type(error).__name__}: {error}); retrying in {wait:.2f}s")

        kwargs.setdefault("on_retry", note)
        return retry_call(fn, *args, **kwargs)


def show(echo: Callable[[str], None], logger: Any, line: str) -> None:
    """Print a line of the run's output for the user and log it.

    The record is marked ``echoed`` so that a console log sink can leave it
    out: the user sees the line once, on stdout, and the log file keeps it.
    """
    echo(line)
    if logger is not None:
        logger.bind(echoed=True).info(line)
