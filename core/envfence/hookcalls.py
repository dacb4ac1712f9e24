"""Calling hooks: one typed method per hook, a result that carries the errors, and each hook's failure policy.

pluggy runs the call loop (call order, ``firstresult``, wrappers). What envfence
adds is per-plugin isolation: every implementation is wrapped at registration
(:func:`guard`) so that an exception becomes a :class:`PluginError` recorded for
the call in progress and the implementation counts as "no answer". The other
plugins still run and, for a firstresult hook, the next one answers.

Each call returns a :class:`HookResult`. What becomes of its errors is declared
beside each hookspec (:data:`envfence.hookspecs.POLICIES`) and applied here, so no
call site can drop one:

- ``FINDING``: the caller turns them into findings (:meth:`HookResult.findings`);
- ``LOG``: logged as a warning and audited as ``plugin.failed``, naming the plugin;
- ``CONFIGURATION``: a :class:`~envfence.errors.ConfigurationError` naming the plugin.

An exception of envfence's own (:class:`~envfence.errors.EnvfenceError`) is a
decision, not a fault, and goes through as it is.
"""

from __future__ import annotations

import collections
import contextvars
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Iterable, Sequence, TypeVar

from . import slotted
from .errors import ConfigurationError, EnvfenceError
from .hookspecs import POLICIES, OnError

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime
    from pathlib import Path
    from typing import Mapping

    import click

    from .models import (
        AuditEvent,
        Automation,
        ConfigLayer,
        Environment,
        EnvPaths,
        Failure,
        Finding,
        HostInfo,
        ProjectRoot,
        RunOutcome,
        RunRequest,
        SettingSpec,
    )
    from .pipeline import Session
    from .redaction import SecretShape
    from .runs.totals import RunTotals
    from .settings import ProjectSettings
    from .settings_tables import Table
    from .testing import FakeService

T = TypeVar("T")


