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
import re
import sys
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import slotted
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


class ResourceLimitHit(RunFailed):
    """A job ended because it reached one of its environment's ``[resources]`` (error class ``resource_limit``).

    ``limit`` names the key (``memory``, ``cpu_seconds``, ``open_files``), ``value`` its setting.
    """

    def __init__(self, job: str, limit: str, value: Any, returncode: int) -> None:
        super().__init__(job, returncode)
        EnvfenceError.__init__(self, f"{job} reached its resource limit {limit} = {value!r} (exit status {returncode})",
                               f"raise [resources] {limit} for this environment, or make the job use less")
        self.limit, self.value = limit, value


@slotted.define
class JobEnd:
    """How a job's process ended, to tell whether a limit ended it: its limits, its last lines, the CPU it used."""

    limits: Any = None
    said: Any = slotted.field(factory=lambda: deque(maxlen=20))
    cpu_used: float | None = None

    def reached(self, job: str, code: int, exception: str | None = None) -> ResourceLimitHit | None:
        """The error for a job whose exit ``code`` (or ``exception``) comes from a limit it reached; None otherwise."""
        from ..resources import reached

        if self.limits is None:
            return None
        limit = reached(self.limits, code, self.cpu_used, self.said, exception)
        return None if limit is None else ResourceLimitHit(job, limit, self.limits.shown(limit), code or EXIT_FINDINGS)


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


#: Seconds a command's process group has to end after SIGTERM before it gets SIGKILL.
GRACE_SECONDS = 5.0


@contextmanager
def event_variables(session: Any, run_id: str, event: Any) -> Iterator[dict[str, str]]:
    """The variables that hand a webhook ``event`` to a command automation, for the length of its run.

    ``ENVFENCE_EVENT_ID``, ``ENVFENCE_EVENT_TYPE`` (empty when the provider
    names none), ``ENVFENCE_EVENT_ATTEMPT`` and ``ENVFENCE_EVENT_FILE``: the
    body as received, in ``events/<run id>.json`` of the environment's tree
    (owner-only, written atomically, removed when the run ends). None without
    an event.
    """
    if event is None:
        yield {}
        return
    from ..files import profile_modes, remove, write_atomic

    dir_mode, file_mode = profile_modes(session.profile)
    path = write_atomic(session.paths, Path("events", f"{run_id}.json"), event.body, mode=file_mode, dir_mode=dir_mode)
    try:
        yield {
            "ENVFENCE_EVENT_ID": str(event.id),
            "ENVFENCE_EVENT_TYPE": event.type or "",
            "ENVFENCE_EVENT_ATTEMPT": str(event.attempt),
            "ENVFENCE_EVENT_FILE": str(path),
        }
    finally:
        remove(session.paths, path)


def run_command(
    session: Any, automation: Automation, run_id: str, show: Callable[[str], None], keep_fds: tuple[int, ...] = (), event: Any = None,
    measures: Any = None,
) -> int:
    """Run a command automation, passing each redacted output line to ``show``; return its exit code.

    The command runs in its own process group, which inherits ``keep_fds``
    (the run's lock: it stays held while any process of the group lives, even
    if envfence is killed). A watchdog process ends the group when envfence
    dies, even by SIGKILL. SIGINT or SIGTERM to envfence ends the group
    (SIGTERM, then SIGKILL after :data:`GRACE_SECONDS`) and fails the run with
    128 plus the signal's number; processes of the group left when the command
    exits are ended the same way, so the lock is released only once the whole
    group has exited.
    ``event`` (a webhook event, or None) reaches the command through :func:`event_variables`;
    with ``measures``, the lines the command writes to ``ENVFENCE_METRICS_FILE`` are read into it
    (:func:`envfence.runs.measures.metrics_file`).
    """
    from .measures import metrics_file

    assert automation.command is not None
    with event_variables(session, run_id, event) as variables, metrics_file(session, run_id, measures, show) as reported:
        environ = {**subprocess_environment(session, run_id, dry_run=False), **variables, **reported}
        end = JobEnd()
        code = _run_command(session, automation, show, keep_fds, environ, end)
        hit = end.reached(shell_join(automation.command), code)
        if hit is not None:
            raise hit
        return code


