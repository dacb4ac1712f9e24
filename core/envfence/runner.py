"""Running an automation: the safety decision, the run, its failures and its record.

The pipeline of one run::

    pre_run_safety  -> findings; an error blocks the run (exit 3) unless forced
    (override)      -> --reason in a strict profile, a typed confirmation on a
                       development terminal, an audit event with user, host, reason
    prepare_environment, lock, configure_logging     (never for a dry run)
    on_run_start -> the automation -> on_run_finish  (never for a dry run)
    on_error                                         every failure, classified

A dry run goes through detection, loading, validation and safety, then calls
the automation with ``ctx.dry_run`` set; it writes nothing.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs

from .errors import EXIT_BLOCKED, EXIT_FINDINGS, ConfigurationError, EnvfenceError, SafetyError, UsageError
from .models import Automation, EnvPaths, Failure, Finding, RunOutcome, RunRequest, reveal, utcnow

#: Variables of the parent process a command automation keeps: what a process
#: needs to start and to find its tools, nothing that carries configuration.
PASSTHROUGH_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "SYSTEMROOT", "COMSPEC", "PATHEXT", "WINDIR",  # a Windows process cannot start without these
)
PASSTHROUGH_PREFIXES = ("LC_",)

#: Exit code of a run whose lock is held by another run.


class RunFailed(EnvfenceError):
    """A command automation exited non-zero."""

    def __init__(self, command: str, returncode: int) -> None:
        super().__init__(f"{command} exited with status {returncode}")
        self.returncode = returncode


class AlreadyRunning(SafetyError):
    """Another run of the same automation holds the environment's lock."""


def new_id(prefix: str) -> str:
    """A short random id, e.g. ``run-5f2c9a1e`` or ``E7d01b3c4``."""
    import secrets

    return f"{prefix}{secrets.token_hex(4)}"


@attrs.define
class RunContext:
    """What an automation receives: everything about its environment, nothing from another.

    Attributes: ``session``, ``automation``, ``run_id``, ``dry_run``,
    ``forced``, ``reason``, ``paths`` (the environment's :class:`EnvPaths`,
    not created in a dry run) and ``logger`` (loguru, bound to the run).
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
        show(self.session, self.echo, self.logger, self.session.redactor()(str(text)))

    def retry(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn``, trying again only where that cannot duplicate a write (see :mod:`envfence.retry`).

        Pass ``idempotent=True`` for a call that is safe to repeat (a read, an upsert on a key field).
        """
        from .retry import retry_call

        def note(attempt: int, error: BaseException, wait: float) -> None:
            if self.logger is not None:
                message = self.session.redactor()(f"{type(error).__name__}: {error}")
                self.logger.warning(f"try {attempt} failed ({message}); retrying in {wait:.2f}s")

        kwargs.setdefault("on_retry", note)
        return retry_call(fn, *args, **kwargs)


@attrs.frozen
class RunResult:
    """What a run came to: its outcome, the safety findings, and its failure if any."""

    outcome: RunOutcome
    findings: tuple[Finding, ...] = ()
    failure: Failure | None = None
    overridden: tuple[Finding, ...] = ()  #: blocking findings the run was forced past
    plan: tuple[str, ...] = ()  #: what a dry run of a command would do
    held_audit: tuple[Any, ...] = ()  #: audit events a dry run did not record
    detail: str = ""  #: the failure's redacted traceback, when it has one

    @property
    def exit_code(self) -> int:
        """The run's exit code."""
        return self.outcome.exit_code


def fail_unopened(plugins, error: BaseException, automation: str | None) -> Failure:
    """Report a failure that stopped the session from opening: ``on_error`` with no session."""
    from .redaction import Redactor, environ_secrets

    failure = Failure(
        error_id=new_id("E"),
        classification=plugins.call("classify_error", error=error) or "bug",
        message=Redactor(environ_secrets(os.environ))(error.message if isinstance(error, EnvfenceError) else f"{type(error).__name__}: {error}"),
        automation=automation,
        exception=error,
    )
    plugins.call("on_error", session=None, failure=failure)
    return failure


