"""Opening a session: the named steps that build it, in order.

:func:`build` runs :data:`STEPS` on an :class:`Opening`; each step reads what
earlier steps decided and fills in its own part:

====================  ==========================================================
``root``              where the project lives (``--root``, else ``find_project_root``)
``settings``          its ``envfence.toml``; ``--strict-plugins`` checked
``host``              the host's class (``classify_host``)
``environment``       the intended environment (``--env``, else ``detect_environment``)
``profile``           the environment's safety profile
``layers``            declared settings, then the configuration layers (``load_config``), decrypted
``config``            the layers merged with defaults and overrides (one naming of credentials)
``report``            what the plugins' own state says: required plugins, unknown settings keys
====================  ==========================================================

A hook's exception becomes a finding naming the plugin (its policy is
``FINDING``), kept with the other loading findings in :attr:`Opening.findings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import slotted
from .errors import ConfigurationError, UsageError
from .layers import decrypt_layers, merge_layers
from .models import PRECEDENCE, Config, ConfigLayer, Environment, Finding, HostInfo, ProjectRoot, SettingSpec
from .plugins import PluginManager
from .profiles import Profile, profile_for
from .settings import ProjectSettings, load_settings


def system_hostname() -> str:
    """The host's name as ``socket.gethostname()`` gives it.

    On POSIX that is the kernel's node name, read here without importing
    ``socket`` (2 ms of every command's start-up).
    """
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


@slotted.frozen
class OpenArguments:
    """What :meth:`envfence.Session.open` was called with, so that a reload repeats it."""

    start: str | Path | None = None
    env: str | None = None
    overrides: Mapping[str, str] | None = None
    root: str | Path | None = None
    environ: Mapping[str, str] | None = None
    hostname: str | None = None
    plugins: PluginManager | None = None
    disabled_plugins: tuple[str, ...] = ()
    strict_plugins: bool = False
    dry_run: bool = False
    #: ``env`` came from ``--env``: the environment variable may not name another environment.
    env_must_agree: bool = False


@slotted.define
class Opening:
    """A session being built: the arguments, and what each step has decided so far."""

    args: OpenArguments
    pm: PluginManager
    environ: dict[str, str]
    root: ProjectRoot | None = None
    settings: ProjectSettings | None = None
    host: HostInfo | None = None
    environment: Environment | None = None
    profile: Profile | None = None
    specs: tuple[SettingSpec, ...] = ()
    layers: list[ConfigLayer] = slotted.field(factory=list)
    decrypted: set[str] = slotted.field(factory=set)
    config: Config | None = None
    findings: list[Finding] = slotted.field(factory=list)


def find_root(o: Opening) -> None:
    """``--root`` as given, else the first ``find_project_root`` answer, else the working directory."""
    if o.args.root is not None:
        o.root = ProjectRoot(Path(o.args.root).resolve(), "--root", str(o.args.root))
        if not o.root.path.is_dir():
            raise UsageError(f"--root {o.args.root}: not a directory", "give the project's directory")
        return
    begin = Path(o.args.start or os.getcwd()).resolve()
    found = o.pm.find_project_root(start=begin, environ=o.environ)
    o.findings += found.findings()
    o.root = found.first or ProjectRoot(begin, "working directory", str(begin))


def read_settings(o: Opening) -> None:
    """The project's settings; a plugin that failed to load is an error in strict mode."""
    assert o.root is not None
    o.settings = load_settings(o.root.path)
    if o.args.strict_plugins or o.settings.strict_plugins:
        o.pm.raise_if_failed("--strict-plugins" if o.args.strict_plugins else f"strict_plugins = true in {o.settings.source}")


def classify_host(o: Opening) -> None:
    """The host's own class, from the ``hostname`` argument, ``ENVFENCE_HOSTNAME`` or the system."""
    # A blank stand-in is no name at all: it must not pass for an unclassified host.
    if (o.args.hostname or "").strip():
        name, source = o.args.hostname.strip(), "hostname argument"
    elif o.environ.get("ENVFENCE_HOSTNAME", "").strip():
        name, source = o.environ["ENVFENCE_HOSTNAME"].strip(), "ENVFENCE_HOSTNAME"
    else:
        name, source = system_hostname(), "socket.gethostname()"
    classified = o.pm.classify_host(hostname=name, settings=o.settings)
    o.findings += classified.findings()
    real_name = system_hostname() if source != "socket.gethostname()" else name
    real = None
    if real_name != name:
        # A stand-in name may only tighten: the guards also apply the system's own class.
        mine = o.pm.classify_host(hostname=real_name, settings=o.settings)
        o.findings += mine.findings()
        real = mine.first or HostInfo(real_name, classified=False)
    o.host = slotted.evolve(classified.first or HostInfo(name, classified=False), source=source, real=real)


def decide_environment(o: Opening) -> None:
    """``--env`` when given, else the first ``detect_environment`` answer, else the default environment."""
    settings = o.settings
    assert settings is not None
    if o.args.env is not None:
        resolved = settings.resolve(o.args.env)
        if resolved is None:
            from .settings import unknown_environment

            message = unknown_environment(settings, o.args.env, "--env").message
            raise UsageError(message, "pass one of the declared names to --env")
        o.environment = Environment(resolved, "flag", f"--env {o.args.env}")
        if o.args.env_must_agree:
            _agree_with_variable(settings, o.args.env, resolved, o.environ)
        return
    detected = o.pm.detect_environment(settings=settings, environ=o.environ, host=o.host)
    o.findings += detected.findings()
    o.environment = detected.first or Environment(settings.default_environment, "default", "no variable or hostname decided")
    if o.environment.name not in settings.environments:
        raise ConfigurationError(
            f"a plugin detected environment {o.environment.name!r}, which is not declared in {settings.source}",
            "declare it, or fix or disable the plugin",
        )


def _agree_with_variable(settings: ProjectSettings, flag: str, resolved: str, environ: Mapping[str, str]) -> None:
    """Two explicit sources naming different environments: a usage error naming both, never a silent choice."""
    variable = settings.environment_variable
    value = environ.get(variable, "").strip()
    if value and settings.resolve(value) != resolved:
        named = settings.resolve(value)
        says = f"names {named}" if named else "names no declared environment"
        raise UsageError(
            f"--env {flag} names {resolved}, but {variable}={value} {says}: two explicit sources disagree",
            f"drop one of them, or make them agree (unset {variable}, or pass --env {named or value})",
        )


def choose_profile(o: Opening) -> None:
    """The environment's safety profile (its base, with the settings' overrides)."""
    assert o.settings is not None and o.environment is not None
    spec = o.settings.environments[o.environment.name]
    o.profile = profile_for(spec.name, spec.based_on, spec.profile)


def load_layers(o: Opening) -> None:
    """The declared settings, then the configuration layers, with this environment's values decrypted."""
    assert o.root is not None and o.environment is not None
    declared = o.pm.declare_settings(settings=o.settings)
    o.specs = tuple(declared.flat())
    o.findings += declared.findings()
    loaded = o.pm.load_config(root=o.root.path, environment=o.environment, settings=o.settings, environ=o.environ)
    o.findings += loaded.findings()
    o.layers, o.decrypted = decrypt_layers(o.pm, loaded.flat(), o.environment, o.settings, o.root.path, o.environ)


def merge_config(o: Opening) -> None:
    """The layers, the declared defaults and the runtime overrides merged into the :class:`Config`."""
    assert o.environment is not None and o.settings is not None
    layers = o.layers + [ConfigLayer("defaults", defaults(o.specs), PRECEDENCE["defaults"])]
    if o.args.overrides:
        layers.append(ConfigLayer("runtime override", dict(o.args.overrides), PRECEDENCE["runtime override"]))
    built = {key for layer in layers for key in layer.secrets}
    o.config = merge_layers(layers, o.environment.name, o.settings, o.specs, extra_secrets=o.decrypted | built)
    for layer in o.config.layers:
        o.findings += layer.findings


def report_plugins(o: Opening) -> None:
    """Required plugins that are not loaded, and top-level settings keys nothing knows (the values in the
    plugins' tables are judged with validation: :func:`envfence.settings_tables.session_findings`)."""
    settings = o.settings
    assert settings is not None
    where = str(settings.path) if settings.path else None
    for name, why in o.pm.missing(settings.required_plugins):
        o.findings.append(Finding(
            code="PLUGIN_REQUIRED_MISSING",
            severity="error",
            message=f"required plugin {name!r} is not loaded ({why})",
            remediation=f"install the distribution that provides it (usually envfence-{name}), enable it, or remove it from required_plugins",
            key="required_plugins",
            plugin=name,
            file=where,
        ))
    report_unknown_tables(o)


def report_unknown_tables(o: Opening) -> None:
    """Top-level settings keys that neither the core, a plugin's declared table nor a plugin's name explains.

    Plugins are asked for their tables only when some name is not already known, so the
    common project pays no hook call at opening.
    """
    from .settings import CORE
    from .settings_tables import unknown_tables

    settings = o.settings
    assert settings is not None
    known = CORE.known() | o.pm.names()
    if any(key not in known for key in settings.raw):
        o.findings += unknown_tables(settings, o.pm.declare_tables().flat(), o.pm.names())


def defaults(specs: Iterable[SettingSpec]) -> dict[str, str]:
    """The declared settings' defaults, the lowest layer."""
    return {s.name: s.default for s in specs if s.default is not None}


def audit_opened(session: Any) -> None:
    """The two events of every session: how the environment was decided, and which layers were read."""
    environment, host = session.environment, session.host
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
            for layer in session.config.layers
            if layer.exists
        ],
        keys=len(session.config),
    )