def job_limits(session: Any) -> Any:
    """The environment's ``[resources]`` (:func:`envfence.resources.limits_for`), refused when this process cannot give them."""
    from ..resources import limits_for, problems

    limits = limits_for(session.settings, session.environment.name)
    said = problems(limits)
    if said:
        raise ConfigurationError(f"{session.settings.source}: [resources] for {session.environment.name}: {said[0]}",
                                 "lower the setting, or raise the limit of the service that starts envfence")
    return limits


def _run_command(session: Any, automation: Automation, show: Callable[[str], None], keep_fds: tuple[int, ...], env: dict[str, str],
                 end: JobEnd) -> int:
    """Start the command under the environment's limits; stream its output; return its exit status (``end`` filled in)."""
    import subprocess

    from ..redaction import LineStream
    from ..resources import wrapped

    assert automation.command is not None
    redactor = session.redactor()
    end.limits = job_limits(session)

    def seen(line: str) -> None:
        end.said.append(line)  # redacted already: what tells a limit is kept without a secret
        show(line)
    # The handlers are in place before the command starts: a SIGTERM that comes as soon as
    # the job is running must fail the run and end its group, never kill envfence outright.
    with _interruptions_fail(shell_join(automation.command)) as interruptions, _watchdog() as watch:
        try:
            before = usage()
            with interruptions.held():
                proc = subprocess.Popen(
                    wrapped(automation.command, end.limits),
                    cwd=session.root.path,
                    env=env,
                    stdin=None if automation.adhoc else subprocess.DEVNULL,  # a scheduled run has no one to ask
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    bufsize=1,
                    start_new_session=True,
                    pass_fds=keep_fds,
                )
        except OSError as exc:
            raise ConfigurationError(
                f"automation {automation.name!r}: cannot start {automation.command[0]!r} ({exc.strerror})",
                "check that the program is on PATH" if automation.adhoc else "check the command line in the settings, and that the program is on PATH",
            ) from None
        try:
            watch(proc.pid)
            interruptions.release()  # a signal that came while the command started: its group is now ours to end
            assert proc.stdout is not None
            # Redacted as a stream: a value of several lines is masked whole though no line holds it.
            lines = LineStream(redactor, seen)
            for line in proc.stdout:
                lines.feed(line.rstrip("\n"))
            lines.close()
            code = proc.wait()
            end.cpu_used = usage_since(before).get("cpu_seconds")
            # A command killed by a signal exits as a shell reports it: 128 + the signal (SIGKILL: 137), not -9 & 0xff.
            return 128 - code if code < 0 else code
        finally:
            end_group(proc)


#: The watchdog of a command's process group: it reads the group's id, then waits; when its stdin ends
#: (envfence exited without stopping it: killed), it ends the group: SIGTERM, then SIGKILL after the grace
#: period. Without a group's id (envfence died before the command started) it has nothing to end.
_WATCHDOG = ('read pgid && [ -n "$pgid" ] || exit 0; read _; kill -TERM "-$pgid" 2>/dev/null || exit 0; '
             'sleep "$1"; kill -KILL "-$pgid" 2>/dev/null; exit 0')


@contextmanager
def _watchdog() -> Iterator[Callable[[int], None]]:
    """A watchdog that ends a process group if envfence dies (even by SIGKILL); call what it yields with the group's id.

    It is started before the command, so a kill -9 that comes as soon as the
    command runs finds it there: only the write of the group's id separates
    the command's start from its guard, never the start of another process.
    """
    import subprocess

    read, write = os.pipe()  # the write end is envfence's alone (not inheritable): it closes when envfence dies
    try:
        dog = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "envfence-watchdog", str(GRACE_SECONDS)],
            stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError:  # no process to spare: the run still ends its group itself, only a kill -9 is not covered
        dog = None
    finally:
        os.close(read)

    def watch(pgid: int) -> None:
        if dog is not None:
            os.write(write, f"{pgid}\n".encode())

    try:
        yield watch
    finally:
        if dog is not None:
            dog.kill()  # stopped first: closing the pipe would make it end the group
            dog.wait()
        os.close(write)


