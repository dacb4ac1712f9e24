"""The ``thresholds`` plugin: ``envfence check`` reads the ``[thresholds]`` table.

The limits themselves, and what crossed them, are the core's
:mod:`envfence.thresholds`, which ``health``, ``alerts``, ``report`` and
``advise`` read; the core declares the table it reads (a value of the wrong
kind is ``check``'s ``SETTINGS_INVALID``). This plugin says when a table does not parse or names no
automation (``THRESHOLD_INVALID``), and which limits apply here, each with the
table that set it (``THRESHOLDS_EFFECTIVE``).
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding
from envfence.thresholds import SECTION, effective_text, limits


@hookimpl
def validate(session) -> list[Finding]:
    """Every ``[thresholds]`` table parses and names a known automation (or ``"*"``); then the effective limits here.

    ``THRESHOLDS_EFFECTIVE`` (info) says, for each automation that may run in
    this environment and has limits, what they are and which table set each.
    """
    from envfence.settings import CORE

    declared = CORE.tables[SECTION]
    table = declared.read(session.settings).raw
    try:
        known = session.automations
    except ConfigurationError:
        return []  # the automations plugin reports it
    findings = []
    refused = False
    for name in table:
        if any(not p.unknown for p in declared.each[""].one(name, table[name], f"{SECTION}.{name}")):
            refused = True  # a value the core's declaration refuses: check's own SETTINGS_INVALID names it, once
            continue
        try:
            if name != "*" and name not in known:
                raise ConfigurationError(f"{session.settings.source}: {SECTION}.{name}: no automation named {name!r}",
                                         f"known: {', '.join(known) or 'none'}")
            limits(session.settings, name)
        except ConfigurationError as exc:
            findings.append(Finding("THRESHOLD_INVALID", "error", exc.message, exc.hint, key=f"{SECTION}.{name}", plugin=SECTION))
    if findings or refused:
        return findings
    env = session.environment.name
    for name, automation in known.items():
        if not automation.allows(env):
            continue
        shown = effective_text(limits(session.settings, name, env))
        if shown:
            findings.append(Finding("THRESHOLDS_EFFECTIVE", "info", f"{name} in {env}: {shown}",
                                    f"override per environment in [{SECTION}.{name}.{env}]", key=f"{SECTION}.{name}", plugin=SECTION))
    return findings
