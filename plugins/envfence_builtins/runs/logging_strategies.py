"""Logging strategies on loguru, chosen by the environment's profile.

- development: a coloured console at the profile's level (DEBUG) and a plain
  text file, with detailed tracebacks (each frame's local variables, redacted).
- production: a file only, one JSON object a line, rotated, retained and
  compressed as the ``[logging]`` settings say, written through a queue
  (``enqueue=True``) so several processes can log safely, ``diagnose=False``.

::

    [logging]
    rotation = "10 MB"       # loguru's rotation: a size, a time ("00:00") or an interval ("1 week")
    retention = "30 days"    # or a number of files
    compression = "gz"
    file = "automation"      # logs/<file>_<environment>.log

Every record is redacted before a sink sees it (see
:func:`envfence.redaction.record_patcher`). File sinks are added only for a
prepared session, so a dry run writes no log. Embedded in another tool
(``embedded=True``), envfence adds no sink and follows loguru's library
convention: ``logger.disable("envfence")`` until the tool enables it.
A plugin replaces these strategies by answering ``configure_logging`` first
(``tryfirst``). When the strategy that answered (another plugin's) leaves a
prepared command-line run without a log file, this plugin adds a plain one
(:func:`fallback_log_file`), so that an error id printed in production finds
its detail. loguru is imported and the sinks added when something first
logs or imports loguru (:func:`envfence.session_logging.when_used`): a run
that logs nothing starts no production queue.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from envfence import slotted
from envfence import files, hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding

CONSOLE_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
    "<cyan>{extra[environment]}</cyan> <level>{message}</level>"
)
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSSZ} {level: <8} {extra[environment]} {process} {name}:{function}:{line} {message}"
DEFAULTS = {"rotation": "10 MB", "retention": "30 days", "compression": "gz", "file": "automation"}


@slotted.frozen
class LoggingStrategy:
    """What a strategy installed: its name, level and sinks (``console``, the file's path)."""

    name: str  #: ``development``, ``production`` or ``embedded``
    level: str
    console: bool = False
    file: Path | None = None
    #: True when it installed a process-wide patcher that redacts every record
    #: (the session's loggers then add none: each record is redacted once).
    redacts: bool = False


def _logging_table():
    from envfence.settings_kinds import either, text, whole
    from envfence.settings_tables import Table

    table = Table("logging", "the environment's log file (loguru)")
    meaning = {"rotation": "when the file is rotated (a size or a time, loguru's rotation)",
               "retention": "how long rotated files are kept (loguru's retention)",
               "compression": "how rotated files are compressed (loguru's compression)"}
    for key, text_ in meaning.items():
        table.add(key, either(text(example=DEFAULTS[key]), whole()), DEFAULTS[key], text_)
    table.add("file", text(example=DEFAULTS["file"]), DEFAULTS["file"], "the file's name: logs/<file>_<environment>.log")
    return table


#: ``[logging]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _logging_table()


@hookimpl
def declare_tables():
    """The ``[logging]`` table."""
    return [TABLE]


def logging_settings(settings) -> dict[str, Any]:
    """The ``[logging]`` table with its defaults, checked."""
    values = TABLE.read_strict(settings)
    merged = {key: values[key] for key in DEFAULTS}
    # The file is a name in the tree's logs directory, never a path that leaves it.
    if set("/\\") & set(merged["file"]) or merged["file"].startswith("."):
        raise ConfigurationError(
            f"{settings.source}: logging.file: must be a plain name (logs/<file>_<environment>.log), not {merged['file']!r}",
            'e.g. file = "automation"; the log stays in the environment\'s logs directory',
        )
    return merged


@hookimpl
def validate(session) -> list[Finding]:
    """A malformed ``[logging]`` table, before a command that logs stops on it."""
    try:
        logging_settings(session.settings)
    except ConfigurationError as exc:
        return [Finding("LOGGING_SETTINGS", "error", exc.message, exc.hint, plugin="logging")]
    return []


@hookimpl
def configure_logging(session, embedded: bool) -> LoggingStrategy:
    """Choose the profile's strategy, or, embedded, no sink at all; loguru is set up at its first use.

    The settings are checked and the log file created now; the sinks are
    added when something first logs or imports loguru
    (:func:`envfence.session_logging.when_used`), so a run that logs nothing
    imports no loguru and starts no queue. Rotation, retention or
    compression other than the defaults are handed to loguru at once, so a
    value it refuses stops the command here, not at a job's first line.
    """
    from envfence.session_logging import when_used

    level = session.profile.log_level
    if embedded:
        when_used(_disable)
        return LoggingStrategy("embedded", level)
    name = "production" if session.profile.based_on == "production" else "development"
    options = logging_settings(session.settings)
    log_file = None
    if session.prepared and session.paths is not None:
        log_file = session.paths.log_file(str(options["file"]))
        # A real file of the tree, created with the profile's mode (never through a link, never world-writable).
        dir_mode, file_mode = files.profile_modes(session.profile)
        files.ensure_file(session.paths, log_file, mode=file_mode, dir_mode=dir_mode)
    setup = lambda: _install(session, name, options, level, log_file)  # noqa: E731
    if log_file is not None and any(options[k] != DEFAULTS[k] for k in ("rotation", "retention", "compression")):
        import loguru  # noqa: F401  (then the setup runs now: a value loguru refuses stops the command here)
    when_used(setup)
    return LoggingStrategy(name, level, session.profile.console_logging, log_file, redacts=True)


def _disable() -> None:
    """Embedded: envfence's records are off until the embedding tool enables them (loguru's library convention)."""
    from loguru import logger

    logger.disable("envfence")


def _install(session, name: str, options, level: str, log_file: Path | None) -> None:
    """The strategy's loguru setup: the redacting patcher first, then the console and file sinks."""
    from loguru import logger

    from envfence.redaction import record_patcher

    # The command line owns the process: its sinks replace loguru's default one.
    logger.remove()
    logger.configure(
        patcher=record_patcher(session.redactor(), detailed=session.profile.tracebacks),
        extra={"environment": session.environment.name},
    )
    if session.profile.console_logging:
        colour = None if not os.environ.get("NO_COLOR") else False
        # A run's output lines are printed on stdout already (``echoed``): the console shows them once.
        # Records meant for the log file only (``file_only``: a development run's decisions) stay off the screen.
        logger.add(
            sys.stderr, level=level, format=CONSOLE_FORMAT, colorize=colour, backtrace=False, diagnose=False,
            filter=lambda record: not (record["extra"].get("echoed") or record["extra"].get("file_only")),
        )
    if log_file is not None:
        _add_file_sink(session, logger, name, options, level, log_file)
    logger.enable("envfence")


def _add_file_sink(session, logger, name: str, options, level: str, log_file: Path) -> Path:
    """The environment's log file (created already) as a loguru sink (JSON lines in production); returns its path."""
    common = dict(
        level=level,
        rotation=options["rotation"],
        retention=options["retention"],
        compression=options["compression"],
        enqueue=True,
        backtrace=False,
        diagnose=False,
        encoding="utf-8",
    )
    shape = {"serialize": True} if name == "production" else {"format": FILE_FORMAT}
    try:
        # loguru opens the file by name: it must open the one just checked, not a link swapped in since.
        files.open_by_name(session.paths, log_file, lambda path: logger.add(str(path), **shape, **common), logger.remove)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"{session.settings.source}: [logging]: {exc}", 'e.g. rotation = "10 MB", retention = "30 days", compression = "gz"'
        ) from None
    return log_file


