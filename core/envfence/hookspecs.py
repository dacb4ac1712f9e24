"""Every hook envfence calls, grouped by pipeline phase.

These docstrings are the hook reference. Hooks are always called with keyword
arguments; an implementation may accept fewer arguments than the spec names.
"Stops at first non-None result" marks a firstresult hook: the first plugin to
answer decides, in pluggy's call order (last registered first, ``tryfirst`` and
``trylast`` adjusting). Every other hook collects the answers of all plugins.

A plugin is a module or object with functions decorated by
``envfence.hookimpl``, registered under the ``envfence`` entry-point group.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

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

hookspec = pluggy.HookspecMarker("envfence")


class OnError(enum.Enum):
    """What becomes of an exception a plugin raises in a hook; declared beside each hookspec.

    The plugin manager applies it (see :class:`envfence.hookcalls.HookCalls`):
    the other plugins still run, a firstresult hook asks the next plugin, and
    the error is never dropped.
    """

    #: Reported by the caller with its results, naming the plugin: a ``PLUGIN_ERROR`` finding
    #: (``SAFETY_GUARD_FAILED`` for a guard), or as the caller says where it has no findings
    #: (``register_emulators`` lists them; a plugin's own hook as its caller decides); the command goes on.
    FINDING = "finding"
    #: Logged as a warning and audited as ``plugin.failed``, naming the plugin; the command goes on.
    LOG = "log"
    #: A :class:`~envfence.errors.ConfigurationError` naming the plugin; the command stops.
    CONFIGURATION = "configuration"


#: Each hook's failure policy, by hook name.
POLICIES: dict[str, OnError] = {}


def failure_policy(policy: OnError) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare what a plugin's exception in the decorated hookspec becomes.

    Every hookspec declares one, the core's here and a plugin's beside its own
    (see :func:`register_hookspecs`): a plugin whose hookspec has none fails to load.
    """

    def mark(spec: Callable[..., Any]) -> Callable[..., Any]:
        spec.envfence_policy = policy  # type: ignore[attr-defined]
        if spec.__module__ == __name__:
            POLICIES[spec.__name__] = policy
        return spec

    return mark


# --- Plugins -----------------------------------------------------------------


@failure_policy(OnError.CONFIGURATION)
@hookspec(historic=True)
def register_hookspecs(register: Callable[[Any], None]) -> None:
    """Declare the hooks your plugin offers to other plugins, as pytest's ``pytest_addhooks`` does.

    :param register: call it with a module or class holding your hookspecs,
        each decorated with ``envfence.hookspecs.hookspec`` and given a
        :func:`failure_policy`.

    Called once for each plugin, when it is registered. The hooks it declares
    belong to your plugin: when it is not loaded (``-p no:NAME``) they are
    not callable, and calling one is a clear error naming your plugin. Call
    them through a typed :class:`~envfence.hookcalls.OfferedHooks` subclass
    beside the hookspecs. A plugin that implements another plugin's hook marks
    the implementation ``optionalhook=True`` to stay loaded without it.
    A hookspec already declared, or one without a failure policy, makes
    the declaring plugin fail to load.
    """


# --- Discovery -------------------------------------------------------------


@failure_policy(OnError.FINDING)
@hookspec(firstresult=True)
def find_project_root(start: Path, environ: Mapping[str, str]) -> ProjectRoot | None:
    """Find the project's root directory.

    :param start: the directory to search from (the working directory, or
        ``--root`` when given).
    :param environ: the process environment.
    :returns: a :class:`~envfence.models.ProjectRoot` recording the path and
        the method that found it, or None to let the next plugin try.

    Stops at first non-None result. When no plugin answers, the core uses
    ``start`` with the method ``working directory``.
    """


@failure_policy(OnError.FINDING)
@hookspec(firstresult=True)
def classify_host(hostname: str, settings: ProjectSettings) -> HostInfo | None:
    """Decide the host's own class from its name.

    :param hostname: the host's name (``ENVFENCE_HOSTNAME`` when set, else
        the system's). When a stand-in name differs from the system's own,
        the hook is called once more with the system's name, and the guards
        apply both classes (``HostInfo.real``).
    :param settings: the project settings, with each environment's
        hostname patterns and the plugins' own tables (host enrollment).
    :returns: a :class:`~envfence.models.HostInfo`, or None.

    Stops at first non-None result. The class is kept on the session even
    when the environment was decided otherwise: the safety guards compare
    the intended environment with the host's class.
    """


