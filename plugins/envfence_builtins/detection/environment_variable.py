"""Detect the environment from the ``ENVIRONMENT`` variable (its name is a setting)."""

from __future__ import annotations

from typing import Mapping

from envfence import hookimpl
from envfence.models import Environment
from envfence.settings import name_shaped


@hookimpl(tryfirst=True)
def detect_environment(settings, environ: Mapping[str, str]) -> Environment | None:
    """Name the environment from the variable, through the declared aliases.

    An empty variable is ignored; a value that names no declared environment
    is an error listing the declared ones.
    """
    variable = settings.environment_variable
    value = environ.get(variable, "").strip()
    if not value:
        return None
    # A value that may be a token pasted by mistake is never echoed (no redactor exists yet).
    name = settings.require(value, f"{variable}={value}" if name_shaped(value) else f"the {variable} variable")
    return Environment(name, f"{variable} variable", f"{variable}={value}")
