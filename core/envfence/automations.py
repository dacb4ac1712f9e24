"""The automations of a session: collected once from the ``register_automations`` plugins.

:attr:`envfence.Session.automations` calls :func:`collect` the first time it is
read and keeps the answer; :func:`find` looks one up by name.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError, UsageError
from .models import Automation


def collect(session: Any) -> dict[str, Automation]:
    """Every automation the plugins register, by name.

    A name registered twice is a :class:`ConfigurationError` naming both
    plugins: silently picking one would run the wrong job. A plugin that
    raises is one too (``register_automations``'s policy is ``CONFIGURATION``).
    """
    found: dict[str, Automation] = {}
    problems: list[str] = []

    def register(automation: Automation) -> None:
        if not isinstance(automation, Automation):
            raise TypeError(f"register() takes an envfence.models.Automation, not {type(automation).__name__}")
        other = found.get(automation.name)
        if other is not None:
            problems.append(
                f"automation {automation.name!r} is registered twice ({other.plugin or '?'} and {automation.plugin or '?'})"
            )
            return
        found[automation.name] = automation

    session.plugins.register_automations(session=session, register=register)
    if problems:
        raise ConfigurationError(problems[0], "rename one of them")
    return dict(sorted(found.items()))


def find(session: Any, name: str) -> Automation:
    """The automation called ``name``, or a :class:`UsageError` listing the known ones."""
    automations = session.automations
    if name in automations:
        return automations[name]
    import difflib

    close = difflib.get_close_matches(name, list(automations), n=1)
    known = ", ".join(automations) or "none"
    raise UsageError(
        f"no automation named {name!r} (known: {known})",
        f"did you mean {close[0]!r}?" if close else "see `envfence list`, or declare it under [automations] in the settings",
    )
