"""The session: one environment's view of a project, built by the pipeline.

``Session.open`` runs discovery, detection, loading and validation through the
plugins and returns everything a command or an embedding tool needs: the root,
the environment and how it was decided, the host's class, the profile, the
merged configuration with provenance, and the report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import attrs

from .errors import ConfigurationError, EnvfenceError, SafetyError, UsageError
from .models import (
    PRECEDENCE,
    AuditEvent,
    ConfigEntry,
    ConfigLayer,
    Config,
    Environment,
    EnvPaths,
    Finding,
    HostInfo,
    ProjectRoot,
    Report,
    Secret,
    SettingSpec,
)
from .plugins import PluginError, PluginManager, default_manager
from .profiles import Profile, profile_for
from .settings import ProjectSettings, load_settings

#: Key endings that make a value secret without being declared.
SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def system_hostname() -> str:
    """The host's name as ``socket.gethostname()`` gives it.

    On POSIX that is the kernel's node name, read here without importing
    ``socket`` (2 ms of every command's start-up).
    """
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def plugin_finding(error: PluginError) -> Finding:
    """The finding that reports a plugin's exception (its message is redacted by callers)."""
    return Finding(
        code="PLUGIN_ERROR",
        severity="error",
        message=str(error),
        remediation=f"update or disable the plugin (envfence -p no:{error.plugin} ...)",
        plugin=error.plugin,
    )


@attrs.define
class Session:
    """An environment's view of a project. Build one with :meth:`open`."""

    root: ProjectRoot
    settings: ProjectSettings
    host: HostInfo
    environment: Environment
    profile: Profile
    config: Config
    plugins: PluginManager = attrs.field(repr=False)
    settings_specs: tuple[SettingSpec, ...] = ()
    #: Findings met while loading (malformed lines, unknown settings), before validation.
    load_findings: tuple[Finding, ...] = ()
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    _paths: EnvPaths | None = attrs.field(default=None, repr=False)
    #: The arguments ``open`` was called with, so that :meth:`reload` can repeat it.
    opened_with: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    #: True once :meth:`prepare` ran: the tree exists and audit trails may be written.
    prepared: bool = attrs.field(default=False, repr=False)
    #: What the ``configure_logging`` strategy installed, once :meth:`configure_logging` ran.
    logging: Any = attrs.field(default=None, repr=False)
    _pending_audit: list[AuditEvent] = attrs.field(factory=list, repr=False)
    #: A dry-run session writes nothing: its audit events stay in memory
    #: (:attr:`held_audit`) instead of reaching the ``audit_event`` plugins.
    dry_run: bool = False
    _report: Report | None = attrs.field(default=None, repr=False)
    _redactor: Any = attrs.field(default=None, repr=False)

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
    ) -> "Session":
        """Run the pipeline and return the session.

        :param start: where to search for the project root (default: the
            working directory).
        :param env: the intended environment (``--env``); a name or alias.
        :param overrides: runtime overrides (``--set KEY=VALUE``), the top layer.
        :param root: the project root, skipping discovery (``--root``).
        :param environ: the process environment (default ``os.environ``).
        :param hostname: the host's name (default ``ENVFENCE_HOSTNAME``, then
            the system's).
        :param plugins: a plugin manager (default: the entry-point plugins).
        :param disabled_plugins: plugin names to block (``-p no:NAME``).
        :param strict_plugins: a plugin that failed to load is an error
            (``--strict-plugins``; the ``strict_plugins`` setting does the same).
        :param dry_run: hold audit events in memory instead of recording them.
        :raises UsageError: ``env`` names no declared environment.
        :raises ConfigurationError: settings or configuration cannot be
            loaded, or a plugin failed to load in strict mode.
        """
        opened_with = dict(
            start=start, env=env, overrides=overrides, root=root, environ=environ, hostname=hostname,
            plugins=plugins, disabled_plugins=tuple(disabled_plugins), strict_plugins=strict_plugins, dry_run=dry_run,
        )
        environ = dict(os.environ if environ is None else environ)
        pm = plugins if plugins is not None else default_manager(disabled_plugins, environ)

        # Project root.
        if root is not None:
            project = ProjectRoot(Path(root).resolve(), "--root", str(root))
            if not project.path.is_dir():
                raise UsageError(f"--root {root}: not a directory", "give the project's directory")
        else:
            begin = Path(start or os.getcwd()).resolve()
            project = pm.call("find_project_root", start=begin, environ=environ) or ProjectRoot(
                begin, "working directory", str(begin)
            )
        settings = load_settings(project.path)
        if strict_plugins or settings.strict_plugins:
            pm.raise_if_failed("--strict-plugins" if strict_plugins else f"strict_plugins = true in {settings.source}")

        # The host's own class, then the intended environment.
        if hostname is not None:
            name, source = hostname, "hostname argument"
        elif environ.get("ENVFENCE_HOSTNAME"):
            name, source = environ["ENVFENCE_HOSTNAME"], "ENVFENCE_HOSTNAME"
        else:
            name, source = system_hostname(), "socket.gethostname()"
        host = pm.call("classify_host", hostname=name, settings=settings) or HostInfo(name)
        real_name = system_hostname() if source != "socket.gethostname()" else name
        real = None
        if real_name != name:
            # A stand-in name may only tighten: the guards also apply the system's own class.
            real = pm.call("classify_host", hostname=real_name, settings=settings) or HostInfo(real_name)
        host = attrs.evolve(host, source=source, real=real)

        if env is not None:
            resolved = settings.resolve(env)
            if resolved is None:
                from .settings import unknown_environment

                raise UsageError(unknown_environment(settings, env, "--env").message, "pass one of the declared names to --env")
            environment = Environment(resolved, "flag", f"--env {env}")
        else:
            environment = pm.call("detect_environment", settings=settings, environ=environ, host=host) or Environment(
                settings.default_environment, "default", "no variable or hostname decided"
            )
            if environment.name not in settings.environments:
                raise ConfigurationError(
                    f"a plugin detected environment {environment.name!r}, which is not declared in {settings.source}",
                    "declare it, or fix or disable the plugin",
                )
        spec = settings.environments[environment.name]
        profile = profile_for(spec.name, spec.based_on, spec.profile)

        # Configuration.
        findings: list[Finding] = []
        spec_results, errors = pm.call("declare_settings", settings=settings)
        specs = tuple(s for group in spec_results for s in group)
        findings += [plugin_finding(e) for e in errors]
        layer_results, errors = pm.call(
            "load_config", root=project.path, environment=environment, settings=settings, environ=environ
        )
        findings += [plugin_finding(e) for e in errors]
        layers = [layer for group in layer_results for layer in group]
        layers, decrypted = _decrypt_layers(pm, layers, environment, settings, project.path, environ)
        defaults = {s.name: s.default for s in specs if s.default is not None}
        layers.append(ConfigLayer("defaults", defaults, PRECEDENCE["defaults"]))
        if overrides:
            layers.append(ConfigLayer("runtime override", dict(overrides), PRECEDENCE["runtime override"]))
        config = merge_layers(layers, environment.name, settings, specs, extra_secrets=decrypted)
        for layer in config.layers:
            findings += layer.findings

        for name, why in pm.missing(settings.required_plugins):
            findings.append(
                Finding(
                    code="PLUGIN_REQUIRED_MISSING",
                    severity="error",
                    message=f"required plugin {name!r} is not loaded ({why})",
                    remediation=f"install the distribution that provides it (usually envfence-{name}), enable it, or remove it from required_plugins",
                    key="required_plugins",
                    plugin=name,
                    file=str(settings.path) if settings.path else None,
                )
            )
        unknown = settings.unknown_keys(pm.names())
        for key, guess in unknown:
            findings.append(
                Finding(
                    code="SETTINGS_UNKNOWN_KEY",
                    severity="warning",
                    message=f"{settings.source}: unknown key {key!r}",
                    remediation=f"did you mean {guess!r}?" if guess else "remove it, or install the plugin that reads it",
                    key=key,
                    file=str(settings.path) if settings.path else None,
                )
            )

        session = cls(
            root=project,
            settings=settings,
            host=host,
            environment=environment,
            profile=profile,
            config=config,
            plugins=pm,
            settings_specs=specs,
            environ=environ,
            opened_with=opened_with,
            dry_run=dry_run,
        )
        # A plugin's exception text may quote a value: mask before anyone sees it.
        session.load_findings = session.redact_findings(findings)
        session.audit(
            "environment.detected",
            method=environment.method,
            evidence=environment.evidence,
            host=host.hostname,
            # ENVFENCE_HOSTNAME stands in for the real name (containers,
            # tests); the trail shows when it did, so it cannot hide a host.
            host_source=host.source,
            real_host=system_hostname(),
            host_class=host.environment,
            at=environment.decided_at.isoformat(),
        )
        session.audit(
            "config.loaded",
            layers=[
                {"source": layer.source, "precedence": layer.precedence, "sha256": layer.digest or None}
                for layer in config.layers
                if layer.exists
            ],
            keys=len(config),
        )
        return session

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
                self.audit(
                    "validation.failed",
                    findings=[{"code": f.code, "key": f.key, "plugin": f.plugin} for f in self._report.errors],
                )
        return self._report

    # --- using ---------------------------------------------------------------

    def changed_layers(self) -> list[str]:
        """The file layers that changed on disk since the session was opened.

        A file that appeared, disappeared or whose bytes differ counts; the
        comparison is by content digest, so touching a file is no change.
        """
        import hashlib

        changed = []
        for layer in self.config.layers:
            if layer.path is None:
                continue
            try:
                digest = hashlib.sha256(layer.path.read_bytes()).hexdigest()
            except FileNotFoundError:
                digest = None
            except OSError:
                digest = "unreadable"
            if (digest is None) != (not layer.exists) or (digest is not None and digest != layer.digest):
                changed.append(layer.source)
        return changed

    def reload(self) -> "Session":
        """Open a new session with the same arguments (the process environment is read again)."""
        return type(self).open(**self.opened_with)

    def validate(self, live: bool = False) -> list[Finding]:
        """Run the ``validate`` hook and return its findings (not stored)."""
        return list(self._findings("validate", live=live))

    def _findings(self, hook: str, **kwargs: Any) -> list[Finding]:
        results, errors = self.plugins.call(hook, session=self, **kwargs)
        return self.redact_findings([f for group in results for f in group] + [plugin_finding(e) for e in errors])

    def redact_findings(self, findings: Iterable[Finding]) -> tuple[Finding, ...]:
        """``findings`` with secrets masked in message, remediation and key.

        Every finding the session hands out passes here, so a plugin that
        quotes a value by mistake cannot put it on a screen or in a record.
        """
        findings = tuple(findings)
        if not findings:
            return findings
        redact = self.redactor()
        return tuple(
            attrs.evolve(f, message=redact(f.message), remediation=redact(f.remediation or ""), key=redact(f.key) if f.key else f.key)
            for f in findings
        )

    def prepare(self) -> list[Finding]:
        """Create and secure the environment's tree; from then on audit trails are written.

        Call it before the session writes anything: a real run, ``envfence
        init``, a cleanup. Never call it for a dry run or a read-only
        command: until it runs nothing touches the disk, and a plugin that
        persists audit events holds them in memory (see ``audit_event``).
        Ends with an ``environment.prepared`` event. Calling it twice is harmless.

        :returns: the ``prepare_environment`` findings (what was created or fixed).
        :raises SafetyError: the tree cannot be used safely (a symlink leading
            elsewhere, another owner, an overlap with another environment's tree).
        """
        if self.prepared:
            return []
        paths = self.paths
        if paths is None:
            raise ConfigurationError(
                "no plugin computes the environment's directories", "enable the directories plugin (drop -p no:directories)"
            )
        findings = self._findings("prepare_environment", paths=paths)
        refused = [f for f in findings if f.severity == "error"]
        if refused:
            raise SafetyError("; ".join(f.message for f in refused), refused[0].remediation)
        self.prepared = True
        self.audit("environment.prepared", base=str(paths.base), changes=[f.key for f in findings])
        return findings

    def configure_logging(self, embedded: bool = True) -> Any:
        """Install this environment's log sinks through the ``configure_logging`` hook.

        :param embedded: True (library use) adds no sink; the command line
            passes False. File sinks are added only once the session is
            prepared, so a dry run writes no log file.
        :returns: what the strategy installed (also kept as :attr:`logging`).
        """
        self.logging = self.plugins.call("configure_logging", session=self, embedded=embedded)
        return self.logging

    def logger(self, **context: Any) -> Any:
        """A loguru logger bound to this environment and ``context`` (``automation="sync"``).

        Its records are redacted (this session's secrets and token shapes,
        in the message, the extra fields and the exception) before any sink
        sees them. When no strategy was configured yet, the embedded one is:
        envfence adds no sink of its own.
        """
        from loguru import logger

        from .redaction import record_patcher

        if self.logging is None:
            self.configure_logging(embedded=True)
        patcher = record_patcher(self.redactor(), detailed=self.profile.tracebacks)
        return logger.patch(patcher).bind(environment=self.environment.name, **context)

    def credential(self, name: str, by: str = "envfence") -> Any:
        """Read credential ``name`` through this environment's prefix, audited.

        :param name: the plain name (``AIRTABLE_API_KEY``).
        :param by: who reads it (a plugin or automation name), for the audit trail.
        :returns: the :class:`Secret` (or plain value), or None when unset.
        """
        key = self.config.credential_key(name)
        self.audit("credential.accessed", name=name, key=key, by=by, found=key is not None)
        return None if key is None else self.config[key]

    def secret_values(self) -> list[str]:
        """Every secret value of this session and of its process environment, for redaction.

        Never print what this returns.
        """
        from .redaction import environ_secrets

        declared = set(self.settings.secrets) | {s.name for s in self.settings_specs if s.secret}
        values = [e.value.reveal() for e in self.config.entries.values() if isinstance(e.value, Secret)]
        return values + environ_secrets(self.environ, declared)

    def redactor(self):
        """The :class:`~envfence.redaction.Redactor` for this session's secrets (built once)."""
        if self._redactor is None:
            from .redaction import Redactor, plugin_shapes

            self._redactor = Redactor(self.secret_values(), shapes=plugin_shapes(self.plugins))
        return self._redactor

    @property
    def paths(self) -> EnvPaths | None:
        """The environment's directory tree, from the ``environment_paths`` hook (not created)."""
        if self._paths is None:
            self._paths = self.plugins.call("environment_paths", session=self)
        return self._paths

    def audit(self, event: str, **data: Any) -> None:
        """Emit an audit event to every ``audit_event`` plugin. ``data`` must hold no secret.

        :raises EnvfenceError: once the session is prepared, a plugin could not
            record it: an action whose trail cannot be kept does not go ahead.
        """
        record = AuditEvent(event=event, environment=self.environment.name, data=self.redactor().data(data))
        if self.dry_run:
            self._pending_audit.append(record)
            return
        _, errors = self.plugins.call("audit_event", session=self, event=record)
        if errors and self.prepared:
            raise EnvfenceError(
                self.redactor(f"the audit trail could not record {record.event}: {errors[0]}"),
                "check the environment's tree and its permissions (envfence check)",
            )

    @property
    def held_audit(self) -> tuple[AuditEvent, ...]:
        """The audit events a dry-run session held back instead of recording."""
        return tuple(self._pending_audit)