class _Interruptions:
    """SIGINT and SIGTERM while a command runs: each fails the run (:class:`RunFailed`, 128 + signal).

    While the command is being started (:meth:`held`) a signal is only kept:
    raised inside ``subprocess.Popen``, it would leave a started command's
    group with no one to end it (and its lock held). :meth:`release` raises
    it once the group is envfence's to end.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.holding = False
        self.pending: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.holding:
            self.pending = signum
            return
        self._fail(signum)

    def _fail(self, signum: int) -> None:
        import signal

        raise RunFailed(f"{self.command} (interrupted by {signal.Signals(signum).name})", 128 + signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep, not raise, a signal that comes inside the block."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def release(self) -> None:
        """Raise the signal that came while held, if one did."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self._fail(signum)


@contextmanager
def _interruptions_fail(command: str) -> Iterator[_Interruptions]:
    """While a command runs, SIGINT and SIGTERM to envfence fail the run (see :class:`_Interruptions`)."""
    import signal
    import threading

    interruptions = _Interruptions(command)
    if threading.current_thread() is not threading.main_thread():
        yield interruptions  # signals reach the main thread only; its own handlers stay
        return
    previous = {sig: signal.signal(sig, interruptions) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interruptions
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def end_group(proc: Any, grace: float = GRACE_SECONDS) -> None:
    """End every process of ``proc``'s group (SIGTERM, then SIGKILL after ``grace`` seconds); wait until it is gone."""
    import signal
    import time

    def alive() -> bool:
        proc.poll()  # reaps the command itself
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        if not alive():
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):  # gone, or a member that is no longer ours to end
            return
        deadline = time.monotonic() + wait
        while alive() and time.monotonic() < deadline:
            time.sleep(0.02)


def execute(session: Any, automation: Automation, ctx: Any, show: Callable[[str], None], keep_fds: tuple[int, ...] = ()) -> int:
    """Run ``automation`` (its function with ``ctx``, or its command); return 0 or raise :class:`RunFailed`.

    :param keep_fds: file descriptors a command's processes inherit (the run's lock).
    """
    if automation.command is not None:
        code = run_command(session, automation, ctx.run_id, show, keep_fds, ctx.event, ctx.measures)
        if code:
            raise RunFailed(shell_join(automation.command), code)
        return 0
    assert automation.function is not None
    if automation.isolated(session.profile.strict):
        reference = function_reference(automation.function)
        if reference is not None:
            code = run_in_child(session, automation, ctx, show, keep_fds, reference)
            if code:
                raise RunFailed(automation.name, code)
            return 0
        # A closure or a method cannot be imported in a child: it runs here, on the record.
        session.audit("run.not_isolated", automation=automation.name, why="its function cannot be imported by a child process")
    code = exit_code(call_function(session, automation, ctx, show))
    if code:
        raise RunFailed(automation.name, code)
    return 0


def function_reference(function: Any) -> str | None:
    """``module:qualified.name`` that imports ``function`` in another process, or None (a closure, a lambda)."""
    import importlib

    spec = getattr(function, "spec", None)  # a ``module:function`` from the settings, imported from the project root
    if isinstance(spec, str):
        return spec
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or "<" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if target is function else None


def run_in_child(
    session: Any, automation: Automation, ctx: Any, show: Callable[[str], None], keep_fds: tuple[int, ...], reference: str
) -> int:
    """Run a function automation in a child Python process (:mod:`envfence.runs.child`); return its exit code.

    The child runs as a command does (own process group, the lock inherited,
    the watchdog, this environment's variables only, output streamed through
    the redactor). Its result comes back on a pipe: the exit code, the
    exception (raised here again, of its class where that can be imported,
    with the child's redacted traceback as its cause) and the audit events
    the job caused, recorded here.
    """
    import json
    import threading

    from . import child

    read_fd, write_fd = os.pipe()
    received: list[bytes] = []
    reader = threading.Thread(target=_read_into, args=(read_fd, received), daemon=True)
    reader.start()
    variables = {
        child.AUTOMATION_VARIABLE: automation.name, child.TARGET_VARIABLE: reference,
        child.FORCED_VARIABLE: "1" if ctx.forced else "0", child.REASON_VARIABLE: ctx.reason or "",
        **child.inherited(session), **child.event_fields(ctx.event),
    }
    command = slotted.evolve(automation, function=None, command=(sys.executable, "-m", "envfence.runs.child", str(write_fd)))
    end = JobEnd()
    try:
        with event_variables(session, ctx.run_id, ctx.event) as event:
            env = {**subprocess_environment(session, ctx.run_id, dry_run=False), **event, **variables}
            code = _run_command(session, command, show, keep_fds + (write_fd,), env, end)
    finally:
        os.close(write_fd)
        # A process the job forked and detached (setsid) may still hold the pipe: its result is what came.
        reader.join(timeout=GRACE_SECONDS)
    try:
        result = json.loads(b"".join(received).decode("utf-8"))
    except ValueError:
        hit = end.reached(automation.name, code)  # a child killed by its CPU limit tells nothing more
        raise hit or RunFailed(f"{automation.name} (its child process ended without a result)", code or EXIT_FINDINGS) from None
    for event_record in result.get("audit", []):
        session.audit(event_record["event"], **event_record["data"])
    _take_measures(ctx.measures, result.get("measures") or {})
    if result.get("exception"):
        error = _rebuilt(result["exception"])
        said = f"{result['exception']['name']}: {result['exception']['message']}"
        hit = end.reached(automation.name, int(result.get("code") or EXIT_FINDINGS), said)
        if hit is not None:
            raise hit from error
        raise error
    return int(result.get("code") or 0)


