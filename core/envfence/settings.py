"""Project settings: ``envfence.toml`` or ``[tool.envfence]`` in pyproject.toml.

Settings say how envfence behaves in a project (its environments, their
aliases, credential prefixes, hostname patterns and profiles); configuration
is the project's own values (``.env`` files and the process environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from . import slotted
from .errors import ConfigurationError
from .naming import CredentialNaming
from .recent import Recent
from .settings_tables import Table, Values

#: The base profiles every environment builds on.
BASE_PROFILES = ("development", "production")

_DEFAULT_ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "development": {
        "prefix": "DEV",
        "aliases": ["dev", "devel", "develop", "local"],
        "hostname_patterns": ["dev", "devel", "development", "local", "localhost"],
        "based_on": "development",
    },
    "production": {
        "prefix": "PROD",
        "aliases": ["prod", "prd", "live"],
        "hostname_patterns": ["prod", "prd", "production", "live"],
        "based_on": "production",
    },
}

_ENV_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def _core_table() -> Table:
    """The core's own keys of envfence.toml (a plugin's table sits beside them, named after it)."""
    from .settings_kinds import flag, mapping, text, texts, whole

    core = Table("", "envfence project settings (also [tool.envfence] in pyproject.toml)", extra=True)
    core.add("environment_variable", text(example="ENVIRONMENT"), "ENVIRONMENT", "the variable that names the environment")
    core.add("default_environment", text(example="development"), "development", "the environment used when nothing decides")
    core.add("secrets", texts(example="PAYMENT_TOKEN"), [], "extra keys whose values are secret")
    core.add("strict_plugins", flag(), False, "true makes a plugin that failed to load an error")
    core.add("required_plugins", texts(example="audit"), [], "plugins the project needs; `envfence check` reports missing ones")
    core.add("timezone", text(example="Europe/Paris"), None,
             "the zone schedules are read in (default the machine's; CRON_TZ overrides it)")
    from .resources import declare_resources
    from .thresholds import declare_thresholds

    # Read by envfence.resources when a job starts: a wrong value fails that run, and check names it.
    declare_resources(core.add_table("resources", "what a job may take, for every environment; "
                                                  "[resources.<environment>] overlays it", deferred=True))
    # Read by envfence.thresholds for health, alerts, report and advise; the thresholds plugin says which limits apply.
    declare_thresholds(core.add_table("thresholds", "limits a run is held to, for every automation (\"*\") or one, "
                                                    "per environment too", deferred=True))
    core.add_table("snapshots", "configuration snapshots").add(
        "keep", whole(minimum=1, example=20), 20, "how many snapshots the environment keeps")
    env = core.add_each(
        "environments", "one table per environment", names=_ENV_NAME, noun="environment name",
        # The name is part of file names (.env.<name>, .envfence/keys/<name>.key):
        # a slash, a dot or a space could name a file elsewhere or another layer.
        names_hint="letters, digits, - and _ only, starting with a letter or digit (staging, qa_eu)",
        defaults=_DEFAULT_ENVIRONMENTS,
    )
    env.add("prefix", text(example="STG"), None, "credential prefix, e.g. STG for STG_AIRTABLE_API_KEY (default: the name in capitals)")
    env.add("aliases", texts(example="stage"), [], "other names --env and ENVIRONMENT accept")
    env.add("hostname_patterns", texts(example="stg"), None, "hostname tokens that mean this environment (default: its name)")
    env.add("based_on", text(choices=BASE_PROFILES), None,
            "the base profile: development (verbose, lenient) or production (terse, strict)", required=True)
    env.add("profile", mapping(example={"strict": True}), {}, "profile fields this environment changes")
    return core


#: The core's keys, declared once: loading, ``check``, ``config schema`` and the docs read them.
CORE = _core_table()


def deferred_tables() -> list[Table]:
    """The core's tables judged by ``check`` and by their reader, not when a session opens ([resources])."""
    return [table for table in CORE.tables.values() if table.deferred]


@slotted.frozen
class EnvironmentSpec:
    """A declared environment."""

    name: str
    prefix: str
    aliases: tuple[str, ...] = ()
    hostname_patterns: tuple[str, ...] = ()
    based_on: str = "development"  #: ``development`` or ``production``
    profile: Mapping[str, Any] = slotted.field(factory=dict)  #: profile field overrides