@failure_policy(OnError.FINDING)
@hookspec(firstresult=True)
def detect_environment(
    settings: ProjectSettings, environ: Mapping[str, str], host: HostInfo
) -> Environment | None:
    """Decide which environment the process is in.

    Called only when no ``--env`` flag was given (the flag always wins).

    :param settings: the project settings (declared environments, aliases,
        the name of the environment variable).
    :param environ: the process environment.
    :param host: the host's class from :func:`classify_host`.
    :returns: an :class:`~envfence.models.Environment` naming a declared
        environment, with its method and evidence, or None.

    Stops at first non-None result. The built-ins answer in the order the
    design fixes: the ``ENVIRONMENT`` variable (``tryfirst``), then the
    hostname (``trylast``); when no plugin answers the core falls back to
    the default environment. Raise :class:`envfence.ConfigurationError` for
    a value that names no declared environment.
    """


# --- Configuration ---------------------------------------------------------


@failure_policy(OnError.FINDING)
@hookspec
def declare_settings(settings: ProjectSettings) -> list[SettingSpec] | None:
    """Declare the configuration settings a plugin knows.

    :param settings: the project settings.
    :returns: a list of :class:`~envfence.models.SettingSpec` (name, secret
        or not, credential or not, the environments that require it, a
        format, a default, a one-line doc).

    All results are collected. Declared secrets are masked everywhere;
    declared defaults form the lowest configuration layer.
    """


@failure_policy(OnError.FINDING)
@hookspec
def declare_tables() -> list[Table] | None:
    """Declare the plugin's own tables of envfence.toml (its keys, their kinds, defaults and meaning).

    :returns: a list of :class:`~envfence.settings_tables.Table`, each named
        after the top-level table it describes (``[backup]``); the plugin reads
        its values back with ``TABLE.read(settings)``.

    All results are collected. The declarations feed ``envfence check`` (a
    refused value is a ``SETTINGS_INVALID`` error, an unknown key a
    ``SETTINGS_UNKNOWN_KEY`` warning), ``envfence config schema`` and the docs'
    settings reference. A disabled plugin declares nothing.
    """


@failure_policy(OnError.FINDING)
@hookspec
def load_config(
    root: Path,
    environment: Environment,
    settings: ProjectSettings,
    environ: Mapping[str, str],
) -> list[ConfigLayer] | None:
    """Contribute configuration layers.

    :param root: the project root.
    :param environment: the decided environment.
    :param settings: the project settings.
    :param environ: the process environment.
    :returns: a list of :class:`~envfence.models.ConfigLayer`. A layer for a
        file that does not exist may be returned with ``exists=False``. An
        ``overlay`` layer (the process environment) only sets keys that a
        lower layer, a declared setting or a credential prefix makes known.

    All results are collected and merged by precedence (lowest first):
    defaults < ``.env`` < ``.env.<environment>`` < ``.env.local`` <
    ``.env.<environment>.local`` < process environment < runtime overrides.
    Problems that do not stop loading (a malformed line) travel on the
    layer's ``findings`` and join the session's report. Keys whose values a
    layer built from a secret's value (a ``${}`` reference) go in its
    ``secrets``: they are secret too. Raise :class:`envfence.ConfigurationError` when the configuration
    cannot be loaded at all (an unreadable file).
    """


@failure_policy(OnError.CONFIGURATION)
@hookspec(firstresult=True)
def decrypt_value(
    key: str, value: str, source: str, environment: Environment, settings: ProjectSettings, root: Path, environ: Mapping[str, str]
) -> str | None:
    """Decrypt a value stored encrypted at rest (one that starts with ``enc:``).

    Called only for keys this environment may read (plain keys and its own
    prefix); another environment's encrypted credential stays encrypted.

    :param key: the key, e.g. ``PROD_AIRTABLE_API_KEY``.
    :param value: the stored value, ``enc:<scheme>:<ciphertext>``.
    :param source: the layer it came from, for messages.
    :param environment: the decided environment (its key decrypts).
    :param settings: the project settings (the environment's prefix).
    :param root: the project root.
    :param environ: the process environment.
    :returns: the plain value, or None when the plugin does not know the scheme.

    Stops at first non-None result. Raise :class:`envfence.ConfigurationError`
    naming the key and the layer when the value cannot be decrypted. The
    decrypted value is always treated as a secret.
    """