#: Values that start with this are encrypted at rest (see the ``decrypt_value`` hook).
ENCRYPTED_PREFIX = "enc:"


def _decrypt_layers(pm, layers, environment, settings, root, environ):
    """Decrypt the encrypted values this environment may read; return the layers and those keys.

    Another environment's prefixed values are left encrypted: this
    environment's key cannot, and must not, open them.
    """
    own = f"{settings.environments[environment.name].prefix}_"
    others = tuple(f"{spec.prefix}_" for spec in settings.environments.values() if f"{spec.prefix}_" != own)
    decrypted: set[str] = set()
    result = []
    for layer in layers:
        encrypted = [
            k for k, v in layer.values.items()
            if isinstance(v, str) and v.startswith(ENCRYPTED_PREFIX)
        ]
        if not encrypted:
            result.append(layer)
            continue
        values = dict(layer.values)
        for key in encrypted:
            decrypted.add(key)  # secret whether it is opened here or not
            if key.startswith(others):
                continue
            plain = pm.call(
                "decrypt_value", key=key, value=values[key], source=layer.source,
                environment=environment, settings=settings, root=root, environ=environ,
            )
            if plain is None:
                # Name the scheme only when the value has one: ``enc:`` may prefix a plain secret.
                scheme = re.match(r"enc:([a-z0-9]+):", values[key])
                raise ConfigurationError(
                    f"{layer.source}: {key} is encrypted ({scheme.group(1) if scheme else 'no scheme named'}) and no plugin can decrypt it",
                    "install envfence's encryption support (pip install 'envfence[encryption]') or the plugin for that scheme",
                )
            values[key] = plain
        result.append(attrs.evolve(layer, values=values))
    return result, decrypted


