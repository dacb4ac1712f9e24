"""A session's logging: the strategy the plugins install, and loggers bound to the environment.

The core adds no sink: ``configure_logging`` (a plugin's strategy) does. This
module only asks for it and hands out loguru loggers whose records are
redacted once before any sink sees them.

loguru is set up on first use. A strategy hands its setup to
:func:`when_used`: it runs at once when loguru is imported already, else the
first time a session's logger is asked for, or right after the first import
of loguru by anyone (a job's own ``from loguru import logger`` included),
through an import hook: whatever logs first, the redacting patcher is in
place before any record reaches a sink. A run that does not log does not
import loguru, nor start the queue of production's file sink.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from loguru import Logger as Logger  # the type Session.logger and RunContext.logger are annotated with

_waiting: list[Callable[[], None]] = []
_lock = threading.Lock()


def configure(session: Any, embedded: bool) -> Any:
    """Install ``session``'s log sinks through ``configure_logging`` (see :meth:`Session.configure_logging`)."""
    session.logging = session.plugins.configure_logging(session=session, embedded=embedded).first
    session.log_file = getattr(session.logging, "file", None) or session.log_file
    return session.logging


def when_used(setup: Callable[[], None]) -> None:
    """Run ``setup`` (a strategy's loguru calls) at loguru's first use: now when it is imported already.

    Setups wait in the order they were asked for and run in that order, so
    the last strategy configured is the one in force, as if each had run at once.
    """
    if "loguru" in sys.modules:
        set_up()
        setup()
        return
    with _lock:
        _waiting.append(setup)
        if not any(isinstance(finder, _FirstImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _FirstImport())


def set_up() -> None:
    """Run the setups waiting for loguru's first use (loguru imported by then)."""
    with _lock:
        waiting = list(_waiting)
        _waiting.clear()
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _FirstImport)]
    for setup in waiting:
        try:
            setup()
        except Exception as exc:  # a sink loguru refuses: the patcher went first, records stay redacted
            print(f"envfence: warning: logging could not be set up: {type(exc).__name__}: {exc}", file=sys.stderr)


class _FirstImport:
    """An import hook: right after loguru is first imported, whoever imports it, the waiting setups run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "loguru":
            return None
        spec = None
        for finder in [f for f in sys.meta_path if f is not self and hasattr(f, "find_spec")]:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _SetUpAfter(spec.loader)
        return spec

    def find_module(self, *args: Any) -> None:  # pragma: no cover - the legacy protocol, never used since 3.4
        return None


class _SetUpAfter:
    """loguru's own loader, followed by the waiting setups once the module is whole."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        set_up()


class LazyLogger:
    """A session's logger made at its first use (``ctx.logger``): a job that does not log does not import loguru."""

    __slots__ = ("_make", "_logger")

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._logger: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._logger is None:
            self._logger = self._make()
        return getattr(self._logger, name)


def bound_logger(session: Any, context: dict[str, Any]) -> Any:
    """A loguru logger bound to ``session``'s environment and ``context``, its records redacted once."""
    if session.logging is None:
        configure(session, embedded=True)
    from loguru import logger

    set_up()  # loguru was imported before this process configured any strategy: run what waits
    if not getattr(session.logging, "redacts", False):
        from .redaction import record_patcher

        logger = logger.patch(record_patcher(session.redactor(), detailed=session.profile.tracebacks))
    return logger.bind(environment=session.environment.name, **context)
