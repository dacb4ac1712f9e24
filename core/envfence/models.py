"""The values that flow through the pipeline.

Every model is a record class (:mod:`envfence.slotted`), frozen where it can be. Secret values are
wrapped in :class:`Secret`, whose ``repr``, ``str`` and JSON form never show
the value; anything that prints a model prints it masked.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from . import slotted

if TYPE_CHECKING:
    from .naming import CredentialNaming

MASK = "********"

#: Severity names, lowest first.
SEVERITIES = ("info", "warning", "error")


def utcnow() -> _dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return _dt.datetime.now(_dt.timezone.utc)


@slotted.frozen(repr=False, eq=True)
class Secret:
    """A secret value that never shows itself.

    ``str()``, ``repr()``, f-strings and the JSON encoder all print a mask.
    Call :meth:`reveal` where the real value is needed, and only there.
    """

    _value: str = slotted.field(repr=False)

    def reveal(self) -> str:
        """Return the real value. Never print or log what this returns."""
        return self._value

    def fingerprint(self, kind: str | None = None) -> str:
        """A masked description safe to show: the value's kind (``kind`` when the caller knows it) and length."""
        return f"{kind or secret_kind(self._value)}, {len(self._value)} chars"

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling would write the value to disk or a pipe
        raise TypeError("Secret values cannot be pickled")


def secret_kind(value: str) -> str:
    """Name the shape of a secret value without revealing it (a service's plugin names its own kinds)."""
    if value.lower().startswith("bearer "):
        return "bearer token"
    if not value:
        return "empty"
    return "secret"


#: A configuration value: text, or a :class:`Secret` for a secret.
ConfigValue = str | Secret
#: What :meth:`envfence.Session.setting` returns: the declared type's value (``port`` an int, ``path`` a
#: :class:`~pathlib.Path`, ``bool`` a bool), text for an undeclared setting, a :class:`Secret` for a secret.
SettingValue = str | int | float | bool | Path | Secret


def reveal(value: Any) -> Any:
    """Return the real value of a :class:`Secret`, or the value itself."""
    return value.reveal() if isinstance(value, Secret) else value


def mask(value: Any) -> Any:
    """Return the value, or the mask when it is a :class:`Secret`."""
    return MASK if isinstance(value, Secret) else value


@slotted.frozen
class ProjectRoot:
    """Where the project lives and how that was decided."""

    path: Path
    method: str  #: e.g. ``--root``, ``ENVFENCE_ROOT``, ``envfence.toml``, ``setup.py``, ``working directory``
    evidence: str = ""  #: the file that marked the root, or the variable's value


@slotted.frozen
class HostInfo:
    """The host's own class, decided from its identity.

    ``matches`` holds every ``(environment, evidence)`` pair of a rule that
    classified the host: the matching token of its name, or, when the host is
    ``enrolled``, the enrollment rule (a hostname glob or its machine id).
    ``environment`` is set only when exactly one environment matched; a host
    that matches two is ``ambiguous``. When a stand-in name
    (``ENVFENCE_HOSTNAME``) named the host, ``real`` is the class of the
    system's own name, which the guards apply as well.
    """

    hostname: str
    source: str = "socket.gethostname()"  #: or ``ENVFENCE_HOSTNAME``
    tokens: tuple[str, ...] = ()
    matches: tuple[tuple[str, str], ...] = ()
    #: True when an enrollment rule decided the class (tokens were not consulted).
    enrolled: bool = False
    #: The machine's id (``/etc/machine-id``), when it has one.
    machine_id: str | None = None
    #: The class of the system's own name, when a stand-in name differs from it.
    real: "HostInfo | None" = None
    #: False when no plugin answered ``classify_host``: only the name is known (no rules, no machine id read).
    classified: bool = True
    #: ``(environment, keyword)`` for each environment whose keyword the name holds inside a word
    #: (``prodserver01``) without a rule classifying the host by it: suspect, not classified.
    suspects: tuple[tuple[str, str], ...] = ()

    @property
    def environments(self) -> tuple[str, ...]:
        """The distinct environments whose rules matched, in match order."""
        seen: list[str] = []
        for env, _ in self.matches:
            if env not in seen:
                seen.append(env)
        return tuple(seen)

    @property
    def environment(self) -> str | None:
        """The host's class, or None when no or more than one environment matched."""
        envs = self.environments
        return envs[0] if len(envs) == 1 else None

    @property
    def ambiguous(self) -> bool:
        """True when the host carries markers of more than one environment."""
        return len(self.environments) > 1

    def describe(self) -> str:
        """One line for people: the class and the rule that decided it."""
        if not self.classified:
            return "not classified (no plugin classifies hosts)"
        if not self.matches:
            suspect = "".join(f"; suspect for {env} ('{word}' inside a word)" for env, word in self.suspects)
            return "unclassified (no enrollment rule and no hostname pattern matched)" + suspect
        if self.enrolled:
            rules = ", ".join(f"{env}: enrolled by {rule}" for env, rule in self.matches)
        else:
            rules = ", ".join(f"{env}: '{tok}'" for env, tok in self.matches)
        if self.ambiguous:
            return f"ambiguous ({rules})"
        return f"{self.environment} ({rules})"


