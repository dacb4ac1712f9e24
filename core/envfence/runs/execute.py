"""Executing a run: a function or a command, under the environment's lock, with its variables only.

A command automation is a subprocess whose environment holds this
environment's configuration under plain names (:func:`subprocess_environment`)
and nothing of the parent's but :data:`PASSTHROUGH_VARIABLES`; its output is
streamed line by line, redacted. A run holds the environment's lock of its
automation (:func:`run_lock`) from before logging is installed until it ends.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import EXIT_FINDINGS, ConfigurationError, EnvfenceError, SafetyError
from ..models import Automation, EnvPaths, reveal

#: Variables of the parent process a command automation keeps: what a process
#: needs to start and to find its tools, nothing that carries configuration.
PASSTHROUGH_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR",  # a Windows process cannot start without these
)
PASSTHROUGH_PREFIXES = ("LC_",)


class RunFailed(EnvfenceError):
    """A command automation exited non-zero."""

    def __init__(self, command: str, returncode: int) -> None:
        super().__init__(f"{command} exited with status {returncode}")
        self.returncode = returncode


class AlreadyRunning(SafetyError):
    """Another run of the same automation holds the environment's lock."""


def subprocess_environment(session: Any, run_id: str, dry_run: bool) -> dict[str, str]:
    """The variables of a command automation: this environment's configuration only.

    Its credentials arrive under their plain names (``AIRTABLE_API_KEY``),
    another environment's prefixed keys never. From the parent process only
    :data:`PASSTHROUGH_VARIABLES` survive; ``ENVIRONMENT`` (the project's
    variable name) and ``ENVFENCE_*`` tell the child where it runs.
    """
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH_VARIABLES or k.startswith(PASSTHROUGH_PREFIXES)}
    env.update({k: str(reveal(v)) for k, v in session.config.environment_view().items()})
    env[session.settings.environment_variable] = session.environment.name
    env["ENVFENCE_ENVIRONMENT"] = session.environment.name
    env["ENVFENCE_ROOT"] = str(session.root.path)
    env["ENVFENCE_RUN_ID"] = run_id
    if dry_run:
        env["ENVFENCE_DRY_RUN"] = "1"
    return env


def plan(session: Any, automation: Automation, run_id: str) -> list[str]:
    """What a dry run of a command automation would do, one line each (variable names, never values)."""
    env = subprocess_environment(session, run_id, dry_run=True)
    return [
        f"would run: {shell_join(automation.command or ())}",
        f"in: {session.root.path}",
        "with variables: " + ", ".join(sorted(env)),
    ]


def run_command(session: Any, automation: Automation, run_id: str, show: Callable[[str], None]) -> int:
    """Run a command automation, passing each redacted output line to ``show``; return its exit code."""
    import subprocess

    assert automation.command is not None
    redactor = session.redactor()
    try:
        proc = subprocess.Popen(
            list(automation.command),
            cwd=session.root.path,
            env=subprocess_environment(session, run_id, dry_run=False),
            stdin=None if automation.adhoc else subprocess.DEVNULL,  # a scheduled run has no one to ask
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise ConfigurationError(
            f"automation {automation.name!r}: cannot start {automation.command[0]!r} ({exc.strerror})",
            "check that the program is on PATH" if automation.adhoc else "check the command line in the settings, and that the program is on PATH",
        ) from None
    assert proc.stdout is not None
    for line in proc.stdout:
        show(redactor(line.rstrip("\n")))
    return proc.wait()


def execute(session: Any, automation: Automation, ctx: Any, show: Callable[[str], None]) -> int:
    """Run ``automation`` (its function with ``ctx``, or its command); return 0 or raise :class:`RunFailed`."""
    if automation.command is not None:
        code = run_command(session, automation, ctx.run_id, show)
        if code:
            raise RunFailed(shell_join(automation.command), code)
        return 0
    assert automation.function is not None
    code = exit_code(automation.function(ctx))
    if code:
        raise RunFailed(automation.name, code)
    return 0


def install_logging(session: Any, paths: EnvPaths, embedded: bool) -> int | None:
    """Install the environment's log sinks; returns a fallback sink id to remove, or None.

    When no ``configure_logging`` strategy answers, the run still leaves a
    log file (:meth:`EnvPaths.log_file`, records redacted by
    :meth:`Session.logger`) so that an error id printed in production finds
    its detail. Either way :attr:`Session.log_file` names the file.
    """
    if embedded:
        if session.logging is None:
            session.configure_logging(embedded=True)
        return None
    if session.configure_logging(embedded=False) is not None:
        return None
    from loguru import logger

    path = paths.log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    session.log_file = path
    logger.enable("envfence")  # the command line owns the process (an embedded setup may have disabled it)
    return logger.add(
        path,
        level=session.profile.log_level,
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level} {message}",
        filter=lambda record: record["extra"].get("environment") == session.environment.name,
    )


