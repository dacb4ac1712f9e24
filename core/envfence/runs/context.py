"""What a function automation receives: :class:`RunContext`, and :func:`show` for its output lines."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from ..models import Automation, EnvPaths


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
        from ..retry import retry_call

        def note(attempt: int, error: BaseException, wait: float) -> None:
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
