"""The session: one environment's view of a project, built by the pipeline.

``Session.open`` runs the named steps of :mod:`envfence.opening` (root,
settings, host, environment, profile, layers, config, report) through the
plugins and returns everything a command or an embedding tool needs. The
session owns, one each: the :class:`~envfence.audit.AuditLog`, the redactor
(built once from its secrets), the :class:`~envfence.stash.Stash` for plugin
state, the automations (collected once) and the views of other environments
(:meth:`Session.config_for`).
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, TypedDict, TypeVar, Unpack

from . import slotted
from .audit import AuditLog
from .errors import ConfigurationError, SafetyError
from .hookcalls import HookResult, PluginError
from .boundary import redact_findings, secret_values
from .layers import SECRET_SUFFIXES, changed_layers, is_secret_key, merge_layers  # noqa: F401  (imported from here by callers)
from .models import Automation, Config, ConfigValue, EnvPaths, SettingValue, Finding, HostInfo, ProjectRoot, Report, Secret, SettingSpec, Environment
from .opening import OpenArguments, audit_opened, build, files_config, open_session_of, reopen_arguments, system_hostname  # noqa: F401
from .plugins import PluginManager, default_manager
from .profiles import Profile
from .settings import ProjectSettings
from .stash import Stash

if TYPE_CHECKING:  # pragma: no cover
    from .redaction import Redactor
    from .session_logging import Logger

T = TypeVar("T")


@slotted.define
class Session:
    """An environment's view of a project. Build one with :meth:`open`."""

    root: ProjectRoot
    settings: ProjectSettings
    host: HostInfo
    environment: Environment
    profile: Profile
    config: Config
    plugins: PluginManager = slotted.field(repr=False)
    settings_specs: tuple[SettingSpec, ...] = ()
    #: Findings met while loading (malformed lines, unknown settings, plugin errors), before validation.
    load_findings: tuple[Finding, ...] = ()
    environ: Mapping[str, str] = slotted.field(factory=dict, repr=False)
    #: The arguments ``open`` was called with, so that :meth:`reload` can repeat it.
    opened_with: OpenArguments = slotted.field(factory=OpenArguments, repr=False)
    #: True once :meth:`prepare` ran: the tree exists and audit trails may be written.
    prepared: bool = slotted.field(default=False, repr=False)
    #: What the ``configure_logging`` strategy installed, once :meth:`configure_logging` ran.
    logging: Any = slotted.field(default=None, repr=False)
    #: A dry-run session writes nothing: its audit events stay held in :attr:`audit_log`.
    dry_run: bool = False
    #: Plugin state for the length of this session, under typed keys.
    stash: Stash = slotted.field(factory=Stash, repr=False)
    #: The log file a run's records go to, as the logging strategy (or the logging plugin's fallback file) reports it.
    log_file: Path | None = slotted.field(default=None, repr=False)
    audit_log: AuditLog = slotted.field(init=False, repr=False)
    _paths: EnvPaths | None = slotted.field(default=None, repr=False)
    _report: Report | None = slotted.field(default=None, repr=False)
    _redactor: "Redactor | None" = slotted.field(default=None, repr=False)
    _automations: dict[str, Automation] | None = slotted.field(default=None, repr=False)
    _other_configs: dict[str, Config] = slotted.field(factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.audit_log = AuditLog(self, dry_run=self.dry_run)

    # --- building ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        start: str | Path | None = None,
        env: str | None = None,
        overrides: Mapping[str, str] | None = None,
        *,
        root: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        hostname: str | None = None,
        plugins: PluginManager | None = None,
        disabled_plugins: Iterable[str] = (),
        strict_plugins: bool = False,
        dry_run: bool = False,
        env_must_agree: bool = False,
    ) -> "Session":
        """Run the steps of :mod:`envfence.opening` and return the session.

        :param start: where to search for the project root (default: the working directory).
        :param env: the intended environment (``--env``); a name or alias.
        :param overrides: runtime overrides (``--set KEY=VALUE``), the top layer.
        :param root: the project root, skipping discovery (``--root``).
        :param environ: the process environment (default ``os.environ``).
        :param hostname: the host's name (default ``ENVFENCE_HOSTNAME``, then the system's).
        :param plugins: a plugin manager (default: the entry-point plugins).
        :param disabled_plugins: plugin names to block (``-p no:NAME``).
        :param strict_plugins: a plugin that failed to load is an error (``--strict-plugins``).
        :param dry_run: hold audit events in memory instead of recording them.
        :param env_must_agree: ``env`` is the command line's ``--env``: an
            ``ENVIRONMENT`` variable naming another environment is a usage error.
        :raises UsageError: ``env`` names no declared environment, or disagrees
            with the variable under ``env_must_agree``.
        :raises ConfigurationError: settings or configuration cannot be
            loaded, or a plugin failed to load in strict mode.
        """
        args = OpenArguments(
            start, env, overrides, root, environ, hostname, plugins, tuple(disabled_plugins), strict_plugins, dry_run, env_must_agree
        )
        return open_session_of(cls, args)

    @property
    def report(self) -> Report:
        """The loading findings and the offline ``validate`` findings, in that order.

        Validation runs the first time the report is read, not when the session
        opens: a command that shows no findings (``detect``, ``config show``)
        does not pay for it. A report with errors is audited as ``validation.failed``.
        """
        if self._report is None:
            self._report = Report(self.load_findings).extend(self.validate(live=False))
            if self._report.errors:
                failed = [{"code": f.code, "key": f.key, "plugin": f.plugin} for f in self._report.errors]
                self.audit("validation.failed", findings=failed)
        return self._report

    # --- using ---------------------------------------------------------------

    def changed_layers(self) -> list[str]:
        """The file layers that changed on disk since the session was opened (see :func:`~envfence.layers.changed_layers`)."""
        return changed_layers(self.config)

    def config_for(self, environment: str) -> Config:
        """Environment ``environment``'s configuration as its files and declared defaults give it.

        For checks across environments: plugins never call hooks to see one.
        This process's environment and overrides are left out, encrypted values
        stay encrypted; built once each (this environment's own is :attr:`config`).

        :raises ConfigurationError: a plugin failed to load that environment's files.
        """
        if environment == self.environment.name:
            return self.config
        if environment not in self._other_configs:
            self._other_configs[environment] = files_config(self, environment)
        return self._other_configs[environment]

    def reload(self) -> "Session":
        """Open a new session with the same arguments (the process environment is read again)."""
        return type(self).open(**reopen_arguments(self.opened_with))

    def config_read(self, command: str, keys: Iterable[str], defer: bool = False) -> None:
        """Record ``config.read`` (who showed which ``keys`` with ``command``; a read creates no tree), ``defer``: with the next event."""
        from .runs.record import current_user
        (self.audit_log.defer if defer else self.audit_log.emit)("config.read", {"command": command, "keys": sorted(set(keys)), "by": current_user()})

    def validate(self, live: bool = False) -> list[Finding]:
        """Run the ``validate`` hook and return its findings (not stored), with ``LAYER_VALUE_INVALID``
        warnings for values a higher layer overrides (:mod:`envfence.layer_checks`), and the settings
        tables' findings (:func:`envfence.settings_tables.session_findings`)."""
        from .layer_checks import shadowed_findings
        from .settings_tables import session_findings

        found = self._validated(live)
        return found + session_findings(self) + shadowed_findings(self, found)

    def _validated(self, live: bool) -> list[Finding]:
        """The ``validate`` hook's findings for this session's own configuration, redacted."""
        return self._findings(self.plugins.validate(session=self, live=live))

    def _findings(self, result: HookResult[list[Finding]]) -> list[Finding]:
        """A findings hook's answers and its plugins' failures, redacted."""
        return list(self.redact_findings(result.flat() + result.findings()))

    def redact_findings(self, findings: Iterable[Finding]) -> tuple[Finding, ...]:
        """``findings`` with secrets masked in message, remediation and key (every finding handed out passes here once)."""
        findings = tuple(findings)  # none, no redactor built: it is a large part of a small project's opening
        return redact_findings(self.redactor(), findings) if findings else ()

    def prepare(self, defer_event: bool = False) -> list[Finding]:
        """Create and secure the environment's tree; from then on audit trails are written.

        Call it before the session writes anything (a run, ``envfence init``), never for a dry run or a
        read-only command: until then nothing touches the disk and :attr:`audit_log` holds the events.
        Ends with an ``environment.prepared`` event (``defer_event``: sent with the next one, a run's
        ``run.started``, or by ``audit_log.flush()``); calling it twice is harmless.

        :returns: the ``prepare_environment`` findings (what was created or fixed).
        :raises SafetyError: the tree cannot be used safely (a symlink leading
            elsewhere, another owner, an overlap with another environment's tree).
        """
        from .tree import prepare

        return prepare(self, defer_event)

    def configure_logging(self, embedded: bool = True) -> Any:
        """Install this environment's log sinks through the ``configure_logging`` hook.

        :param embedded: True (library use) adds no sink; the command line
            passes False. File sinks are added only once the session is
            prepared, so a dry run writes no log file.
        :returns: what the strategy installed (also kept as :attr:`logging`).
        """
        from .session_logging import configure

        return configure(self, embedded)

    def logger(self, **context: Any) -> "Logger":
        """A loguru logger bound to this environment and ``context`` (``automation="sync"``).

        Each record is redacted once (message, extra fields, exception) before
        any sink sees it: by the strategy's process-wide patcher when it has one
        (``redacts``), else by this logger's own. Without a strategy yet, the
        embedded one is installed: envfence adds no sink of its own.
        """
        from .session_logging import bound_logger

        return bound_logger(self, context)

    def credential(self, name: str, by: str = "envfence") -> ConfigValue | None:
        """Credential ``name`` (its plain name) read through this environment's prefix, or None; audited ``by`` the reader."""
        key = self.config.credential_key(name)
        self.audit("credential.accessed", name=name, key=key, by=by, found=key is not None)
        return None if key is None else self.config[key]

    def setting(self, name: str, default: T | None = None) -> SettingValue | T | None:
        """Declared setting ``name`` in this environment, converted to its declared type.

        ``session.setting("WEBHOOK_PORT")`` is an ``int`` for a ``port``; a
        ``path`` is a :class:`~pathlib.Path`, a ``bool`` a bool (true/yes/on/1).
        A credential is read through the environment's prefix; a secret stays
        a :class:`~envfence.models.Secret`. ``default`` when it is not set.

        :raises ConfigurationError: the value is not of the declared type
            (``envfence check`` reports it as ``SETTING_TYPE``).
        """
        from .setting_types import read_setting

        return read_setting(self, name, default)

    def secret_values(self) -> list[str]:
        """Every secret value of this session and of its process environment, for redaction: never print it."""
        return secret_values(self.settings, self.settings_specs, self.config, self.environ)

    def redactor(self) -> "Redactor":
        """The one :class:`~envfence.redaction.Redactor` for this session: its secrets and every plugin's shapes (built once)."""
        if self._redactor is None:
            self._redactor = _build_redactor(self.secret_values(), self.plugins)
        return self._redactor

    @property
    def paths(self) -> EnvPaths | None:
        """The environment's directory tree, from the ``environment_paths`` hook (not created)."""
        if self._paths is None:
            self._paths = self.plugins.environment_paths(session=self).first
        return self._paths

    def audit(self, event: str, **data: Any) -> None:
        """Record an audit event through :attr:`audit_log`. ``data`` must hold no secret.

        :raises EnvfenceError: once the session is prepared, a plugin could not
            record it: an action whose trail cannot be kept does not go ahead.
        """
        self.audit_log.emit(event, data)

    def plugin_failed(self, error: PluginError) -> None:
        """Log and audit a plugin's exception in a hook whose failure policy is ``LOG``."""
        # Redacted once each, where it leaves: by the audit log and by the logger.
        self.audit("plugin.failed", plugin=error.plugin, hook=error.hook, error=str(error))
        if error.hook != "configure_logging" and self.logging is not None:
            self.logger(plugin=error.plugin).warning(str(error))

    @property
    def automations(self) -> dict[str, Automation]:
        """Every automation the plugins register, by name; collected once per session.

        :raises ConfigurationError: a plugin failed to register, or a name is registered twice.
        """
        if self._automations is None:
            from .automations import collect

            self._automations = collect(self)
        return self._automations