class PluginError(Exception):
    """A plugin raised inside a hook; carries the plugin's name."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


class HookNotDeclared(ConfigurationError):
    """A hook was called that no loaded plugin declares (its plugin is disabled, failed or not installed)."""

    def __init__(self, hook: str, declared_by: str, record: Any) -> None:
        if record is None:
            where = f"its plugin {declared_by!r} is not installed" if declared_by else "no plugin declares it"
        else:
            where = f"its plugin {declared_by!r} is {record.status}" + (f" ({record.reason})" if record.reason else "")
        hint = (
            f"enable the plugin {declared_by!r} (drop -p no:{declared_by}, clear ENVFENCE_DISABLE_PLUGINS, "
            "or add it to ENVFENCE_PLUGINS); `envfence plugins` shows why it is not loaded"
            if declared_by else "install the plugin that declares it; `envfence plugins --hooks` lists the hooks there are"
        )
        super().__init__(f"the hook {hook!r} is not available: {where}", hint)
        self.hook = hook


class PluginFailed(ConfigurationError):
    """A plugin raised in a hook whose failure policy is ``CONFIGURATION``; names the plugin."""

    def __init__(self, error: PluginError, message: str) -> None:
        super().__init__(message, f"fix or disable the plugin (-p no:{error.plugin})")
        self.error = error


@slotted.frozen
class HookResult(Generic[T]):
    """What one hook call came to: the plugins' answers and their errors.

    ``values`` are the non-None answers in call order (at most one for a
    firstresult hook); ``errors`` one :class:`PluginError` per plugin that raised.
    """

    hook: str
    values: tuple[T, ...] = ()
    errors: tuple[PluginError, ...] = ()

    @property
    def first(self) -> T | None:
        """The first answer (a firstresult hook's only one), or None."""
        return self.values[0] if self.values else None

    def flat(self) -> list[Any]:
        """The answers of a hook whose implementations return lists, joined."""
        return [item for group in self.values for item in group]

    def findings(self, code: str = "PLUGIN_ERROR", why: str = "") -> list["Finding"]:
        """One error finding per plugin that raised, naming it (messages not yet redacted)."""
        from .models import Finding

        return [
            Finding(
                code=code,
                severity="error",
                message=f"{why}{error}",
                remediation=f"update or disable the plugin (envfence -p no:{error.plugin} ...)",
                plugin=error.plugin,
            )
            for error in self.errors
        ]


@slotted.frozen
class HookCallRecord:
    """One hook call as :attr:`HookCalls.call_log` keeps it."""

    hook: str
    answered: tuple[str, ...]  #: the plugins that returned something, in call order
    seconds: float


class _Call:
    """The state of the hook call in progress: its errors and, when tracing, its timings."""

    __slots__ = ("errors", "timings", "began", "trace", "answered")

    def __init__(self, trace: bool = False) -> None:
        self.trace = trace
        self.errors: list[PluginError] = []
        self.timings: list[str] = []
        self.began = 0.0
        self.answered: list[str] = []  #: the plugins that returned something, in call order


_current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("envfence_hook_call", default=None)
#: While set to ``(hook, callback)``: the callback is told each plugin's name as its ``hook`` implementation
#: returns, the progress of a long hook call (``check --live``).
plugin_done: contextvars.ContextVar[tuple[str, Callable[[str], None]] | None] = contextvars.ContextVar(
    "envfence_plugin_done", default=None
)


def _recorded(call: _Call | None, plugin: str, hook: str, exc: Exception) -> None:
    """Record ``exc`` for the call in progress; raise it when the hook was called around the manager."""
    if call is None:
        raise exc
    call.errors.append(PluginError(plugin, hook, exc))


def guard(function: Callable[..., Any], plugin: str, hook: str, wrapper: bool) -> Callable[..., Any]:
    """``function`` (a hookimpl) made to record its exceptions instead of stopping the call."""
    if wrapper:
        return _guard_wrapper(function, plugin, hook)

    def guarded(*args: Any) -> Any:
        call = _current.get()
        started = time.perf_counter()
        outcome = "no answer"
        try:
            value = function(*args)
            if value is not None:
                outcome = "answered"
                if call is not None:
                    call.answered.append(plugin)
            return value
        except EnvfenceError as exc:
            outcome = f"raised {type(exc).__name__}"
            raise
        except Exception as exc:
            outcome = f"raised {type(exc).__name__}"
            _recorded(call, plugin, hook, exc)
            return None
        finally:
            if call is not None and call.trace:
                call.timings.append(f"{plugin} {(time.perf_counter() - started) * 1000:.2f} ms ({outcome})")
            watched = plugin_done.get()
            if watched is not None and watched[0] == hook:
                watched[1](plugin)

    guarded.envfence_guarded = True  # type: ignore[attr-defined]
    return guarded


def _guard_wrapper(function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    """A guarded new-style wrapper: a wrapper that raises passes the inner result on unchanged."""

    def guarded(*args: Any) -> Any:
        call = _current.get()
        gen = function(*args)
        try:
            request = next(gen)
        except EnvfenceError:
            raise
        except StopIteration:
            _recorded(call, plugin, hook, RuntimeError("the wrapper returned without yielding"))
            return (yield)
        except Exception as exc:
            _recorded(call, plugin, hook, exc)
            return (yield)
        try:
            inner = yield request
        except BaseException as exc:  # an inner EnvfenceError: the wrapper may clean up
            try:
                gen.throw(exc)
            except StopIteration as stop:
                return stop.value
            raise
        try:
            gen.send(inner)
        except StopIteration as stop:
            return stop.value
        except EnvfenceError:
            raise
        except Exception as exc:
            _recorded(call, plugin, hook, exc)
            return inner
        gen.close()
        _recorded(call, plugin, hook, RuntimeError("the wrapper yielded twice"))
        return inner

    guarded.envfence_guarded = True  # type: ignore[attr-defined]
    return guarded


def guard_plugin(plugin: Any, callers: Iterable[Any]) -> None:
    """Wrap every hookimpl of ``plugin`` in its ``callers`` with :func:`guard` (old-style hookwrappers stay as they are)."""
    for caller in callers:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.hookwrapper and not hasattr(impl.function, "envfence_guarded"):
                impl.function = guard(impl.function, impl.plugin_name, caller.name, impl.wrapper)


def _trace_line(hook: str, impls: list[Any], call: _Call | None) -> str:
    """One line for a hook call: every plugin in call order, its time and what it did."""
    total = (time.perf_counter() - call.began) * 1000 if call else 0.0
    ordered = list(reversed(impls))
    if any(impl.wrapper or impl.hookwrapper for impl in ordered):
        names = ", ".join(impl.plugin_name for impl in ordered)
        parts = [f"{names} (through a wrapper: no per-plugin timings)"]
    else:
        timings = list(call.timings) if call else []
        parts = timings + [f"{impl.plugin_name} (not called)" for impl in ordered[len(timings):]]
    body = "; ".join(parts) if parts else "no plugin implements it"
    return f"envfence: trace: {hook} [{total:.2f} ms]: {body}"


def install_tracing(pm: Any, write: Callable[[str], None] | None = None) -> Callable[[], None]:
    """Print a line per hook call on stderr (``ENVFENCE_TRACE_PLUGINS``, ``--trace``), through pluggy's call monitoring.

    :param write: where each line goes instead of stderr.
    :returns: what stops it.
    """

    def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        call = _current.get()
        if call is not None:
            call.began = time.perf_counter()

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        line = _trace_line(hook_name, impls, _current.get())
        if write is None:
            print(line, file=sys.stderr)
        else:
            write(line)

    return pm.add_hookcall_monitoring(before, after)


def _redactor(kwargs: dict[str, Any], session: Any, plugins: Any) -> Callable[[str], str]:
    """The session's redactor; without a session, the one for the process environment and ``plugins``' shapes."""
    session = session if session is not None else kwargs.get("session")
    if session is not None:
        return session.redactor()
    from .pipeline import unopened_redactor

    return unopened_redactor(plugins, kwargs.get("environ"))


class HookCalls:
    """One typed method per hook; each returns a :class:`HookResult` and applies the hook's failure policy.

    Subclassed by :class:`envfence.plugins.PluginManager`, which provides ``pm``
    (the pluggy manager).
    """

    pm: Any

    trace: bool = False

    @property
    def call_log(self) -> "collections.deque[HookCallRecord]":
        """The latest hook calls (at most 2,000): which plugins answered and how long each call took."""
        log = self.__dict__.get("_call_log")
        if log is None:
            log = self.__dict__["_call_log"] = collections.deque(maxlen=2000)
        return log

    def _call(self, hook: str, _declared_by: str = "", _skip: Sequence[Any] = (), **kwargs: Any) -> HookResult[Any]:
        """Call ``hook`` with keyword arguments (a LOG error goes to their ``session``, when there is one).

        :raises HookNotDeclared: no loaded plugin declares ``hook`` (``_declared_by`` names the one that would).
        """
        caller = getattr(self.pm.hook, hook, None)
        if caller is None or caller.spec is None:
            raise HookNotDeclared(hook, _declared_by, getattr(self, "records", {}).get(_declared_by))
        if _skip:
            caller = self.pm.subset_hook_caller(hook, _skip)
        call = _Call(self.trace)
        token = _current.set(call)
        started = time.perf_counter()
        try:
            raw = caller(**kwargs)
        finally:
            _current.reset(token)
            # Kept for a debugging profile's DEBUG records (envfence.runs.decisions); a bounded, cheap list.
            self.call_log.append(HookCallRecord(hook, tuple(call.answered), time.perf_counter() - started))
        if caller.spec is not None and caller.spec.opts.get("firstresult"):
            values: tuple[Any, ...] = () if raw is None else (raw,)
        else:
            values = tuple(raw)
        result = HookResult(hook, values, tuple(call.errors))
        if result.errors:
            self._apply_policy(result, kwargs)
        return result

    def _apply_policy(self, result: HookResult[Any], kwargs: dict[str, Any]) -> None:
        policy = getattr(self.pm.hook, result.hook).spec.function.envfence_policy
        if policy is OnError.FINDING:
            return  # the caller reports them with the findings it returns
        session = kwargs.get("session")
        redact = _redactor(kwargs, session, self)
        if policy is OnError.CONFIGURATION:
            error = result.errors[0]
            raise PluginFailed(error, redact(str(error)))
        for error in result.errors:
            if session is not None:
                session.plugin_failed(error)
            else:
                print(f"envfence: warning: {redact(str(error))} (disable it with -p no:{error.plugin})", file=sys.stderr)

    # --- discovery and detection ----------------------------------------------

    def find_project_root(self, *, start: Path, environ: Mapping[str, str]) -> HookResult[ProjectRoot]:
        """``find_project_root``: the first :class:`~envfence.models.ProjectRoot` found (FINDING)."""
        return self._call("find_project_root", start=start, environ=environ)

    def classify_host(self, *, hostname: str, settings: ProjectSettings) -> HookResult[HostInfo]:
        """``classify_host``: the host's :class:`~envfence.models.HostInfo` (FINDING)."""
        return self._call("classify_host", hostname=hostname, settings=settings)

    def detect_environment(self, *, settings: ProjectSettings, environ: Mapping[str, str], host: HostInfo) -> HookResult[Environment]:
        """``detect_environment``: the first :class:`~envfence.models.Environment` decided (FINDING)."""
        return self._call("detect_environment", settings=settings, environ=environ, host=host)

    # --- configuration ---------------------------------------------------------

    def declare_settings(self, *, settings: ProjectSettings) -> HookResult[list[SettingSpec]]:
        """``declare_settings``: lists of :class:`~envfence.models.SettingSpec` (FINDING)."""
        return self._call("declare_settings", settings=settings)

    def declare_tables(self) -> HookResult[list[Table]]:
        """``declare_tables``: lists of :class:`~envfence.settings_tables.Table` (FINDING)."""
        return self._call("declare_tables")

    def load_config(
        self, *, root: Path, environment: Environment, settings: ProjectSettings, environ: Mapping[str, str]
    ) -> HookResult[list[ConfigLayer]]:
        """``load_config``: lists of :class:`~envfence.models.ConfigLayer` (FINDING)."""
        return self._call("load_config", root=root, environment=environment, settings=settings, environ=environ)

    def decrypt_value(
        self, *, key: str, value: str, source: str, environment: Environment, settings: ProjectSettings, root: Path,
        environ: Mapping[str, str],
    ) -> HookResult[str]:
        """``decrypt_value``: the plain value (CONFIGURATION)."""
        return self._call(
            "decrypt_value", key=key, value=value, source=source, environment=environment,
            settings=settings, root=root, environ=environ,
        )

    def validate(self, *, session: Session, live: bool) -> HookResult[list[Finding]]:
        """``validate``: lists of findings (FINDING)."""
        return self._call("validate", session=session, live=live)

    def host_notes(self, *, session: Session) -> HookResult[list[Finding]]:
        """``host_notes``: lists of findings about the host, for ``detect`` (FINDING)."""
        return self._call("host_notes", session=session)

    # --- the environment's tree and logging -------------------------------------

    def environment_paths(self, *, session: Session) -> HookResult[EnvPaths]:
        """``environment_paths``: the :class:`~envfence.models.EnvPaths` (CONFIGURATION)."""
        return self._call("environment_paths", session=session)

    def prepare_environment(self, *, session: Session, paths: EnvPaths) -> HookResult[list[Finding]]:
        """``prepare_environment``: lists of findings (FINDING)."""
        return self._call("prepare_environment", session=session, paths=paths)

    def tree_refusals(self, *, session: Session, paths: EnvPaths) -> HookResult[list[Finding]]:
        """``tree_refusals``: lists of findings (CONFIGURATION)."""
        return self._call("tree_refusals", session=session, paths=paths)

    def configure_logging(self, *, session: Session, embedded: bool) -> HookResult[Any]:
        """``configure_logging``: what the strategy installed (LOG)."""
        return self._call("configure_logging", session=session, embedded=embedded)

    def fallback_log_file(self, *, session: Session) -> HookResult[Path]:
        """``fallback_log_file``: the run's log file when the strategy wrote none (LOG)."""
        return self._call("fallback_log_file", session=session)

    # --- commands and automations ------------------------------------------------

    def register_commands(self, *, cli: click.Group) -> HookResult[None]:
        """``register_commands`` (LOG: a warning on stderr, the other commands work)."""
        return self._call("register_commands", cli=cli)

    def register_automations(self, *, session: Session, register: Callable[[Automation], None]) -> HookResult[None]:
        """``register_automations`` (CONFIGURATION)."""
        return self._call("register_automations", session=session, register=register)

    # --- runs ------------------------------------------------------------------------

    def pre_run_safety(self, *, session: Session, request: RunRequest) -> HookResult[list[Finding]]:
        """``pre_run_safety``: lists of findings (FINDING, as ``SAFETY_GUARD_FAILED``)."""
        return self._call("pre_run_safety", session=session, request=request)

    def reap_abandoned_runs(self, *, session: Session) -> HookResult[None]:
        """``reap_abandoned_runs`` (LOG)."""
        return self._call("reap_abandoned_runs", session=session)

    def on_run_start(self, *, session: Session, request: RunRequest, run_id: str) -> HookResult[None]:
        """``on_run_start`` (LOG)."""
        return self._call("on_run_start", session=session, request=request, run_id=run_id)

    def on_run_finish(self, *, session: Session, request: RunRequest, outcome: RunOutcome) -> HookResult[None]:
        """``on_run_finish`` (LOG)."""
        return self._call("on_run_finish", session=session, request=request, outcome=outcome)

    def classify_error(self, *, error: BaseException, session: Session | None = None) -> HookResult[str]:
        """``classify_error``: the error's class (LOG, to ``session`` when there is one)."""
        return self._call("classify_error", error=error, session=session)

    def on_error(self, *, session: Session | None, failure: Failure) -> HookResult[None]:
        """``on_error`` (LOG)."""
        return self._call("on_error", session=session, failure=failure)

    def audit_event(self, *, session: Session, event: AuditEvent) -> HookResult[None]:
        """``audit_event`` (CONFIGURATION: an action whose trail cannot be kept does not go ahead)."""
        return self._call("audit_event", session=session, event=event)

    def run_history(
        self, *, session: Session, automation: str | None, limit: int, since: datetime | None = None
    ) -> HookResult[list[RunOutcome]]:
        """``run_history``: the runs, newest first, started at or after ``since`` when given (LOG)."""
        return self._call("run_history", session=session, automation=automation, limit=limit, since=since)

    def run_totals(self, *, session: Session, since: datetime | None, buckets: tuple[float, ...] = ()) -> HookResult[RunTotals]:
        """``run_totals``: the history summed per automation, day and status where it is kept (LOG)."""
        return self._call("run_totals", session=session, since=since, buckets=buckets)

    def register_emulators(self) -> HookResult[Mapping[str, type[FakeService]]]:
        """``register_emulators``: mappings of name to fake service class (FINDING: the caller names failed plugins)."""
        return self._call("register_emulators")

    def secret_shapes(self) -> HookResult[list[SecretShape]]:
        """``secret_shapes``: lists of :class:`~envfence.redaction.SecretShape` (LOG: a warning naming the plugin)."""
        return self._call("secret_shapes")

    # --- operations ----------------------------------------------------------------------

    def automation_state(self, *, session: Session, automation: Automation) -> HookResult[Mapping[str, Any]]:
        """``automation_state``: mappings merged into an automation's state (LOG)."""
        return self._call("automation_state", session=session, automation=automation)

    # --- a shared store (several machines) -------------------------------------------

    def acquire_run_lock(self, *, session: Session, automation: str, wait: bool, echo: Callable[[str], None]) -> HookResult[Any]:
        """``acquire_run_lock``: the lock a run holds, when a plugin holds it (CONFIGURATION)."""
        return self._call("acquire_run_lock", session=session, automation=automation, wait=wait, echo=echo)


class OfferedHooks:
    """Typed calls to the hooks one plugin declares through ``register_hookspecs``.

    A plugin that offers hooks subclasses it beside its hookspecs, one method
    per hook taking the spec's arguments with their types::

        class AlertHooks(OfferedHooks):
            declared_by = "alerts"
            specs = alert_hookspecs

            def alert(self, *, session: Session, alert: Alert, channels: tuple[str, ...]) -> HookResult[list[str]]:
                return self._call("alert", session=session, alert=alert, channels=channels)

    and calls ``AlertHooks(session.plugins).alert(...)``. The failure policy
    declared beside each hookspec applies as for the core's hooks. When
    ``declared_by`` is not loaded, a call raises :class:`HookNotDeclared` naming it.
    """

    #: The plugin that declares these hooks (its entry-point name).
    declared_by: ClassVar[str] = ""
    #: The module or class holding the hookspecs these methods call.
    specs: ClassVar[Any] = None

    def __init__(self, plugins: HookCalls) -> None:
        self.plugins = plugins

    def _call(self, hook: str, **kwargs: Any) -> HookResult[Any]:
        return self.plugins._call(hook, _declared_by=self.declared_by, **kwargs)


def hook_names() -> Iterable[str]:
    """Every hook with a typed method (all of :mod:`envfence.hookspecs`)."""
    return POLICIES.keys()


def tables_declared_for(plugins: HookCalls, present: Iterable[str]) -> HookResult[list[Table]]:
    """``declare_tables`` asked of the plugins that may declare one of the ``present`` tables.

    A plugin whose cached tables (:mod:`envfence.plugin_manifest`) are none of ``present`` is
    left out, imported already or not: it could only declare tables the project does not
    hold, which judge nothing, so a run neither imports it nor builds those tables. Every
    other plugin (one registered without the manifest) is asked.
    """
    wanted = set(present)
    skip = [
        plugin for plugin in plugins.pm.get_plugins()
        if getattr(plugin, "envfence_tables", None) is not None and not wanted & set(plugin.envfence_tables)
    ]
    return plugins._call("declare_tables", _skip=skip)