@slotted.frozen
class Environment:
    """The environment a process runs in, and how that was decided."""

    name: str
    method: str  #: ``flag``, ``ENVIRONMENT variable``, ``hostname`` or ``default``
    evidence: str = ""  #: e.g. ``ENVIRONMENT=prod``, ``web-prod-01``
    decided_at: _dt.datetime = slotted.field(factory=utcnow)

    def describe(self) -> str:
        """One line for people: the method and its evidence."""
        return f"{self.method}: {self.evidence}" if self.evidence else self.method


# Precedence of the standard layers, lowest first. Plugins may place their
# own layers between these numbers.
PRECEDENCE = {
    "defaults": 0,
    ".env": 10,
    ".env.<environment>": 20,
    ".env.local": 30,
    ".env.<environment>.local": 40,
    "process environment": 50,
    "runtime override": 60,
}


@slotted.frozen
class ConfigLayer:
    """One source of configuration values.

    ``source`` names it for people (a file path relative to the root,
    ``process environment``, ``runtime override``, ``defaults``). A layer
    whose file does not exist is kept with ``exists=False`` so that
    ``config show --explain`` can list it as missing.
    """

    source: str
    values: Mapping[str, str] = slotted.field(repr=lambda v: f"<{len(v)} values>")  # may hold secrets
    precedence: int = 0
    path: Path | None = None
    exists: bool = True
    plugin: str = ""
    findings: tuple["Finding", ...] = ()  #: problems met while reading it (a malformed line)
    #: Only set keys already known (from a lower layer, a declared setting or a
    #: credential prefix); the process environment is such a layer.
    overlay: bool = False
    digest: str = ""  #: sha256 of the file's bytes, for the audit trail
    #: Keys whose values were built from a secret's value (a ``${}`` reference): secret too.
    secrets: frozenset[str] = frozenset()


@slotted.frozen
class ConfigEntry:
    """A key's merged value and its provenance."""

    key: str
    value: str | Secret
    source: str  #: the layer that set the value
    overridden: tuple[tuple[str, str | Secret], ...] = ()  #: (layer, value) pairs it replaced, lowest first
    prefix_environment: str | None = None  #: the environment whose credential prefix the key carries

    @property
    def secret(self) -> bool:
        """True when the value is wrapped in :class:`Secret`."""
        return isinstance(self.value, Secret)