def files_config(session: Any, environment: str) -> Config:
    """Environment ``environment``'s configuration from its files and the declared defaults only."""
    other = Environment(environment, "config_for", f"read from {session.environment.name}")
    loaded = session.plugins.load_config(root=session.root.path, environment=other, settings=session.settings, environ=session.environ)
    if loaded.errors:
        error = loaded.errors[0]
        raise ConfigurationError(session.redactor()(str(error)), f"fix or disable the plugin (-p no:{error.plugin})")
    layers = [layer for layer in loaded.flat() if not layer.overlay]
    layers.append(ConfigLayer("defaults", defaults(session.settings_specs), PRECEDENCE["defaults"]))
    built = {key for layer in layers for key in layer.secrets}
    return merge_layers(layers, environment, session.settings, session.settings_specs, extra_secrets=built)


#: The steps of opening a session, in order.
STEPS: tuple[Callable[[Opening], None], ...] = (
    find_root, read_settings, classify_host, decide_environment, choose_profile, load_layers, merge_config, report_plugins,
)


def build(args: OpenArguments, pm: PluginManager, environ: Mapping[str, str]) -> Opening:
    """Run every step of :data:`STEPS` and return what they decided."""
    opening = Opening(args, pm, dict(environ))  # its own copy: a step may not change the session's
    for step in STEPS:
        step(opening)
    return opening