@slotted.frozen
class ProjectSettings:
    """The parsed settings of one project (defaults when it has none)."""

    path: Path | None = None  #: the settings file, or None
    environments: Mapping[str, EnvironmentSpec] = slotted.field(factory=dict)
    environment_variable: str = "ENVIRONMENT"
    default_environment: str = "development"
    secrets: frozenset[str] = frozenset()
    raw: Mapping[str, Any] = slotted.field(factory=dict)
    strict_plugins: bool = False
    required_plugins: tuple[str, ...] = ()
    timezone: str | None = None  #: the zone schedules are read in (None: the machine's)
    #: The one credential naming of these environments (built from their prefixes).
    naming: CredentialNaming = slotted.field(init=False, eq=False, repr=False)
    #: :attr:`source`, worked out once: every read of a table names it.
    _source: str = slotted.field(init=False, eq=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "naming", CredentialNaming.from_settings(self))
        if self.path is None:
            source = "built-in defaults"
        elif self.path.name == "pyproject.toml":
            source = f"{self.path} [tool.envfence]"
        else:
            source = str(self.path)
        object.__setattr__(self, "_source", source)

    @property
    def source(self) -> str:
        """The settings file for messages (``envfence.toml``, ``pyproject.toml [tool.envfence]``)."""
        return self._source

    def resolve(self, name: str) -> str | None:
        """The declared environment that ``name`` or one of its aliases names, or None."""
        wanted = name.strip().lower()
        for env in self.environments.values():
            if wanted == env.name.lower() or wanted in (a.lower() for a in env.aliases):
                return env.name
        return None

    def require(self, name: str, where: str) -> str:
        """Resolve ``name`` or raise an error that lists the declared environments."""
        found = self.resolve(name)
        if found is None:
            raise unknown_environment(self, name, where)
        return found

    def section(self, name: str) -> Mapping[str, Any]:
        """The settings table a plugin owns, named after it (empty when absent)."""
        value = self.raw.get(name, {})
        return value if isinstance(value, Mapping) else {}


def name_shaped(value: str) -> bool:
    """True when ``value`` looks like an environment name (``staging``, ``qa_2``), not a token that may be a secret."""
    import re

    return re.fullmatch(r"[A-Za-z][A-Za-z_-]{0,23}[0-9]{0,3}", value.strip()) is not None


def unknown_environment(settings: ProjectSettings, name: str, where: str) -> ConfigurationError:
    """The error for a name that is no declared environment or alias."""
    listing = ", ".join(
        f"{e.name} ({', '.join(e.aliases)})" if e.aliases else e.name
        for e in settings.environments.values()
    )
    # Only a value shaped like a name is echoed: a token pasted into --env or ENVIRONMENT may be a secret,
    # and no session (so no redactor) exists yet to mask it.
    if name_shaped(name):
        return ConfigurationError(
            f"unknown environment {name!r} from {where}; declared environments: {listing}",
            f"use one of those names, or declare it under [environments.{name.strip().lower()}] in {settings.source}",
        )
    return ConfigurationError(
        f"unknown environment from {where}: a value of {len(name)} characters not shaped like an environment name "
        f"(not shown: it may be a secret); declared environments: {listing}",
        "use one of those names",
    )


def find_settings_file(root: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """Read the project's settings table, or None when it has none.

    ``envfence.toml`` wins over pyproject.toml. Raises
    :class:`ConfigurationError` for a file that cannot be read or parsed.
    """
    found = _settings_file(root)
    if found is None:
        return None
    table = _settings_table(*found)
    return None if table is None else (found[0], table)


def _settings_file(root: Path) -> tuple[Path, bytes] | None:
    """The file that may hold the settings (``envfence.toml``, else pyproject.toml) and its bytes, or None."""
    for name in ("envfence.toml", "pyproject.toml"):
        candidate = root / name
        if candidate.is_file():
            return candidate, _read_bytes(candidate)
    return None


def _settings_table(path: Path, raw: bytes) -> Mapping[str, Any] | None:
    """The settings table in ``path``'s bytes; None for a pyproject.toml without ``[tool.envfence]``."""
    data = _parse_toml(path, raw)
    if path.name != "pyproject.toml":
        return data
    table = data.get("tool", {}).get("envfence") if isinstance(data.get("tool"), dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigurationError(f"{path}: tool.envfence must be a table")
    return table


def has_settings(directory: Path) -> str | None:
    """Name the file that makes ``directory`` an envfence project, or None.

    Cheap: pyproject.toml is searched for its ``[tool.envfence`` header
    without parsing it.
    """
    if (directory / "envfence.toml").is_file():
        return "envfence.toml"
    pyproject = directory / "pyproject.toml"
    try:
        if pyproject.is_file() and "[tool.envfence" in pyproject.read_text(encoding="utf-8", errors="replace"):
            return "pyproject.toml [tool.envfence]"
    except OSError:
        return None
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read the settings file ({exc.strerror})",
            "check that the file exists and is readable by this user",
        ) from None


def _parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    import tomllib

    try:
        # utf-8-sig, without looking its codec up: a leading byte-order mark is dropped
        text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not valid UTF-8 (byte {exc.start})", "save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}", "fix the syntax at that line") from None


