"""Maintenance windows and pauses: runs refused (exit 3, audited) while one is in force, unless forced.

Windows are declared per environment, in the ``[maintenance]`` table::

    [maintenance]
    timezone = "Europe/Paris"                     # default: the zone schedules are read in
    production = ["sun 02:00-04:00", "mon-fri 23:30-00:15"]

A window is days (``sun``, ``mon-fri``, ``sat,sun``, ``daily``) and a time
range; a range that ends before it starts runs past midnight. Pauses are
set by ``envfence pause AUTOMATION|--all [--until TIME] --reason TEXT`` and
lifted by ``envfence resume``; they live in ``<tree>/state/pauses.json``.
"""

from __future__ import annotations

from typing import Any

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding

from envfence_builtins.operations.maintenance_windows import ALL, SECTION, TABLE, open_window, pause_of, pauses, windows, zone


@hookimpl
def declare_tables():
    """The ``[maintenance]`` table."""
    return [TABLE]


@hookimpl
def pre_run_safety(session, request) -> list[Finding]:
    """Refuse a run of a paused automation, and any run inside the environment's maintenance window."""
    from envfence.errors import EnvfenceError

    env, name = session.environment.name, request.automation.name
    findings = []
    try:
        current = pauses(session)
    except EnvfenceError as exc:  # the pauses cannot be read: refuse, as a pause would
        return [Finding("AUTOMATION_PAUSED", "error", f"cannot tell whether {name} is paused in {env}: {exc.message}",
                        f"{exc.hint}; or pass --force --reason TEXT (the override is recorded in the audit trail)", plugin=SECTION)]
    pause = current.get(name) or current.get(ALL)
    if pause is not None:
        until = f"until {pause['until']}" if pause.get("until") else "until resumed"
        which = f"{name} is" if name in current else "every automation is"
        findings.append(
            Finding(
                "AUTOMATION_PAUSED", "error", f"{which} paused in {env} {until} (by {pause.get('by')}: {pause.get('reason')})",
                f"resume it with `envfence --env {env} resume {name}`",
                plugin=SECTION,
            )
        )
    try:
        found = open_window(session.settings, env)
    except ConfigurationError as exc:
        return [*findings, Finding("MAINTENANCE_WINDOW_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    if found is not None:
        window, closes = found
        findings.append(
            Finding(
                "MAINTENANCE_WINDOW", "error",
                f"{env} is in its maintenance window {window.text!r} ({getattr(zone(session.settings), 'key', 'local time')}) until {closes:%Y-%m-%d %H:%M} UTC",
                "run it after the window",
                key=SECTION, plugin=SECTION,
            )
        )
    return findings


@hookimpl
def validate(session) -> list[Finding]:
    """Every declared window parses, and the time zone exists."""
    if not TABLE.read(session.settings):
        return []
    try:
        zone(session.settings)
        for env in session.settings.environments:
            windows(session.settings, env)
    except ConfigurationError as exc:
        return [Finding("MAINTENANCE_WINDOW_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    return []


@hookimpl
def automation_state(session, automation) -> dict[str, Any] | None:
    """``paused``: until when, why and by whom, when the automation is paused here."""
    pause = pause_of(session, automation.name)
    if pause is None:
        return None
    return {"paused": {"until": pause.get("until"), "reason": pause.get("reason"), "by": pause.get("by")}}


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence pause`` and ``envfence resume``."""
    from envfence_builtins.operations.maintenance_cli import pause, resume

    cli.add_command(pause)
    cli.add_command(resume)