@slotted.frozen
class Config(Mapping[str, ConfigValue]):
    """The merged configuration of one environment.

    A read-only mapping from key to value (``str``, or :class:`Secret` for
    secrets). :meth:`entry` gives the provenance of a key; :meth:`credential`
    reads a credential through the environment's prefix, as :attr:`naming`
    (the project's one :class:`~envfence.naming.CredentialNaming`) says.
    """

    environment: str
    naming: "CredentialNaming"
    entries: Mapping[str, ConfigEntry]
    layers: tuple[ConfigLayer, ...] = ()

    def __getitem__(self, key: str) -> ConfigValue:
        return self.entries[key].value

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def prefix(self) -> str:
        """This environment's credential prefix, without the underscore (for messages)."""
        return self.naming.prefix(self.environment)

    def entry(self, key: str) -> ConfigEntry | None:
        """The provenance of ``key``, or None when it is not set."""
        return self.entries.get(key)

    def key_for(self, name: str) -> str:
        """The key credential ``name`` is stored under in this environment (``DEV_AIRTABLE_API_KEY``)."""
        return self.naming.key(self.environment, name)

    def credential_key(self, name: str) -> str | None:
        """The key that holds credential ``name`` in this environment.

        The environment's prefixed key (``DEV_AIRTABLE_API_KEY``) wins over
        the plain one (``AIRTABLE_API_KEY``); another environment's prefixed
        key is never used.
        """
        own = self.key_for(name)
        if own in self.entries and self.naming.readable_in(own, self.environment):
            return own
        if name in self.entries and self.naming.environment_of(name) is None:
            return name
        return None

    def credential(self, name: str) -> ConfigValue | None:
        """The value of credential ``name`` (see :meth:`credential_key`), or None.

        This lookup is not audited; :meth:`envfence.Session.credential` is.
        """
        key = self.credential_key(name)
        return None if key is None else self.entries[key].value

    def own_view(self) -> "Config":
        """This configuration without another environment's prefixed keys: what a job of this environment sees."""
        entries = {k: e for k, e in self.entries.items() if self.naming.readable_in(k, self.environment)}
        return slotted.evolve(self, entries=entries)

    def holds_credential(self, key: str | None) -> bool:
        """True when ``key`` is set and is a credential: a secret, or a key under an environment's prefix."""
        entry = self.entries.get(key) if key else None
        return entry is not None and (entry.secret or entry.prefix_environment is not None)

    def environment_view(self) -> dict[str, Any]:
        """This environment's values under their plain names.

        Keys with this environment's prefix are stripped of it and win over
        plain keys; keys with another environment's prefix are left out.
        Used to hand configuration to a subprocess.
        """
        return self.naming.view({k: e.value for k, e in self.entries.items()}, self.environment)

    def masked(self) -> dict[str, str]:
        """Every key with its value, secrets masked."""
        return {k: mask(e.value) for k, e in self.entries.items()}


@slotted.frozen
class Finding:
    """A problem, or a fact worth telling, found in a project.

    ``code`` is stable (``AIRTABLE_BASE_ID_FORMAT``) so that scripts and
    tests can rely on it; ``message`` and ``remediation`` are for people and
    never contain a secret value.

    ``confirmable`` marks a blocking guard finding that a person may confirm
    past at a terminal in a profile that is not strict; without a terminal,
    forcing past it needs ``--reason`` in every profile (a suspect host name,
    a malformed credential).
    """

    code: str
    severity: str
    message: str
    remediation: str = ""
    key: str | None = None
    plugin: str | None = None
    file: str | None = None
    line: int | None = None
    confirmable: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def location(self) -> str:
        """``file:line`` or the key, whichever the finding has."""
        if self.file:
            return f"{self.file}:{self.line}" if self.line else self.file
        return self.key or ""


@slotted.frozen
class Report:
    """All findings of a validation, in the order they were found, one per cause.

    Two findings with the same message are one cause said twice (a broken
    table reported by each plugin that reads it, a hook that failed for both
    host names it was asked about): the first is kept, at the more severe of
    the two levels.
    """

    findings: tuple[Finding, ...] = slotted.field(default=(), converter=lambda found: _one_per_cause(found))

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings at error level."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def ok(self) -> bool:
        """True when no finding is at error level."""
        return not self.errors

    def codes(self) -> list[str]:
        """The codes of all findings, in order."""
        return [f.code for f in self.findings]

    def extend(self, findings: Iterable[Finding]) -> "Report":
        """A new report with ``findings`` appended."""
        return Report(self.findings + tuple(findings))


