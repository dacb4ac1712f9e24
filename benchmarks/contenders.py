"""The in-process contenders: each loads a generated project's production configuration.

A contender prepares, outside the timing, whatever a user would have written
once (pydantic-settings' model class), and returns a ``load`` function that is
timed. ``values`` turns what ``load`` returned into plain strings, so the
benchmark can check that every contender read the same configuration before
it compares their speed.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable

import attrs

from .projects import Project


@attrs.frozen
class Contender:
    """One library's way of loading the project."""

    name: str
    module: str  #: the module that must be importable, else the contender is skipped
    prepare: Callable[[Project], Callable[[], Any]]
    values: Callable[[Any, Project], dict[str, str]]
    #: Run after each timed load, untimed: undoes what the load did to the process.
    reset: Callable[[], None] | None = None
    #: Load once, untimed, before each measure: the contender is timed opening again what it opened before.
    warm: bool = False

    @property
    def available(self) -> bool:
        """True when the library is installed."""
        return importlib.util.find_spec(self.module) is not None


def _envfence(project: Project) -> Callable[[], Any]:
    import envfence

    def load():
        session = envfence.open_session(root=project.root, env="production")
        session.report  # validation is lazy: the case measures it, as the issue asks
        return session

    return load


def _envfence_load_only(project: Project) -> Callable[[], Any]:
    import envfence

    def load():
        return envfence.open_session(root=project.root, env="production")

    return load


def _forget_parsed() -> None:
    """Forget the files envfence parsed, so that its next opening parses them as a process's first one does."""
    from envfence.recent import forget_all

    forget_all()


def _envfence_values(session, project: Project) -> dict[str, str]:
    from envfence.models import reveal

    return {k: reveal(v) for k, v in session.config.items()}


def _dotenv(project: Project) -> Callable[[], Any]:
    from dotenv import dotenv_values

    base, production = project.root / ".env", project.root / ".env.production"

    def load():
        return {**dotenv_values(base), **dotenv_values(production)}

    return load


def _dotenv_plain(project: Project) -> Callable[[], Any]:
    from dotenv import dotenv_values

    base, production = project.root / ".env", project.root / ".env.production"

    def load():
        return {**dotenv_values(base, interpolate=False), **dotenv_values(production, interpolate=False)}

    return load


def _dynaconf(project: Project) -> Callable[[], Any]:
    from dynaconf import Dynaconf
    from dynaconf.vendor.dotenv import load_dotenv

    base, production = project.root / ".env", project.root / ".env.production"
    first = next(iter(project.expected))

    def load():
        # Dynaconf reads one dotenv file into the process environment without
        # overriding it; reading the production file first makes it win.
        load_dotenv(production, override=False)
        settings = Dynaconf(envvar_prefix=False, load_dotenv=True, dotenv_path=str(base), root_path=str(project.root))
        settings.get(first)  # Dynaconf loads on first access
        return settings

    return load


def _dynaconf_values(settings, project: Project) -> dict[str, str]:
    return {k: str(settings.get(k)) for k in project.expected if settings.get(k) is not None}


def _pydantic_settings(project: Project) -> Callable[[], Any]:
    from pydantic import SecretStr, create_model
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Base(BaseSettings):
        model_config = SettingsConfigDict(env_file=(project.root / ".env", project.root / ".env.production"))

    fields = {k.lower(): (SecretStr if k in project.secrets else str, ...) for k in project.expected}
    model = create_model("ProjectSettings", __base__=Base, **fields)
    return model


def _pydantic_values(model, project: Project) -> dict[str, str]:
    found = {}
    for key in project.expected:
        value = getattr(model, key.lower())
        found[key] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return found


_environ_before: dict[str, str] = dict(os.environ)


def _restore_environ() -> None:
    """Undo what loading a dotenv file into ``os.environ`` did."""
    for key in [k for k in os.environ if k not in _environ_before]:
        del os.environ[key]


CONTENDERS = (
    Contender("envfence", "envfence", _envfence, _envfence_values, warm=True),
    Contender("envfence, load only", "envfence", _envfence_load_only, _envfence_values, warm=True),
    Contender("envfence, first open", "envfence", _envfence_load_only, _envfence_values, reset=_forget_parsed),
    Contender("python-dotenv", "dotenv", _dotenv, lambda values, project: dict(values)),
    Contender("python-dotenv, interpolate=False", "dotenv", _dotenv_plain, lambda values, project: dict(values)),
    Contender("dynaconf", "dynaconf", _dynaconf, _dynaconf_values, reset=_restore_environ),
    Contender("pydantic-settings", "pydantic_settings", _pydantic_settings, _pydantic_values),
)

#: What the report says beside a contender.
NOTES = {
    "envfence": "with validation (the report read)",
    "envfence, load only": "validation is computed when first read; a tool that only reads configuration, "
                           "opening again files it parsed before (unchanged bytes are not parsed again)",
    "envfence, first open": "load only, nothing parsed before: every file and the settings parsed, as in a "
                            "process's first session",
    "python-dotenv": "default: interpolates, copying the environment for every key (quadratic)",
    "python-dotenv, interpolate=False": "the reference: the same files parsed, no ${NAME} expansion",
}