# --- the process-wide session ----------------------------------------------------

_current: Session | None = None


class SessionOptions(TypedDict, total=False):
    """The keyword arguments :func:`session` passes to :meth:`Session.open` (see there)."""

    start: str | Path | None
    env: str | None
    overrides: Mapping[str, str] | None
    root: str | Path | None
    environ: Mapping[str, str] | None
    hostname: str | None
    plugins: PluginManager | None
    disabled_plugins: Iterable[str]
    strict_plugins: bool
    dry_run: bool
    env_must_agree: bool


def session(reload_if_changed: bool = False, **kwargs: Unpack[SessionOptions]) -> Session:
    """The process-wide session, opened on first use (the configuration wrapper).

    Later calls return the same object whatever their arguments; call
    :func:`reset_session` to open a new one. With ``reload_if_changed=True``,
    a long-running process picks up edited ``.env`` files: the session is
    reopened when a layer file changed on disk, and the reload is audited.
    """
    global _current
    if _current is None:
        _current = Session.open(**kwargs)
    elif reload_if_changed:
        changed = _current.changed_layers()
        if changed:
            _current = _current.reload()
            _current.audit("config.reloaded", changed=changed)
    return _current


def reset_session() -> None:
    """Forget the process-wide session (for tests, or after a configuration change)."""
    global _current
    _current = None