@failure_policy(OnError.FINDING)
@hookspec
def validate(session: Session, live: bool) -> list[Finding] | None:
    """Check the session's configuration.

    :param session: the open session (environment, profile, config, settings).
    :param live: True when the user asked for live checks against the real
        services (``envfence check --live``); offline checks must not touch
        the network.
    :returns: a list of :class:`~envfence.models.Finding`.

    All results are collected into the session's report. An exception in
    one plugin becomes a ``PLUGIN_ERROR`` finding; the others still run.
    """


@failure_policy(OnError.FINDING)
@hookspec
def host_notes(session: Session) -> list[Finding] | None:
    """Say what a plugin knows about this host for this environment, for ``envfence detect``.

    :param session: the open session (its ``host`` and ``environment``).
    :returns: a list of :class:`~envfence.models.Finding` (``HOST_NOT_ENROLLED``
        and the line that enrolls the host), the same a plugin's ``validate``
        gives about the host.

    All results are collected. ``detect`` calls this hook alone, never the
    whole validation: a host plugin answers it, the others are not asked.
    """


# --- Isolation and logging -------------------------------------------------


@failure_policy(OnError.CONFIGURATION)
@hookspec(firstresult=True)
def environment_paths(session: Session) -> EnvPaths | None:
    """Compute the environment's directory tree, without creating anything.

    :param session: the open session.
    :returns: an :class:`~envfence.models.EnvPaths`, or None.

    Stops at first non-None result.
    """


@failure_policy(OnError.FINDING)
@hookspec
def prepare_environment(session: Session, paths: EnvPaths) -> list[Finding] | None:
    """Create and secure the environment's directories.

    :param session: the open session.
    :param paths: the tree from :func:`environment_paths`.
    :returns: findings about what could not be prepared, or None.

    All results are collected. Never called for a dry run.
    """


@failure_policy(OnError.CONFIGURATION)
@hookspec
def tree_refusals(session: Session, paths: EnvPaths) -> list[Finding] | None:
    """Say what makes the environment's tree unsafe to write into, as it stands on disk; create nothing.

    :param session: the open session.
    :param paths: the tree from :func:`environment_paths`.
    :returns: error findings, one per refusal (a link leading out of the tree or
        into another environment's, trees that overlap, a directory owned by
        someone else, a file where a directory belongs), or None. What
        :func:`prepare_environment` fixes (a mode) is no refusal.

    All results are collected. Asked before a whole tree is written at once
    (``envfence restore``), where preparing it first would write into it.
    """


@failure_policy(OnError.LOG)
@hookspec(firstresult=True)
def configure_logging(session: Session, embedded: bool) -> Any:
    """Install log sinks for the environment.

    :param session: the open session; its profile says verbose or terse.
    :param embedded: True when envfence runs as a library inside another
        tool; a strategy then adds no sink unless the embedding code asked.
    :returns: a value describing the strategy that was installed, or None.

    Stops at first non-None result, so a plugin replaces the built-in
    strategy by answering first (``tryfirst``).
    """


@failure_policy(OnError.LOG)
@hookspec(firstresult=True)
def fallback_log_file(session: Session) -> Path | None:
    """Give a prepared command-line run a log file when its logging strategy wrote none.

    Called by a run after ``configure_logging`` when the strategy that
    answered named no file (:attr:`Session.log_file` is None), so that an
    error id printed in production finds its detail. The core adds no log
    sink of its own.

    :param session: the prepared session.
    :returns: the log file now receiving the session's records, or None.

    Stops at first non-None result.
    """


# --- Commands and automations ----------------------------------------------