def _take_measures(measures: Any, reported: dict[str, Any]) -> None:
    """What the job reported in its child process, kept with the run here (checked again on the way in)."""
    from .measures import MeasureError

    try:
        for name, metric in (reported.get("metrics") or {}).items():
            measures.metric(name, metric["value"], metric.get("unit"))
        for name, seconds in (reported.get("steps") or {}).items():
            measures.add_step(name, seconds)
        measures.retries += int(reported.get("retries") or 0)
    except (MeasureError, KeyError, TypeError, ValueError):
        pass  # the child checked them already; a damaged report loses the measures, never the run


def _read_into(fd: int, chunks: list[bytes]) -> None:
    """Read the pipe until its end, chunk by chunk: what came is there even if a detached process keeps it open."""
    with os.fdopen(fd, "rb", buffering=0) as handle:
        while chunk := handle.read(65536):
            chunks.append(chunk)


class JobTraceback(Exception):
    """The traceback of an exception raised in a child process, redacted there (the cause of the one raised here)."""


def _rebuilt(data: dict[str, Any]) -> Exception:
    """The child's exception: of its own class when this process can import it, else a stand-in of the same name."""
    import importlib

    cls: Any = None
    try:
        cls = importlib.import_module(data["module"])
        for part in data["name"].split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = type(data["name"].rsplit(".", 1)[-1], (Exception,), {"__module__": data["module"]})
    error = cls.__new__(cls)
    error.args = (data["message"],)
    if isinstance(error, EnvfenceError):
        error.message, error.hint = data["message"], ""
    error.__cause__ = JobTraceback(data["traceback"].rstrip("\n")) if data.get("traceback") else None
    return error


def call_function(session: Any, automation: Automation, ctx: Any, show: Callable[[str], None]) -> Any:
    """Call a function automation with ``ctx``; what it prints or writes to ``sys.stderr`` is redacted and shown.

    Its output (this thread's) is redacted as a stream (:func:`envfence.redaction.redirected_output`),
    each line passed to ``show`` (printed and logged, like a command's). ``ctx.say``
    writes to the streams of entry (:func:`envfence.redaction.uncaptured`), so its lines are not captured twice.
    """
    from ..redaction import redirected_output, uncaptured

    assert automation.function is not None

    def outside(write: Callable[[str], None]) -> Callable[[str], None]:
        def call(text: str) -> None:
            with uncaptured():
                write(text)

        return call

    echo, ctx.echo = ctx.echo, outside(ctx.echo)
    try:
        with only_this_environment(session), redirected_output(session.redactor(), stdout=show, stderr=show):
            return automation.function(ctx)
    finally:
        ctx.echo = echo