#: The fallback sink this process holds. loguru's sinks belong to the process,
#: not to a session: a worker that reopens its session replaces it, never adds a second.
_fallback_sink: int | None = None


@hookimpl
def fallback_log_file(session) -> Path | None:
    """A plain log file for a prepared command-line run whose strategy (another plugin's) wrote none.

    Records reach it through the session's loggers (:meth:`Session.logger`),
    which redact them when the strategy does not; the file is
    ``logs/automation_<environment>.log``, created in the tree with the profile's mode.
    """
    global _fallback_sink
    if not session.prepared or session.paths is None:
        return None
    from loguru import logger

    dir_mode, file_mode = files.profile_modes(session.profile)
    # Created inside the tree, through no link, with the profile's mode; loguru then opens it by name.
    path = files.ensure_file(session.paths, session.paths.log_file(), mode=file_mode, dir_mode=dir_mode)
    if _fallback_sink is not None:
        try:
            logger.remove(_fallback_sink)
        except ValueError:  # the strategy removed every sink already
            pass
        _fallback_sink = None
    logger.enable("envfence")  # the command line owns the process (an embedded setup may have disabled it)
    environment = session.environment.name
    # loguru opens the file by name: it must open the one just checked, not a link swapped in since.
    _fallback_sink = files.open_by_name(session.paths, path, lambda checked: logger.add(
        checked,
        level=session.profile.log_level,
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level} {message}",
        filter=lambda record: record["extra"].get("environment") == environment,
    ), logger.remove)
    return path
