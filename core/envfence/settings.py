"""Project settings: ``envfence.toml`` or ``[tool.envfence]`` in pyproject.toml.

Settings say how envfence behaves in a project (its environments, their
aliases, credential prefixes, hostname patterns and profiles); configuration
is the project's own values (``.env`` files and the process environment).
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Mapping

import attrs

from .errors import ConfigurationError
from .naming import CredentialNaming

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

_CORE_KEYS = {
    "environment_variable": "the variable that names the environment (default ENVIRONMENT)",
    "default_environment": "the environment used when nothing decides (default development)",
    "secrets": "extra keys whose values are secret",
    "environments": "one table per environment",
    "strict_plugins": "true makes a plugin that failed to load an error",
    "required_plugins": "plugins the project needs; `envfence check` reports missing ones",
    "timezone": "the zone schedules are read in (default the machine's; CRON_TZ overrides it)",
    "snapshots": "configuration snapshots: keep = how many the environment keeps (default 20)",
    "resources": "what a job may take (memory, cpu_seconds, cpus, nice, open_files), [resources.<environment>] overlaid",
    "scaling": "receivers and workers per environment, [scaling.<environment>] (read by the webhook receiver's deployment files)",
    "settings": "declared settings, one [settings.NAME] table each (read by the declared_settings plugin)",
}
_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ENV_KEYS = ("prefix", "aliases", "hostname_patterns", "based_on", "profile")


@attrs.frozen
class EnvironmentSpec:
    """A declared environment."""

    name: str
    prefix: str
    aliases: tuple[str, ...] = ()
    hostname_patterns: tuple[str, ...] = ()
    based_on: str = "development"  #: ``development`` or ``production``
    profile: Mapping[str, Any] = attrs.field(factory=dict)  #: profile field overrides


@attrs.frozen
class ProjectSettings:
    """The parsed settings of one project (defaults when it has none)."""

    path: Path | None = None  #: the settings file, or None
    environments: Mapping[str, EnvironmentSpec] = attrs.field(factory=dict)
    environment_variable: str = "ENVIRONMENT"
    default_environment: str = "development"
    secrets: frozenset[str] = frozenset()
    raw: Mapping[str, Any] = attrs.field(factory=dict)
    strict_plugins: bool = False
    required_plugins: tuple[str, ...] = ()
    #: The one credential naming of these environments (built from their prefixes).
    naming: CredentialNaming = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "naming", CredentialNaming.from_settings(self))

    @property
    def source(self) -> str:
        """The settings file for messages (``envfence.toml``, ``pyproject.toml [tool.envfence]``)."""
        if self.path is None:
            return "built-in defaults"
        if self.path.name == "pyproject.toml":
            return f"{self.path} [tool.envfence]"
        return str(self.path)

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

    def unknown_keys(self, known_sections: set[str]) -> list[tuple[str, str | None]]:
        """Top-level keys that are neither core keys nor a plugin's section.

        Returns ``(key, suggestion)`` pairs, the suggestion a close known name.
        """
        known = set(_CORE_KEYS) | known_sections
        return [(k, _close(k, known)) for k in self.raw if k not in known]


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


def _close(word: str, options: set[str]) -> str | None:
    import difflib  # only a misspelled key pays for it

    matches = difflib.get_close_matches(word, sorted(options), n=1)
    return matches[0] if matches else None


def find_settings_file(root: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """Read the project's settings table, or None when it has none.

    ``envfence.toml`` wins over pyproject.toml. Raises
    :class:`ConfigurationError` for a file that cannot be read or parsed.
    """
    candidate = root / "envfence.toml"
    if candidate.is_file():
        return candidate, _read_toml(candidate)
    candidate = root / "pyproject.toml"
    if candidate.is_file():
        data = _read_toml(candidate)
        table = data.get("tool", {}).get("envfence") if isinstance(data.get("tool"), dict) else None
        if table is not None:
            if not isinstance(table, dict):
                raise ConfigurationError(f"{candidate}: tool.envfence must be a table")
            return candidate, table
    return None


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


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read the settings file ({exc.strerror})",
            "check that the file exists and is readable by this user",
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not valid UTF-8 (byte {exc.start})", "save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}", "fix the syntax at that line") from None


def load_settings(root: Path) -> ProjectSettings:
    """Load and check the settings of the project at ``root``.

    Raises :class:`ConfigurationError` naming the file and the key for any
    value of the wrong type or an environment table that cannot work.
    """
    found = find_settings_file(root)
    if found is None:
        return parse_settings({}, None)
    path, table = found
    return parse_settings(table, path)


class _Reader:
    """Reads typed values from a settings table; every error names the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, hint: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source}: {key}: {problem}", hint)

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, not {value!r}", f'write it as {key.split(".")[-1]} = "NAME"')
        return value.strip()

    def strings(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, f"must be a list of strings, not {value!r}", f'write it as {key.split(".")[-1]} = ["a", "b"]')
        return tuple(v.strip() for v in value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}", f"write it as {key} = true")
        return value

    def environment(self, name: str, body: Any) -> EnvironmentSpec:
        """One ``[environments.NAME]`` table, over the built-in defaults of that name."""
        key = f"environments.{name}"
        if not _ENV_NAME.fullmatch(name):
            # The name is part of file names (.env.<name>, .envfence/keys/<name>.key):
            # a slash, a dot or a space could name a file elsewhere or another layer.
            raise self.fail(key, "is not a valid environment name",
                            "use letters, digits, - and _ only, starting with a letter or digit (staging, qa_eu)")
        if not isinstance(body, dict):
            raise self.fail(key, "must be a table", f"write it as [{key}] with prefix, aliases, based_on")
        for k in body:
            if k not in _ENV_KEYS:
                guess = _close(k, set(_ENV_KEYS))
                raise self.fail(f"{key}.{k}", "unknown key", f"did you mean {guess!r}?" if guess else f"known keys: {', '.join(_ENV_KEYS)}")
        merged = {**_DEFAULT_ENVIRONMENTS.get(name, {}), **body}
        if "based_on" not in merged:
            raise self.fail(f"{key}.based_on", "missing", 'say which base profile it follows: based_on = "development" or "production"')
        based_on = self.string(merged["based_on"], f"{key}.based_on")
        if based_on not in BASE_PROFILES:
            raise self.fail(f"{key}.based_on", f"must be 'development' or 'production', not {based_on!r}", "pick one of the two")
        prefix = self.string(merged.get("prefix", name.upper()), f"{key}.prefix").rstrip("_").upper()
        profile = merged.get("profile", {})
        if not isinstance(profile, dict):
            raise self.fail(f"{key}.profile", "must be a table", f"write it as [{key}.profile]")
        from .profiles import check_profile_overrides

        check_profile_overrides(profile, f"{self.source}: {key}.profile")
        return EnvironmentSpec(
            name=name,
            prefix=prefix,
            aliases=self.strings(merged.get("aliases", []), f"{key}.aliases"),
            hostname_patterns=self.strings(merged.get("hostname_patterns", [name]), f"{key}.hostname_patterns"),
            based_on=based_on,
            profile=profile,
        )

    def check_unique(self, specs: Mapping[str, EnvironmentSpec]) -> None:
        """Two environments sharing a prefix or an alias would read each other's credentials."""
        owners: dict[str, str] = {}
        for spec in specs.values():
            for label in (f"prefix {spec.prefix}",) + tuple(f"alias {a.lower()}" for a in spec.aliases + (spec.name,)):
                other = owners.setdefault(label, spec.name)
                if other != spec.name:
                    raise self.fail(
                        f"environments.{spec.name}",
                        f"{label} is also used by environment {other!r}",
                        "give every environment its own prefix and aliases",
                    )