@contextmanager
def only_this_environment(session: Any) -> Iterator[dict[str, str]]:
    """While the block runs, ``os.environ`` holds nothing of another environment: its prefixed keys and its keys are out.

    ``PROD_AIRTABLE_API_KEY`` exported in the shell, or ``ENVFENCE_KEY_PROD``,
    is taken out of a development job's process for the job's duration, so
    the job, the threads it starts and the processes it spawns (which inherit
    ``os.environ``) cannot read it; it is put back afterwards. Yields what was
    taken out.
    """
    env = session.environment.name
    naming = session.settings.naming
    others = [spec.prefix for name, spec in session.settings.environments.items() if name != env]
    keys = re.compile(r"ENVFENCE_\w*KEY_(%s)" % "|".join(re.escape(p) for p in others)) if others else None
    taken = {
        k: v for k, v in os.environ.items()
        if naming.environment_of(k) not in (None, env) or (keys is not None and keys.fullmatch(k) and not _own_key(k, session))
    }
    for key in taken:
        del os.environ[key]
    try:
        yield taken
    finally:
        os.environ.update(taken)


def _own_key(variable: str, session: Any) -> bool:
    """True when ``variable`` is this environment's own key variable (a prefix that ends another: QA and QA_EU)."""
    from .. import keyring

    prefix = session.settings.naming.prefix(session.environment.name)
    return variable in {keyring.key_variable(kind, prefix) for kind in keyring.KINDS}


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


@slotted.frozen
class HeldLock:
    """A run's lock while it is held: the file, and the descriptor a command's process group inherits."""

    path: Path
    fd: int