@failure_policy(OnError.LOG)
@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``envfence`` command line.

    :param cli: the top-level click group; call ``cli.add_command(...)``.
    """


@failure_policy(OnError.CONFIGURATION)
@hookspec
def register_automations(session: Session, register: Callable[[Automation], None]) -> None:
    """Make automations known.

    :param session: the open session.
    :param register: call it with each :class:`~envfence.models.Automation`.
    """


# --- Runs ------------------------------------------------------------------


@failure_policy(OnError.FINDING)
@hookspec
def pre_run_safety(session: Session, request: RunRequest) -> list[Finding] | None:
    """Decide whether a run may go ahead.

    :param session: the open session.
    :param request: the automation and the flags (dry run, force, reason).
    :returns: findings; any at error level blocks the run (exit 3) unless
        the request is forced. The remediation says how to fix the cause;
        how to override (``--force``, with ``--reason`` where strict) is said
        once by whoever reports the block, not by each guard.

    All results are collected. A plugin implementing this hook is a guard:
    disabling it blocks a run (``GUARD_DISABLED``) unless forced.
    """


@failure_policy(OnError.LOG)
@hookspec
def reap_abandoned_runs(session: Session) -> None:
    """Finish the records of runs whose process died, before a run takes its lock.

    Called for a real run once the environment's tree is prepared and before
    the automation's lock is taken, so that a run killed earlier (its lock free,
    its process gone) is marked abandoned, and audited ``run.abandoned``, before
    the next one starts. A history plugin does the same before it reads.

    :param session: the prepared session.
    """


@failure_policy(OnError.LOG)
@hookspec
def on_run_start(session: Session, request: RunRequest, run_id: str) -> None:
    """A run is starting (not called for a blocked run).

    :param session: the open session.
    :param request: the run request.
    :param run_id: the run's id.
    """


@failure_policy(OnError.LOG)
@hookspec
def on_run_finish(session: Session, request: RunRequest, outcome: RunOutcome) -> None:
    """A run has ended, whatever its status.

    :param session: the open session.
    :param request: the run request.
    :param outcome: the :class:`~envfence.models.RunOutcome`.
    """


@failure_policy(OnError.LOG)
@hookspec(firstresult=True)
def classify_error(error: BaseException, session: Session | None) -> str | None:
    """Classify a failure: ``configuration``, ``credential``, ``network``, ``data`` or ``bug``.

    :param error: the exception.
    :param session: the open session, or None when the failure kept it from opening.
    :returns: the class name, or None to let the next plugin try.

    Stops at first non-None result; unclassified failures are ``bug``.
    """


@failure_policy(OnError.LOG)
@hookspec
def on_error(session: Session | None, failure: Failure) -> None:
    """A failure happened: report it.

    :param session: the open session, or None when the failure stopped the
        session from opening.
    :param failure: the classified :class:`~envfence.models.Failure`; its
        message is already redacted.
    """


@failure_policy(OnError.CONFIGURATION)
@hookspec
def audit_event(session: Session, event: AuditEvent) -> None:
    """Record a decision worth a trail.

    :param session: the open session.
    :param event: the :class:`~envfence.models.AuditEvent`; its data never
        holds a secret value.

    Called as each event happens. A plugin that persists events writes
    only for a prepared session (``session.prepared``, see
    :meth:`envfence.Session.prepare`): before that it holds them in memory
    and writes them on the ``environment.prepared`` event, so a dry run or a
    read-only command leaves no record. Once prepared, an exception here
    stops the action.
    """


@failure_policy(OnError.LOG)
@hookspec(firstresult=True)
def run_history(session: Session, automation: str | None, limit: int, since: datetime | None) -> list[RunOutcome] | None:
    """Read the environment's run history, newest first.

    :param session: the open session; only its environment's runs are read.
    :param automation: only this automation's runs, or None for all.
    :param limit: at most this many runs.
    :param since: only runs started at or after this moment, or None for all
        (the analyses read a window; a plugin that ignores it is still right,
        as callers filter too, only slower).
    :returns: a list of :class:`~envfence.models.RunOutcome` (``metrics``
        holding ``host``, ``cpu_seconds``, ``peak_memory_kb``), or None when
        the plugin keeps no history.

    Stops at first non-None result, so a plugin that keeps history elsewhere
    replaces the built-in SQLite store by answering first (``tryfirst``).
    Used by ``envfence status`` and ``envfence list``.
    """


@failure_policy(OnError.LOG)
@hookspec(firstresult=True)
def run_totals(session: Session, since: datetime | None, buckets: tuple[float, ...]) -> RunTotals | None:
    """Sum the environment's run history up where it is kept, without reading it run by run.

    :param session: the open session; only its environment's runs count.
    :param since: only runs started at or after this moment, or None for all.
    :param buckets: duration bounds in seconds: each group counts its ended
        runs whose duration is at most each bound (a histogram's buckets).
    :returns: a :class:`~envfence.runs.totals.RunTotals`: runs per automation,
        UTC day and status (count, duration sum, bucket counts, latest start
        and finish), each business metric's newest value and sum, each step's
        newest time; or None when the plugin keeps no history, or cannot sum
        it (the caller then sums what ``run_history`` returns, with
        :func:`envfence.runs.totals.from_runs`).

    Stops at first non-None result. A plugin that answers ``run_history``
    first (``tryfirst``) must answer this one first too (at least with
    ``from_runs`` of its own runs), or the built-in SQLite history would sum
    the local runs instead. Used by ``envfence metrics``, ``report``,
    ``health`` and ``advise``.
    """


@failure_policy(OnError.FINDING)
@hookspec
def register_emulators() -> Mapping[str, type[FakeService]] | None:
    """Make fake services known to ``envfence emulate`` and ``envfence.testing.emulator``.

    Receives nothing. Import the fakes inside the implementation, so that
    loading the plugin stays light: the hook is called only when an emulator
    is listed or started.

    :returns: a mapping of emulator name (``airtable``) to a
        :class:`~envfence.testing.FakeService` subclass, built as
        ``cls(seed=True, port=0)``: ``seed`` starts it with demonstration
        data, ``port`` is the 127.0.0.1 port to bind (0: a free one).
        None when the plugin ships no emulator.

    Every plugin's answer is collected (not firstresult). When two plugins
    register the same name, the one called first (registered last) wins.
    """


@failure_policy(OnError.LOG)
@hookspec
def secret_shapes() -> list[SecretShape]:
    """Shapes of secret this plugin knows: masked wherever they appear, known to the session or not.

    :returns: a list of :class:`~envfence.redaction.SecretShape` (a regular
        expression and the kind of secret it finds, such as "Airtable personal
        access token"); a group named ``secret`` narrows what is masked.

    Every session's redactor masks the shapes of all plugins (a bearer token
    is always masked), and ``check`` reports a non-secret value that holds one
    (``SECRET_IN_VALUE``). Keep a shape specific (a fixed prefix, a length):
    anything it matches disappears from every output.
    """


# --- Operations --------------------------------------------------------------


@failure_policy(OnError.LOG)
@hookspec
def automation_state(session: Session, automation: Automation) -> Mapping[str, Any] | None:
    """Say something about an automation's state here, for ``envfence list`` and ``envfence health``.

    :param session: the open session.
    :param automation: the :class:`~envfence.models.Automation`.
    :returns: a mapping merged into the automation's ``state`` (for example
        ``{"paused": {"until": ..., "reason": ...}}``), or None.

    All results are collected; later keys win.
    """


# --- A shared store (several machines) ---------------------------------------


@failure_policy(OnError.CONFIGURATION)
@hookspec(firstresult=True)
def acquire_run_lock(session: Session, automation: str, wait: bool, echo: Callable[[str], None]) -> Any:
    """Provide the lock a run holds, instead of the environment's lock file.

    :param session: the open, prepared session.
    :param automation: the automation's name; the lock is per automation and environment.
    :param wait: wait for a running holder instead of refusing.
    :param echo: prints a line for the user: that the run waits, or that it
        runs under a lock weaker than the store's.
    :returns: a context manager held for the run (entering it raises
        :class:`envfence.runner.AlreadyRunning` when another run holds the
        lock and ``wait`` is false), or None to let the core take its file lock.

    Stops at first non-None result. Raise :class:`envfence.ConfigurationError`
    when the lock must come from a store that cannot be reached: the run is
    refused (exit 4); a plugin that fails otherwise stops the run too
    (a lock that cannot be decided is not taken).
    """