#: Open a fresh session: :meth:`Session.open` itself, so that its signature is the one type checkers see.
open_session = Session.open


#: Set while the plugins' secret shapes are being collected: a plugin that
#: fails in ``secret_shapes`` is reported through a redactor, which must not
#: ask for the shapes again.
_COLLECTING_SHAPES: "contextvars.ContextVar[bool]" = contextvars.ContextVar("envfence_collecting_shapes", default=False)


def _build_redactor(secrets: list[str], plugins: Any) -> "Redactor":
    """The only place a :class:`~envfence.redaction.Redactor` is built: ``secrets`` and the plugins' shapes."""
    from .redaction import Redactor, plugin_shapes

    shapes: list[Any] = []
    if plugins is not None and not _COLLECTING_SHAPES.get():
        token = _COLLECTING_SHAPES.set(True)
        try:
            shapes = plugin_shapes(plugins)
        finally:
            _COLLECTING_SHAPES.reset(token)
    return Redactor(secrets, shapes=shapes)


def unopened_redactor(plugins: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    """The redactor where no session is open (it failed to open, or none was asked for).

    It masks the process environment's secret-named values (or ``environ``'s)
    and, with ``plugins``, every plugin's secret shapes, as
    :meth:`Session.redactor` does: a plugin that fails before a session
    exists is reported without the secrets it may hold.
    """
    from .redaction import environ_secrets

    return _build_redactor(environ_secrets(os.environ if environ is None else environ), plugins)