_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def _one_per_cause(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """``findings`` in order, a repeated message folded into its first, at the higher severity."""
    kept: list[Finding] = []
    seen: dict[str, int] = {}
    for finding in findings:
        index = seen.get(finding.message)
        if index is None:
            seen[finding.message] = len(kept)
            kept.append(finding)
        elif _SEVERITY_RANK.get(finding.severity, 0) > _SEVERITY_RANK.get(kept[index].severity, 0):
            kept[index] = slotted.evolve(kept[index], severity=finding.severity)
    return tuple(kept)


@slotted.frozen
class SettingSpec:
    """A configuration setting a plugin knows about (``declare_settings``)."""

    name: str  #: the plain name, e.g. ``AIRTABLE_API_KEY``
    doc: str = ""
    secret: bool = False
    credential: bool = False  #: read through the environment's prefix
    required_in: tuple[str, ...] = ()  #: environment names, or profile bases (``production``)
    format: str | None = None  #: a regular expression the value must match
    default: str | None = None
    plugin: str | None = None
    type: str | None = None  #: a name from :data:`envfence.setting_types.TYPES`; None reads as ``str``


@slotted.frozen
class EnvPaths:
    """One environment's directory tree."""

    environment: str
    base: Path
    dirs: Mapping[str, Path] = slotted.field(factory=dict)  #: name -> path, e.g. ``csv/incoming``
    #: The other declared environments' tree bases (as configured, not resolved): a file written
    #: outside this tree must not land in one of them.
    others: Mapping[str, Path] = slotted.field(factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.dirs[name]

    def log_file(self, stem: str = "automation") -> Path:
        """A log file name that carries the environment: ``logs/automation_production.log``."""
        return self.dirs.get("logs", self.base / "logs") / f"{stem}_{self.environment}.log"

    def stage(self, name: str) -> Path:
        """The directory of a CSV stage: ``incoming``, ``processing``, ``processed``, ``failed``."""
        for key in (name, f"csv/{name}"):
            if key in self.dirs:
                return self.dirs[key]
        from .errors import UsageError

        stages = ", ".join(k.removeprefix("csv/") for k in self.dirs if k.startswith("csv/"))
        raise UsageError(f"unknown CSV stage {name!r} in the {self.environment} tree", f"use one of: {stages}")

    def move(self, file: str | Path, to: str | Path) -> Path:
        """Move ``file`` into stage ``to`` (a stage name, or a directory) by one atomic rename.

        Both the file and the destination must lie inside this environment's
        tree once symlinks are resolved, so one environment's data never
        lands in another's. An existing file of the same name is never
        replaced.

        :returns: the file's new path.
        :raises SafetyError: the file or the destination is outside this tree, or reached through a link.
        :raises EnvfenceError: the file is missing, or the destination holds one of that name.
        """
        from .errors import SafetyError
        from .files import move_no_replace

        source = Path(file)
        target = self.stage(to) if isinstance(to, str) and "/" not in to else Path(to)
        tree = self.base.resolve()
        where = {}
        for what, path in (("file", source), ("destination", target)):
            # Given through the tree's real place (a configured link), or as the tree names it.
            absolute = path if path.is_absolute() else Path.cwd() / path
            if absolute.is_relative_to(self.base):
                where[what] = absolute.relative_to(self.base)
            elif absolute.is_relative_to(tree):
                where[what] = absolute.relative_to(tree)
            else:
                raise SafetyError(
                    f"refusing to move {source}: the {what} {path} is outside the {self.environment} tree ({self.base})",
                    "each environment's files stay in its own tree; use this environment's stages",
                )
        # One atomic no-replace rename, each directory reached without following a link.
        return move_no_replace(self.base, where["file"], where["destination"])


@slotted.frozen
class AuditEvent:
    """A decision worth a trail. ``data`` never holds a secret value."""

    event: str  #: e.g. ``environment.detected``, ``credential.accessed``, ``run.forced``
    environment: str
    data: Mapping[str, Any] = slotted.field(factory=dict)
    at: _dt.datetime = slotted.field(factory=utcnow)


@slotted.frozen
class Automation:
    """A job envfence can run.

    Exactly one of ``function`` (called with a :class:`RunContext`) or
    ``command`` (a command line run as a subprocess) is set.
    """

    name: str
    description: str = ""
    environments: tuple[str, ...] = ()  #: where it may run; empty means every environment
    settings: tuple[str, ...] = ()  #: the settings it needs
    #: a cron expression, or a mapping of environment name to cron expression
    schedule: str | Mapping[str, str] | None = None
    function: Callable[..., Any] | None = None
    command: tuple[str, ...] | None = None
    plugin: str | None = None
    #: An ad-hoc command (``envfence exec``): it holds no lock, so several may run
    #: at once, and it reads the caller's stdin.
    adhoc: bool = False
    #: Where a function runs: ``process`` (a child Python process), ``in-process``, or None for the
    #: profile's default (a child process in a strict profile).
    isolation: str | None = None
    #: Why a function runs in-process where the profile would isolate it (required with ``in-process``).
    isolation_reason: str = ""

    def isolated(self, strict: bool) -> bool:
        """True when its function runs in a child process under a profile that is ``strict`` or not."""
        if self.command is not None or self.isolation == "in-process":
            return False
        return self.isolation == "process" or strict

    def allows(self, environment: str) -> bool:
        """True when the automation may run in ``environment``."""
        return not self.environments or environment in self.environments

    def schedule_for(self, environment: str) -> str | None:
        """The cron expression that schedules it in ``environment``, or None."""
        if isinstance(self.schedule, Mapping):
            return self.schedule.get(environment)
        return self.schedule if self.allows(environment) else None


@slotted.frozen
class RunRequest:
    """What a user asked to run, and how."""

    automation: Automation
    dry_run: bool = False
    force: bool = False
    reason: str | None = None
    event: Any = None  #: what triggered the run (a webhook event), handed to the automation as ``ctx.event``


@slotted.frozen
class RunOutcome:
    """How a run ended."""

    run_id: str
    automation: str
    environment: str
    status: str  #: ``succeeded``, ``failed``, ``blocked``, ``dry-run``; in history also ``running`` and ``abandoned``
    exit_code: int  #: the job's own exit code when it ran; for a run that never started, envfence's (3 blocked, 4 configuration)
    started_at: _dt.datetime
    finished_at: _dt.datetime
    error_class: str | None = None
    error_id: str | None = None
    forced: bool = False
    reason: str | None = None
    metrics: Mapping[str, Any] = slotted.field(factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from start to finish."""
        return (self.finished_at - self.started_at).total_seconds()


@slotted.frozen
class Failure:
    """A failure on its way to ``on_error``: classified, its message redacted."""

    error_id: str
    classification: str  #: ``configuration``, ``credential``, ``network``, ``data`` or ``bug``
    message: str
    automation: str | None = None
    exception: BaseException | None = slotted.field(default=None, eq=False)


@slotted.frozen
class Alert:
    """A threshold crossed (or cleared) by an automation in one environment, on its way to the ``alert`` hook."""

    environment: str
    automation: str
    check: str  #: what was crossed: ``max_duration``, ``max_memory``, ``max_error_rate``, ``expected_every``, ``failed``...
    message: str  #: one line for people, already redacted
    state: str = "firing"  #: ``firing``, or ``recovered`` when the incident cleared
    severity: str = "critical"  #: ``warning`` or ``critical``
    run_id: str | None = None  #: the run that crossed it (None for a run that never happened)
    value: Any = None  #: what was measured
    limit: Any = None  #: the threshold
    incident: str = ""  #: stable id of the incident: one alert, then one recovery
    at: _dt.datetime = slotted.field(factory=utcnow)
