"""A session's logging: the strategy the plugins install, and loggers bound to the environment.

The core adds no sink: ``configure_logging`` (a plugin's strategy) does. This
module only asks for it and hands out loguru loggers whose records are
redacted once before any sink sees them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from loguru import Logger as Logger  # the type Session.logger and RunContext.logger are annotated with


def configure(session: Any, embedded: bool) -> Any:
    """Install ``session``'s log sinks through ``configure_logging`` (see :meth:`Session.configure_logging`)."""
    session.logging = session.plugins.configure_logging(session=session, embedded=embedded).first
    session.log_file = getattr(session.logging, "file", None) or session.log_file
    return session.logging


def bound_logger(session: Any, context: dict[str, Any]) -> Any:
    """A loguru logger bound to ``session``'s environment and ``context``, its records redacted once."""
    from loguru import logger

    if session.logging is None:
        configure(session, embedded=True)
    if not getattr(session.logging, "redacts", False):
        from .redaction import record_patcher

        logger = logger.patch(record_patcher(session.redactor(), detailed=session.profile.tracebacks))
    return logger.bind(environment=session.environment.name, **context)
