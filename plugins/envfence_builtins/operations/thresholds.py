"""The ``thresholds`` plugin: ``envfence check`` reads the ``[thresholds]`` table.

The limits themselves, and what crossed them, are the core's
:mod:`envfence.thresholds`, which ``health``, ``alerts``, ``report`` and
``advise`` read. This plugin says when a table does not parse or names no
automation (``THRESHOLD_INVALID``), and which limits apply here, each with the
table that set it (``THRESHOLDS_EFFECTIVE``).
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding
from envfence.thresholds import SECTION, effective_text, limits, parse_size


def size_problem(value) -> str | None:
    """Why ``value`` is no size, or None (a declared key's ``check``)."""
    try:
        parse_size(value, "")
    except ConfigurationError:
        return "is not a size (\"512MB\", \"2GB\", or kilobytes)"
    return None


def _thresholds_table():
    from envfence.settings_kinds import duration, duration_problem, either, flag, number, text, whole
    from envfence.settings_tables import Table

    table = Table(SECTION, "limits a run is held to, for every automation (\"*\") or one, per environment too")
    # Extra keys: min_<metric> / max_<metric> bounds of a job's own metrics, and per-environment sub-tables.
    one = table.add_each("", "the limits of one automation (or \"*\" for all)", names=r"[\s\S]+",
                         names_hint="an automation's name or *", extra=True)
    one.add("max_duration", duration(example="30m"), None, "a run longer than this is a crossing", check=duration_problem)
    one.add("max_memory", either(text(example="512MB"), whole(minimum=1)), None, "peak memory (a size, or kilobytes)",
            check=size_problem)
    one.add("max_error_rate", number(minimum=0, example=0.2), None, "the share of failed runs over error_window",
            check=lambda v: f"must be at most 1, not {v!r}" if v > 1 else None)
    one.add("error_window", whole(minimum=1, example=10), None, "how many recent runs max_error_rate counts")
    one.add("expected_every", duration(example="1h"), None, "a run is missing when none started within this",
            check=duration_problem)
    one.add("grace", duration(example="10m"), None, "slack added to expected_every", check=duration_problem)
    one.add("alert_on_failure", flag(), None, "alert on every failed run (default: in production-based environments)")
    return table


#: ``[thresholds]``, declared once for ``check``, the schema and the docs.
TABLE = _thresholds_table()


@hookimpl
def declare_tables():
    """The ``[thresholds]`` table."""
    return [TABLE]


@hookimpl
def validate(session) -> list[Finding]:
    """Every ``[thresholds]`` table parses and names a known automation (or ``"*"``); then the effective limits here.

    ``THRESHOLDS_EFFECTIVE`` (info) says, for each automation that may run in
    this environment and has limits, what they are and which table set each.
    """
    table = session.settings.section(SECTION)
    try:
        known = session.automations
    except ConfigurationError:
        return []  # the automations plugin reports it
    findings = []
    for name in table:
        try:
            if name != "*" and name not in known:
                raise ConfigurationError(f"{session.settings.source}: {SECTION}.{name}: no automation named {name!r}",
                                         f"known: {', '.join(known) or 'none'}")
            limits(session.settings, name)
        except ConfigurationError as exc:
            findings.append(Finding("THRESHOLD_INVALID", "error", exc.message, exc.hint, key=f"{SECTION}.{name}", plugin=SECTION))
    if findings:
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