#: The settings loaded lately, by file: the bytes they were built from and the settings. A file whose bytes
#: are the same gives the same (frozen) settings without parsing it again; the file is read on every load, so
#: an edit is seen whatever its time stamps say. None stands for a project without a settings file.
_LOADED: Recent[Path | None, tuple[bytes, ProjectSettings]] = Recent(16)


def load_settings(root: Path) -> ProjectSettings:
    """Load and check the settings of the project at ``root``.

    Raises :class:`ConfigurationError` naming the file and the key for any
    value of the wrong type or an environment table that cannot work.
    """
    path, raw = _settings_file(root) or (None, b"")
    known = _LOADED.get(path)
    if known is not None and known[0] == raw:
        return known[1]
    table = _settings_table(path, raw) if path is not None else None
    settings = parse_settings({}, None) if table is None else parse_settings(table, path)
    _LOADED.put(path, (raw, settings))
    return settings


def _environment(source: str, name: str, body: Mapping[str, Any]) -> EnvironmentSpec:
    """One ``[environments.NAME]`` table (already checked against :data:`CORE`), over the built-in defaults of that name."""
    merged = {**_DEFAULT_ENVIRONMENTS.get(name, {}), **body}
    profile = merged.get("profile", {})
    from .profiles import check_profile_overrides

    check_profile_overrides(profile, f"{source}: environments.{name}.profile")
    return EnvironmentSpec(
        name=name,
        prefix=str(merged.get("prefix", name.upper())).strip().rstrip("_").upper(),
        aliases=tuple(a.strip() for a in merged.get("aliases", [])),
        hostname_patterns=tuple(p.strip() for p in merged.get("hostname_patterns", [name])),
        based_on=merged["based_on"],
        profile=profile,
    )


def _fail(source: str, key: str, problem: str, hint: str) -> ConfigurationError:
    return ConfigurationError(f"{source}: {key}: {problem}", hint)


def _check_unique(source: str, specs: Mapping[str, EnvironmentSpec]) -> None:
    """Two environments sharing a prefix or an alias would read each other's credentials."""
    owners: dict[str, str] = {}
    for spec in specs.values():
        for label in (f"prefix {spec.prefix}",) + tuple(f"alias {a.lower()}" for a in spec.aliases + (spec.name,)):
            other = owners.setdefault(label, spec.name)
            if other != spec.name:
                raise _fail(source, f"environments.{spec.name}", f"{label} is also used by environment {other!r}",
                            "give every environment its own prefix and aliases")


def parse_settings(table: Mapping[str, Any], path: Path | None) -> ProjectSettings:
    """Build :class:`ProjectSettings` from a settings table.

    :raises ConfigurationError: the first core key that :data:`CORE` refuses (naming the file and the key),
        or environments that cannot work together.
    """
    source = str(path) if path else "settings"
    opened = {name: value for name, value in table.items() if not getattr(CORE.tables.get(name), "deferred", False)}
    for problem in CORE.problems(opened, ""):
        raise _fail(source, problem.key, problem.message, problem.hint)
    values = Values(CORE, dict(table), source, "")
    declared = values.raw.get("environments", {})
    names = list(_DEFAULT_ENVIRONMENTS) + [n for n in declared if n not in _DEFAULT_ENVIRONMENTS]
    specs = {name: _environment(source, name, declared.get(name, {})) for name in names}
    _check_unique(source, specs)
    settings = ProjectSettings(
        path=path,
        environments=specs,
        environment_variable=values["environment_variable"].strip(),
        secrets=frozenset(s.strip() for s in values["secrets"]),
        raw=dict(table),
        strict_plugins=values["strict_plugins"],
        required_plugins=tuple(s.strip() for s in values["required_plugins"]),
        timezone=values["timezone"].strip() if values["timezone"] else None,
    )
    default = values["default_environment"].strip()
    resolved = settings.resolve(default)
    if resolved is None:
        raise unknown_environment(settings, default, f"{source}: default_environment")
    return slotted.evolve(settings, default_environment=resolved)