def parse_settings(table: Mapping[str, Any], path: Path | None) -> ProjectSettings:
    """Build :class:`ProjectSettings` from a settings table."""
    source = str(path) if path else "settings"
    read = _Reader(source)
    declared = table.get("environments", {})
    if not isinstance(declared, dict):
        raise read.fail("environments", "must be a table of environment tables", "write [environments.NAME] sections")
    names = list(_DEFAULT_ENVIRONMENTS) + [n for n in declared if n not in _DEFAULT_ENVIRONMENTS]
    specs = {name: read.environment(name, declared.get(name, {})) for name in names}
    read.check_unique(specs)
    snapshots = table.get("snapshots", {})
    keep = snapshots.get("keep", 1) if isinstance(snapshots, dict) else None
    if not isinstance(snapshots, dict) or set(snapshots) - {"keep"} or type(keep) is not int or keep < 1:
        raise read.fail("snapshots", f"keep must be a whole number of at least 1, not {keep!r}", "write it as [snapshots] keep = 20")
    settings = ProjectSettings(
        path=path,
        environments=specs,
        environment_variable=read.string(table.get("environment_variable", "ENVIRONMENT"), "environment_variable"),
        secrets=frozenset(read.strings(table.get("secrets", []), "secrets")),
        raw=dict(table),
        strict_plugins=read.boolean(table.get("strict_plugins", False), "strict_plugins"),
        required_plugins=read.strings(table.get("required_plugins", []), "required_plugins"),
    )
    default = read.string(table.get("default_environment", "development"), "default_environment")
    resolved = settings.resolve(default)
    if resolved is None:
        raise unknown_environment(settings, default, f"{source}: default_environment")
    return attrs.evolve(settings, default_environment=resolved)