def remove_sink(sink: int | None) -> None:
    """Remove a fallback sink :func:`install_logging` added."""
    if sink is not None:
        from loguru import logger

        logger.remove(sink)


def exit_code(value: Any) -> int:
    """The exit code an automation's return value (or ``SystemExit`` code) stands for."""
    if value is None or value is True:
        return 0
    if value is False:
        return EXIT_FINDINGS
    if isinstance(value, int):
        return value
    return EXIT_FINDINGS  # SystemExit("message") means failure


def shell_join(command: Any) -> str:
    """A command line as a shell would show it."""
    import shlex

    return shlex.join(list(command))


def usage() -> tuple:
    """This process's and its children's resource usage so far (empty where unsupported)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return ()
    return (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))


def usage_since(before: tuple) -> dict[str, Any]:
    """CPU seconds used since ``before`` (this process and its children) and the peak memory in KiB."""
    after = usage()
    if not before or not after:
        return {}
    cpu = sum((a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime) for a, b in zip(after, before))
    peak = max(after[0].ru_maxrss, after[1].ru_maxrss)
    if sys.platform == "darwin":  # bytes there, KiB on Linux
        peak //= 1024
    return {"cpu_seconds": round(cpu, 4), "peak_memory_kb": int(peak)}


# --- the lock ---------------------------------------------------------------------


def lock_path(paths: EnvPaths, automation: str) -> Path:
    """Where the lock of ``automation`` lives in the environment's tree."""
    from ..files import lock_file

    return lock_file(paths, automation)


def lock_holder(path: Path) -> tuple[str, str]:
    """``(pid, since)`` written by the run holding ``path``."""
    try:
        pid, _, since = path.read_text(encoding="utf-8").partition("\n")
        return pid.strip() or "?", since.strip() or "?"
    except OSError:
        return "?", "?"


@contextmanager
def run_lock(paths: EnvPaths, automation: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the environment's lock of ``automation`` for the duration of a run.

    The lock is an ``flock`` on a file in the environment's ``locks``
    directory (opened through :func:`envfence.files.open_lock`: owner-only,
    never through a link), released by the kernel if the process dies. A second run
    raises :class:`AlreadyRunning` with the holder's pid and start time,
    or waits for it when ``wait`` is true.
    """
    import fcntl

    from ..files import open_lock

    path = lock_path(paths, automation)
    handle = open_lock(paths, automation)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, since = lock_holder(path)
            if not wait:
                raise AlreadyRunning(
                    f"{automation} is already running in {paths.environment} (pid {pid}, since {since})",
                    "wait for it to finish, or pass --wait to start when it does",
                ) from None
            if on_wait is not None:
                on_wait(f"waiting: {automation} is already running (pid {pid}, since {since})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}\n")
        handle.flush()
        yield path
    finally:
        try:
            handle.seek(0)
            handle.truncate()
        except OSError:
            pass
        handle.close()