def collect_automations(session) -> dict[str, Automation]:
    """Every automation the plugins register, by name.

    A name registered twice is a :class:`ConfigurationError` naming both
    plugins: silently picking one would run the wrong job.
    """
    found: dict[str, Automation] = {}
    problems: list[str] = []

    def register(automation: Automation) -> None:
        if not isinstance(automation, Automation):
            raise TypeError(f"register() takes an envfence.models.Automation, not {type(automation).__name__}")
        other = found.get(automation.name)
        if other is not None:
            problems.append(
                f"automation {automation.name!r} is registered twice ({other.plugin or '?'} and {automation.plugin or '?'})"
            )
            return
        found[automation.name] = automation

    _, errors = session.plugins.call("register_automations", session=session, register=register)
    if errors:
        raise ConfigurationError(session.redactor()(str(errors[0])), f"fix or disable the plugin (-p no:{errors[0].plugin})")
    if problems:
        raise ConfigurationError(problems[0], "rename one of them")
    return dict(sorted(found.items()))


def find_automation(session, name: str) -> Automation:
    """The automation called ``name``, or a :class:`UsageError` listing the known ones."""
    automations = collect_automations(session)
    if name in automations:
        return automations[name]
    import difflib

    close = difflib.get_close_matches(name, list(automations), n=1)
    known = ", ".join(automations) or "none"
    raise UsageError(
        f"no automation named {name!r} (known: {known})",
        f"did you mean {close[0]!r}?" if close else "see `envfence list`, or declare it under [automations] in the settings",
    )