#: The process environment's bytes when it was last copied, and that copy decoded.
_last_environ: tuple[dict[Any, Any], dict[str, str]] | None = None


def environ_copy() -> dict[str, str]:
    """A copy of ``os.environ`` as it is now.

    Decoding each variable is most of the cost of a copy, and the environment
    seldom changes between two sessions: where CPython keeps its bytes
    (``os.environ._data``), bytes equal to the last copy's give that copy again.
    The bytes are copied first and decoded from that copy, so a variable set
    by another thread meanwhile can never pair new bytes with an old decoding.
    """
    global _last_environ
    data = getattr(os.environ, "_data", None)
    decode_key = getattr(os.environ, "decodekey", None)
    decode_value = getattr(os.environ, "decodevalue", None)
    if not isinstance(data, dict) or decode_key is None or decode_value is None:
        return dict(os.environ)
    last = _last_environ
    if last is not None and last[0] == data:
        return dict(last[1])
    raw = dict(data)
    decoded = {decode_key(k): decode_value(v) for k, v in raw.items()}
    _last_environ = (raw, decoded)
    return dict(decoded)


def reopen_arguments(args: OpenArguments) -> dict[str, Any]:
    """``args`` as keyword arguments of :meth:`envfence.Session.open`."""
    return slotted.asdict(args, recurse=False)


def open_session_of(cls: Any, args: OpenArguments) -> Any:
    """Build a session of class ``cls`` for ``args``: the plugins, the steps, the loading findings (redacted), audited."""
    environ = environ_copy() if args.environ is None else dict(args.environ)
    if args.plugins is not None:
        pm = args.plugins
    else:
        from .plugins import default_manager

        pm = default_manager(args.disabled_plugins, environ)
    o = build(args, pm, environ)
    session = cls(
        root=o.root, settings=o.settings, host=o.host, environment=o.environment, profile=o.profile,
        config=o.config, plugins=pm, settings_specs=o.specs, environ=environ, opened_with=args, dry_run=args.dry_run,
    )
    # A plugin's exception text may quote a value: mask before anyone sees it.
    session.load_findings = session.redact_findings(o.findings)
    audit_opened(session)
    return session