def is_secret_key(plain: str, declared: frozenset[str] | set[str]) -> bool:
    """True when a key (without its environment prefix) names a secret."""
    return plain in declared or plain.upper().endswith(SECRET_SUFFIXES)


def merge_layers(
    layers: Iterable[ConfigLayer],
    environment: str,
    settings: ProjectSettings,
    specs: Iterable[SettingSpec] = (),
    extra_secrets: Iterable[str] = (),
) -> Config:
    """Merge layers by precedence into a :class:`Config` with provenance.

    Layers are applied lowest precedence first; a key keeps the layer that set
    it last and the (layer, value) pairs it replaced. An overlay layer only
    sets keys that are already known. Secret values are wrapped in
    :class:`Secret`.
    """
    specs = list(specs)
    ordered = sorted(layers, key=lambda layer: layer.precedence)
    declared_secrets = set(settings.secrets) | {s.name for s in specs if s.secret} | set(extra_secrets)
    prefixes = {f"{spec.prefix}_": spec.name for spec in settings.environments.values()}
    known = {s.name for s in specs}

    def prefix_of(key: str) -> tuple[str | None, str]:
        head, sep, _ = key.partition("_")
        if sep:
            env = prefixes.get(head + "_")
            if env is not None:
                return env, key[len(head) + 1 :]
        return None, key

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    history: dict[str, list[tuple[str, str]]] = {}
    for layer in ordered:
        source = layer.source
        for key, value in layer.values.items():
            if value is None:
                continue
            if key in values:
                history.setdefault(key, []).append((sources[key], values[key]))
            elif layer.overlay and key not in known and prefix_of(key)[0] is None:
                continue
            values[key] = value
            sources[key] = source

    entries: dict[str, ConfigEntry] = {}
    for key, value in values.items():
        env, plain = prefix_of(key)
        secret = is_secret_key(plain, declared_secrets) or key in declared_secrets
        wrap = Secret if secret else str
        overridden = tuple((src, wrap(old)) for src, old in history.get(key, ()))
        entries[key] = ConfigEntry(key, wrap(value), sources[key], overridden, env)
    spec = settings.environments[environment]
    return Config(environment=environment, prefix=spec.prefix, entries=entries, layers=tuple(ordered))


# --- the process-wide session ----------------------------------------------------

_current: Session | None = None


def session(reload_if_changed: bool = False, **kwargs: Any) -> Session:
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


def open_session(*args: Any, **kwargs: Any) -> Session:
    """Open a fresh session; the arguments are those of :meth:`Session.open`."""
    return Session.open(*args, **kwargs)
