"""Profiles: how an environment behaves, as opposed to what it is configured with.

Every environment is based on one of two profiles. Development is verbose,
interactive and forgiving; production is terse, non-interactive and strict.
A declared environment (``staging``) names its base and may override fields
in its ``profile`` table.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import slotted
from .errors import ConfigurationError


@slotted.frozen
class Profile:
    """The behaviour shared by every profile; subclasses set the defaults."""

    name: str = "base"  #: the environment's name
    based_on: str = "base"
    #: Warnings that matter in production become errors; ``--force`` needs ``--reason``.
    strict: bool = False
    #: Log to the console as well as to the file.
    console_logging: bool = True
    log_level: str = "DEBUG"
    #: Prompts are allowed when a terminal is attached.
    interactive: bool = True
    #: ``verbose`` for people, ``terse`` for automation.
    output: str = "verbose"
    #: Print full (redacted) tracebacks on failure.
    tracebacks: bool = True
    #: Permissions of the environment's directories.
    dir_mode: int = 0o755
    #: Development tooling: debugging options and examples in ``--help`` (``--trace`` accepted), DEBUG records of
    #: the decisions in the log, the development-only checks, the detailed ``status``. Without it, the operator's forms.
    debug: bool = True

    @property
    def verbose(self) -> bool:
        """True when output is meant for people."""
        return self.output == "verbose"

    def escalate(self, severity: str) -> str:
        """The severity a finding of ``severity`` gets under this profile."""
        return severity


@slotted.frozen
class DevelopmentProfile(Profile):
    """Verbose, interactive, forgiving: warns about production-like hosts but allows overrides."""

    based_on: str = "development"


@slotted.frozen
class ProductionProfile(Profile):
    """Terse, file-only logging, no prompts, strict validation and forcing."""

    based_on: str = "production"
    strict: bool = True
    console_logging: bool = False
    log_level: str = "INFO"
    interactive: bool = False
    output: str = "terse"
    tracebacks: bool = False
    dir_mode: int = 0o700
    debug: bool = False

    def escalate(self, severity: str) -> str:
        """Enhanced production validation: a warning is an error here."""
        return "error" if severity == "warning" else severity


PROFILE_CLASSES: dict[str, type[Profile]] = {
    "development": DevelopmentProfile,
    "production": ProductionProfile,
}

#: The levels a profile's ``log_level`` may name (loguru's).
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

_OVERRIDABLE = {
    a.name: a.type for a in slotted.fields(Profile) if a.name not in ("name", "based_on")
}


def check_profile_overrides(overrides: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigurationError` for an unknown field or a value of the wrong type."""
    for key, value in overrides.items():
        if key not in _OVERRIDABLE:
            raise ConfigurationError(
                f"{where}.{key}: unknown profile setting",
                f"known settings: {', '.join(sorted(_OVERRIDABLE))}",
            )
        expected = {"bool": bool, "int": int, "str": str}[_OVERRIDABLE[key]]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigurationError(
                f"{where}.{key}: must be {_OVERRIDABLE[key]}, not {value!r}", "fix the value's type"
            )
    level = overrides.get("log_level", "INFO")
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"{where}.log_level: {level!r} is not a log level", f"use one of: {', '.join(LOG_LEVELS)}")
    mode = overrides.get("dir_mode", 0o700)
    if not 0 <= mode <= 0o777 or mode & 0o700 != 0o700 or mode & 0o002:
        raise ConfigurationError(
            f"{where}.dir_mode: {mode:#o} must give the owner full access and others no write access",
            "e.g. dir_mode = 0o700 (owner only) or 0o755",
        )
    if overrides.get("output", "verbose") not in ("verbose", "terse"):
        raise ConfigurationError(f"{where}.output: must be 'verbose' or 'terse'", "pick one of the two")


def profile_for(name: str, based_on: str, overrides: Mapping[str, Any] | None = None) -> Profile:
    """The profile of environment ``name``: its base's class with its overrides."""
    cls = PROFILE_CLASSES[based_on]
    return cls(name=name, **dict(overrides or {}))