class Runner:
    """Runs automations in one session's environment.

    :param session: the open :class:`~envfence.pipeline.Session`.
    :param echo: prints a line of the automation's output (default ``print``).
    :param confirm: asked before a forced run with the environment's name;
        returns True to go on. The CLI passes one only on a development
        terminal; without it no question is ever asked.
    :param wait: wait for a running run of the same automation instead of refusing.
    :param embedded: True (library use): the embedding code owns logging and
        envfence adds no sink; the command line passes False to install the
        environment's log sinks.
    """

    def __init__(
        self,
        session,
        *,
        echo: Callable[[str], None] = print,
        confirm: Callable[[str], bool] | None = None,
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

    # --- safety ------------------------------------------------------------------

    def check(self, request: RunRequest) -> list[Finding]:
        """The ``pre_run_safety`` findings for ``request``; a failing guard blocks."""
        # Validation is lazy; a run always validates first, so that its
        # failures reach the audit trail in every profile, strict or not.
        self.session.report.findings
        results, errors = self.session.plugins.call("pre_run_safety", session=self.session, request=request)
        findings = [f for group in results for f in group]
        for error in errors:
            findings.append(
                Finding(
                    code="SAFETY_GUARD_FAILED",
                    severity="error",
                    message=f"the safety guard could not decide: {error}",
                    remediation=f"fix or disable the plugin (-p no:{error.plugin}); a guard that cannot decide blocks",
                    plugin=error.plugin,
                )
            )
        return list(self.session.redact_findings(findings))

    # --- running -----------------------------------------------------------------

    def run(self, request: RunRequest) -> RunResult:
        """Decide, then run ``request``; never raises for a failure of the automation."""
        session = self.session
        if request.reason:
            # The reason goes to the screen, the trail, the history and Airtable: mask it once here.
            request = attrs.evolve(request, reason=session.redactor()(request.reason))
        run_id = new_id("run-")
        started = utcnow()
        findings = tuple(self.check(request))
        blocking = tuple(f for f in findings if f.severity == "error")

        if blocking:
            refusal = self._refuse_override(request, blocking)
            if refusal is not None:
                error = SafetyError(refusal, "")
                failure = self.fail(error, request.automation.name, traceback_text="")
                session.audit(
                    "run.blocked",
                    automation=request.automation.name,
                    codes=[f.code for f in blocking],
                    host=session.host.hostname,
                    user=current_user(),
                    dry_run=request.dry_run,
                )
                outcome = self._outcome(run_id, request, "blocked", EXIT_BLOCKED, started, failure=failure)
                return RunResult(outcome, findings, failure, held_audit=session.held_audit)
            session.audit(
                "run.forced",
                automation=request.automation.name,
                user=current_user(),
                host=session.host.hostname,
                reason=request.reason or "",
                overridden=[f.code for f in blocking],
                dry_run=request.dry_run,
            )

        if request.dry_run:
            return self._dry_run(request, run_id, started, findings, blocking)
        return self._real_run(request, run_id, started, findings, blocking)

    def _refuse_override(self, request: RunRequest, blocking: tuple[Finding, ...]) -> str | None:
        """Why forcing is refused, or None when the run may go ahead forced."""
        env = self.session.environment.name
        if not request.force:
            return "; ".join(f.message for f in blocking)
        if self.session.profile.strict and not (request.reason or "").strip():
            return f"--force in {env} (a strict profile) needs --reason TEXT, which the audit trail records"
        if self.confirm is not None and not request.dry_run and not self.confirm(env):
            return f"forcing was not confirmed (the environment's name {env!r} was not typed)"
        return None

    def _dry_run(self, request, run_id, started, findings, blocking) -> RunResult:
        ctx = self._context(request, run_id, dry_run=True)
        automation = request.automation
        plan: list[str] = []
        status, code, failure = "dry-run", 0, None
        if automation.command is not None:
            env = self.subprocess_environment(run_id, dry_run=True)
            plan.append(f"would run: {_shell_join(automation.command)}")
            plan.append(f"in: {self.session.root.path}")
            plan.append("with variables: " + ", ".join(sorted(env)))
            for line in plan:
                self.echo(line)
        else:
            try:
                result = automation.function(ctx)
                code = _exit_code(result)
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except Exception as exc:
                failure = self.fail(exc, automation.name)
                status, code = "failed", EXIT_FINDINGS
            if code and failure is None:
                status = "failed"
                failure = self.fail(RunFailed(f"{automation.name} (dry run)", code), automation.name, traceback_text="")
        outcome = self._outcome(run_id, request, status, code, started, failure=failure, forced=bool(blocking))
        return RunResult(outcome, findings, failure, blocking, tuple(plan), self.session.held_audit, self._detail(failure))

    def _real_run(self, request, run_id, started, findings, blocking) -> RunResult:
        session, automation = self.session, request.automation
        try:
            session.prepare()  # creates the tree; from here on the audit trail is written
        except (SafetyError, ConfigurationError) as exc:
            failure = self.fail(exc, automation.name)
            code = exc.exit_code
            outcome = self._outcome(run_id, request, "blocked" if code == EXIT_BLOCKED else "failed", code, started, failure=failure)
            return RunResult(outcome, findings, failure, blocking)
        paths = session.paths
        try:
            with run_lock(paths, automation.name, wait=self.wait, on_wait=self.echo):
                sink = self._logging(paths)
                try:
                    return self._execute(request, run_id, paths, findings, blocking)
                finally:
                    if sink is not None:
                        from loguru import logger

                        logger.remove(sink)
        except AlreadyRunning as exc:
            failure = self.fail(exc, automation.name, traceback_text="")
            outcome = self._outcome(run_id, request, "blocked", EXIT_BLOCKED, started, failure=failure)
            return RunResult(outcome, findings, failure, blocking, detail=self._detail(failure))

    def _execute(self, request, run_id, paths, findings, blocking) -> RunResult:
        session, automation = self.session, request.automation
        ctx = self._context(request, run_id, dry_run=False)
        forced = bool(blocking)
        session.audit("run.started", automation=automation.name, run_id=run_id, forced=forced, host=session.host.hostname)
        session.plugins.call("on_run_start", session=session, request=request, run_id=run_id)
        started = utcnow()
        before = _usage()
        failure, code, status = None, 0, "succeeded"
        try:
            if automation.command is not None:
                code = self._run_command(automation, run_id, ctx)
                if code:
                    raise RunFailed(_shell_join(automation.command), code)
            else:
                code = _exit_code(automation.function(ctx))
                if code:
                    raise RunFailed(automation.name, code)
        except SystemExit as exc:
            code = _exit_code(exc.code)
            if code:
                failure = self.fail(RunFailed(automation.name, code), automation.name, traceback_text="")
        except RunFailed as exc:
            failure = self.fail(exc, automation.name, traceback_text="")
            code = exc.returncode
        except Exception as exc:
            failure = self.fail(exc, automation.name)
            code = EXIT_FINDINGS
        if failure is not None:
            status = "failed"
            code = code or EXIT_FINDINGS
        metrics = {**_usage_since(before), "host": session.host.hostname}
        outcome = self._outcome(
            run_id, request, status, code, started, failure=failure, forced=forced, metrics=metrics
        )
        _, errors = session.plugins.call("on_run_finish", session=session, request=request, outcome=outcome)
        for error in errors:  # a tracker's trouble never changes the run's result
            ctx.logger.warning(session.redactor()(f"on_run_finish: {error}"))
        session.audit(
            "run.finished",
            automation=automation.name,
            run_id=run_id,
            status=status,
            exit_code=code,
            error_class=outcome.error_class,
            error_id=outcome.error_id,
            duration=round(outcome.duration, 3),
        )
        return RunResult(outcome, findings, failure, blocking, detail=self._detail(failure))

    def _run_command(self, automation: Automation, run_id: str, ctx: RunContext) -> int:
        """Run a command automation, streaming its redacted output; return its exit code."""
        import subprocess

        redactor = self.session.redactor()
        try:
            proc = subprocess.Popen(
                list(automation.command),
                cwd=self.session.root.path,
                env=self.subprocess_environment(run_id, dry_run=False),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            raise ConfigurationError(
                f"automation {automation.name!r}: cannot start {automation.command[0]!r} ({exc.strerror})",
                "check the command line in the settings, and that the program is on PATH",
            ) from None
        assert proc.stdout is not None
        for line in proc.stdout:
            show(self.session, self.echo, ctx.logger, redactor(line.rstrip("\n")))
        return proc.wait()

    def subprocess_environment(self, run_id: str, dry_run: bool) -> dict[str, str]:
        """The variables of a command automation: this environment's configuration only.

        Its credentials arrive under their plain names (``AIRTABLE_API_KEY``),
        another environment's prefixed keys never. From the parent process only
        :data:`PASSTHROUGH_VARIABLES` survive; ``ENVIRONMENT`` (the project's
        variable name) and ``ENVFENCE_*`` tell the child where it runs.
        """
        session = self.session
        env = {
            k: v
            for k, v in os.environ.items()
            if k in PASSTHROUGH_VARIABLES or k.startswith(PASSTHROUGH_PREFIXES)
        }
        env.update({k: str(reveal(v)) for k, v in session.config.environment_view().items()})
        env[session.settings.environment_variable] = session.environment.name
        env["ENVFENCE_ENVIRONMENT"] = session.environment.name
        env["ENVFENCE_ROOT"] = str(session.root.path)
        env["ENVFENCE_RUN_ID"] = run_id
        if dry_run:
            env["ENVFENCE_DRY_RUN"] = "1"
        return env

    # --- failures ----------------------------------------------------------------

    def fail(self, error: BaseException, automation: str | None, traceback_text: str | None = None) -> Failure:
        """Classify ``error``, log its redacted detail under a new error id, and call ``on_error``."""
        session = self.session
        redactor = session.redactor()
        classification = session.plugins.call("classify_error", error=error) or "bug"
        failure = Failure(
            error_id=new_id("E"),
            classification=classification,
            message=redactor(error.message if isinstance(error, EnvfenceError) else f"{type(error).__name__}: {error}"),
            automation=automation,
            exception=error,
        )
        if traceback_text is None and isinstance(error, EnvfenceError):
            traceback_text = ""  # an expected error: its message and hint say it all
        if traceback_text is None:
            import traceback

            traceback_text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.details[failure.error_id] = redactor(traceback_text)
        logger = session.logger(error_id=failure.error_id, automation=automation)
        logger.error(
            f"[{failure.error_id}] {classification} failure in {automation}: {failure.message}"
            + (f"\n{self.details[failure.error_id]}" if traceback_text else "")
        )
        _, errors = session.plugins.call("on_error", session=session, failure=failure)
        for problem in errors:
            logger.warning(redactor(f"on_error: {problem}"))
        return failure

    # --- helpers -----------------------------------------------------------------

    def _detail(self, failure: Failure | None) -> str:
        return self.details.get(failure.error_id, "") if failure is not None else ""

    def _context(self, request: RunRequest, run_id: str, dry_run: bool) -> RunContext:
        bound = self.session.logger(run_id=run_id, automation=request.automation.name)
        return RunContext(
            session=self.session,
            automation=request.automation,
            run_id=run_id,
            dry_run=dry_run,
            forced=request.force,
            reason=request.reason,
            paths=self.session.paths,
            logger=bound,
            echo=self.echo,
        )

    def _logging(self, paths: EnvPaths) -> int | None:
        """Install the environment's log sinks; returns a fallback sink id to remove, or None.

        When no ``configure_logging`` strategy answers, the run still leaves a
        log file (``logs/automation_<environment>.log``, records redacted by
        :meth:`Session.logger`) so that an error id printed in production
        finds its detail.
        """
        session = self.session
        if self.embedded:
            if session.logging is None:
                session.configure_logging(embedded=True)
            return None
        if session.configure_logging(embedded=False) is not None:
            return None
        from loguru import logger

        path = paths.log_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.enable("envfence")  # the command line owns the process (an embedded setup may have disabled it)
        return logger.add(
            path,
            level=session.profile.log_level,
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level} {message}",
            filter=lambda record: record["extra"].get("environment") == session.environment.name,
        )

    def _outcome(self, run_id, request, status, code, started, *, failure=None, forced=False, metrics=None) -> RunOutcome:
        return RunOutcome(
            run_id=run_id,
            automation=request.automation.name,
            environment=self.session.environment.name,
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


def show(session, echo: Callable[[str], None], logger: Any, line: str) -> None:
    """Print a line of the run's output for the user and log it.

    The record is marked ``echoed`` so that a console log sink can leave it
    out: the user sees the line once, on stdout, and the log file keeps it.
    """
    echo(line)
    if logger is not None:
        logger.bind(echoed=True).info(line)


def current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _exit_code(value: Any) -> int:
    if value is None or value is True:
        return 0
    if value is False:
        return EXIT_FINDINGS
    if isinstance(value, int):
        return value
    return EXIT_FINDINGS  # SystemExit("message") means failure


def _shell_join(command) -> str:
    import shlex

    return shlex.join(list(command))


def _usage() -> tuple:
    try:
        import resource
    except ImportError:  # not on Windows
        return ()
    return (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))


def _usage_since(before: tuple) -> dict[str, Any]:
    """CPU seconds used since ``before`` (this process and its children) and the peak memory in KiB."""
    after = _usage()
    if not before or not after:
        return {}
    cpu = sum(
        (a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime) for a, b in zip(after, before)
    )
    peak = max(after[0].ru_maxrss, after[1].ru_maxrss)
    if sys.platform == "darwin":  # bytes there, KiB on Linux
        peak //= 1024
    return {"cpu_seconds": round(cpu, 4), "peak_memory_kb": int(peak)}


# --- the lock ---------------------------------------------------------------------


def lock_path(paths: EnvPaths, automation: str) -> Path:
    """Where the lock of ``automation`` lives in the environment's tree."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in automation)
    return paths.base / "locks" / f"{safe}.lock"


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
    directory, released by the kernel if the process dies. A second run
    raises :class:`AlreadyRunning` with the holder's pid and start time,
    or waits for it when ``wait`` is true.
    """
    import fcntl

    path = lock_path(paths, automation)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
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
