"""The automations of a session: collected once from the ``register_automations`` plugins.

:attr:`envfence.Session.automations` calls :func:`collect` the first time it is
read and keeps the answer; :func:`find` looks one up by name.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigurationError, UsageError
from .models import Automation


#: Longer names are refused: they are file names, log fields and schedule entries.
MAX_NAME = 100


def _control(char: str) -> bool:
    """A control or format character (Unicode category C*), or a line or paragraph separator (Zl, Zp).

    In ASCII those are exactly U+0000-U+001F and U+007F: a name in ASCII is
    judged without loading the Unicode database.
    """
    if char.isascii():
        return char < " " or char == "\x7f"
    import unicodedata

    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def name_problem(name: str) -> str | None:
    """What makes ``name`` unusable as an automation name, or None: the one naming rule, applied at load.

    An automation's name reaches log lines, mail subjects, HTML reports, lock
    and schedule files: a line break, another control or format character
    (a right-to-left override), ``<`` or ``>`` would forge or hide something
    there, so they are refused wherever the name comes from.
    """
    if not isinstance(name, str) or not name.strip():
        return "is empty"
    if name != name.strip():
        return "starts or ends with white space"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    for char in name:
        if char in "<>" or _control(char):
            shown = repr(char) if char in "<>" else f"U+{ord(char):04X}"
            if char in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029":
                shown = f"a line break ({shown})"
            return f"holds {shown}; names may not hold < >, line breaks or other control characters"
    return None


def collect(session: Any) -> dict[str, Automation]:
    """Every automation the plugins register, by name.

    A name registered twice is a :class:`ConfigurationError` naming both
    plugins: silently picking one would run the wrong job. So is a name that
    :func:`name_problem` refuses. A plugin that
    raises is one too (``register_automations``'s policy is ``CONFIGURATION``).
    """
    found: dict[str, Automation] = {}
    problems: list[tuple[str, str]] = []

    def register(automation: Automation) -> None:
        if not isinstance(automation, Automation):
            raise TypeError(f"register() takes an envfence.models.Automation, not {type(automation).__name__}")
        problem = name_problem(automation.name)
        if problem is not None:
            shown = str(automation.name).encode("unicode_escape").decode("ascii")  # a line break shows as \n, never breaks one
            problems.append((f"automation '{shown}' ({automation.plugin or '?'}) {problem}",
                             "rename it: letters, digits, spaces and punctuation other than < >"))
            return
        other = found.get(automation.name)
        if other is not None:
            problems.append((
                f"automation {automation.name!r} is registered twice ({other.plugin or '?'} and {automation.plugin or '?'})",
                "rename one of them",
            ))
            return
        found[automation.name] = automation

    session.plugins.register_automations(session=session, register=register)
    if problems:
        raise ConfigurationError(*problems[0])
    return dict(sorted(found.items()))


def installed_schedule(session: Any, automation: Automation) -> str | None:
    """The cron expression the host's scheduler fires ``automation`` at here, or None when it is not scheduled here."""
    found = installed_firing(session, automation)
    return found[0] if found else None


def installed_firing(session: Any, automation: Automation) -> tuple[str, str] | None:
    """``(expression, scheduler)``: how the host fires ``automation`` here, or None when it is not scheduled here.

    The schedule plugin owns ``[schedule]`` and answers through ``automation_state``:
    ``schedule.installed`` when it moves a schedule (``[schedule] stagger``),
    ``schedule.target`` when a scheduler other than cron runs it (systemd and
    Kubernetes fire otherwise when the clocks change). Otherwise, or with the
    plugin disabled, the declared expression is what is installed, as cron fires it.
    """
    declared = automation.schedule_for(session.environment.name)
    if not declared:
        return None
    expression, target = declared, "crontab"
    for state in session.plugins.automation_state(session=session, automation=automation).values:
        said = state.get("schedule") if isinstance(state.get("schedule"), Mapping) else {}
        expression = str(said.get("installed") or expression)
        target = str(said.get("target") or target)
    return expression, target


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