@contextmanager
def run_lock(paths: EnvPaths, automation: str, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold the environment's lock of ``automation`` for the duration of a run.

    The lock is an ``flock`` on a file in the environment's ``locks``
    directory (opened through :func:`envfence.files.open_lock`: owner-only,
    never through a link), released by the kernel if the process dies. A second run
    raises :class:`AlreadyRunning` with the holder's pid and start time,
    or waits for it when ``wait`` is true. A command automation's process
    group inherits the lock (:func:`run_command`), so it stays held until
    the last of those processes exits, even when envfence itself was killed.
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
        yield HeldLock(path, handle.fileno())
    finally:
        try:
            handle.seek(0)
            handle.truncate()
        except OSError:
            pass
        handle.close()


# --- the stage: ready the environment, then run the job --------------------------------


@slotted.frozen
class Execution:
    """What executing a job came to, before it is recorded.

    ``error`` is what failed it (None when it succeeded, or when an ad-hoc
    command's own exit status is its answer); ``traceback`` says whether the
    error's traceback is its detail. ``job_ran`` is False for a dry run of a
    command, which only shows its ``plan``.
    """

    status: str  #: ``succeeded``, ``failed`` or ``dry-run``
    code: int
    started: _dt.datetime
    error: BaseException | None = None
    traceback: bool = True
    metrics: dict[str, Any] = slotted.field(factory=dict)
    plan: tuple[str, ...] = ()
    job_ran: bool = True


class NotStarted(Exception):
    """The environment could not be readied (its tree, the store holding the lock, the lock itself): no job ran."""

    def __init__(self, error: EnvfenceError) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def readied(session: Any, automation: Automation, *, wait: bool, echo: Callable[[str], None], embedded: bool) -> Iterator[int | None]:
    """Ready the environment for a real run and hold it: prepare, reap, lock, logging.

    Yields the lock's file descriptor, which a command's process group
    inherits (None for a lock without one: a shared store's, or an ad-hoc
    command's, which holds none). Raises :class:`NotStarted` when the tree
    cannot be used, the store that holds the lock cannot be reached, or
    another run holds the lock.
    """
    try:
        # Creates the tree; from here on the audit trail is written. Its event goes out with the
        # run's run.started (one flush for both), or alone when the run cannot start.
        session.prepare(defer_event=True)
    except (SafetyError, ConfigurationError) as exc:
        session.audit_log.flush()  # what was deferred before (exec's read) goes out with no tree to prepare
        raise NotStarted(exc) from exc
    try:
        with _held(session, automation, wait, echo, embedded) as fd:
            yield fd
    finally:
        session.audit_log.flush()  # nothing when run.started took it


@contextmanager
def _held(session: Any, automation: Automation, wait: bool, echo: Callable[[str], None], embedded: bool) -> Iterator[int | None]:
    """The rest of :func:`readied`, once the tree is prepared: reap, lock, logging."""
    from contextlib import ExitStack, nullcontext

    session.plugins.reap_abandoned_runs(session=session)  # a run killed earlier is marked before this one starts
    if wait:  # the lock may take minutes: what was deferred (the tree prepared) cannot wait in memory that long
        session.audit_log.flush()
    try:
        # An ad-hoc command holds no lock; a shared store may hold the lock across hosts; the file lock is the default.
        lock = nullcontext() if automation.adhoc else session.plugins.acquire_run_lock(
            session=session, automation=automation.name, wait=wait, echo=echo
        ).first or run_lock(session.paths, automation.name, wait=wait, on_wait=echo)
    except ConfigurationError as exc:  # the store that holds the lock cannot be reached
        raise NotStarted(exc) from exc
    with ExitStack() as stack:
        try:
            held = stack.enter_context(lock)
        except AlreadyRunning as exc:
            raise NotStarted(exc) from exc
        # The sinks come from the logging strategy (a plugin); embedded, the embedding code owns them.
        if not embedded:
            session.configure_logging(embedded=False)
            if session.log_file is None:  # an error id printed in production must find its detail
                session.log_file = session.plugins.fallback_log_file(session=session).first
        elif session.logging is None:
            session.configure_logging(embedded=True)
        yield getattr(held, "fd", None)


def context(session: Any, request: Any, run_id: str, echo: Callable[[str], None], dry_run: bool) -> Any:
    """The :class:`~envfence.runs.context.RunContext` a function automation receives."""
    from ..session_logging import LazyLogger
    from .context import RunContext
    from .measures import Measures

    return RunContext(
        session=session,
        automation=request.automation,
        run_id=run_id,
        dry_run=dry_run,
        forced=request.force,
        reason=request.reason,
        paths=session.paths,
        # Made at its first use: a job that does not log imports no loguru.
        logger=LazyLogger(lambda: session.logger(run_id=run_id, automation=request.automation.name)),
        echo=echo,
        event=request.event,
        measures=Measures(session.redactor()),  # a name holding a secret value is refused, never kept
    )


def run_job(session: Any, request: Any, run_id: str, echo: Callable[[str], None], lock_fd: int | None) -> Execution:
    """Run the job of a readied environment; never raises for the job's own failure."""
    from ..models import utcnow
    from .context import show

    automation = request.automation
    ctx = context(session, request, run_id, echo, dry_run=False)
    started, before = utcnow(), usage()
    error: BaseException | None = None
    code, traceback = 0, False
    try:
        execute(session, automation, ctx, lambda line: show(echo, ctx.logger, line), () if lock_fd is None else (lock_fd,))
    except SystemExit as exc:
        code = exit_code(exc.code)
        error = RunFailed(automation.name, code) if code else None
    except RunFailed as exc:
        code = exc.returncode
        # An ad-hoc command's exit status is its own answer (grep found nothing), not an error to report;
        # a limit it reached is the environment's answer, reported as for any job.
        error = None if automation.adhoc and not isinstance(exc, ResourceLimitHit) else exc
    except Exception as exc:
        error, code, traceback = exc, EXIT_FINDINGS, True
    status = "succeeded" if error is None and not code else "failed"
    from .measures import disk_sample

    metrics = {**usage_since(before), "host": session.host.hostname, **ctx.measures.as_metrics(), **disk_sample(session.paths)}
    return Execution(status, code or (EXIT_FINDINGS if error is not None else 0), started, error, traceback, metrics)


def dry_run(session: Any, request: Any, run_id: str, echo: Callable[[str], None], started: _dt.datetime, embedded: bool) -> Execution:
    """Go through the job without effects: a command's plan is shown, a function is called with ``ctx.dry_run`` set.

    On the command line (not ``embedded``) the logging strategy is installed
    as for a run; the session is not prepared, so it adds no file.
    """
    from .context import show

    automation = request.automation
    if not embedded:
        session.configure_logging(embedded=False)
    if automation.command is not None:
        lines = plan(session, automation, run_id)
        for line in lines:
            echo(line)
        return Execution("dry-run", 0, started, plan=tuple(lines), job_ran=False)
    ctx = context(session, request, run_id, echo, dry_run=True)
    try:
        code = exit_code(call_function(session, automation, ctx, lambda line: show(echo, ctx.logger, line)))
    except SystemExit as exc:
        code = exit_code(exc.code)
    except Exception as exc:
        return Execution("failed", EXIT_FINDINGS, started, exc)
    if code:
        return Execution("failed", code, started, RunFailed(f"{automation.name} (dry run)", code), traceback=False)
    return Execution("dry-run", 0, started)
