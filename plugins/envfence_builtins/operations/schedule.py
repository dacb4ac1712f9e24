"""Schedules that run: the environment's ``schedule`` entries as a crontab, systemd units or a Kubernetes CronJob.

Every entry runs ``envfence --env NAME -q run AUTOMATION`` from the project
root. Settings, all optional::

    [schedule]
    stagger = true                     # environments sharing a host never fire in the same minute
    envfence = "/opt/app/.venv/bin/envfence"   # the command entries run (default: this installation's)
    image = "registry.example/app:1.4" # Kubernetes only: the image that holds the project
    command = ["envfence"]             # Kubernetes only: envfence inside the image
    namespace = "jobs"                 # Kubernetes only
    crontab = "crontab"                # the crontab program `schedule install` talks to

``envfence schedule`` prints the artefact; ``schedule install`` merges the
crontab block (between marker lines) into the user's crontab, ``schedule
diff`` shows drift between what is installed and what is declared, and
``schedule remove`` takes the block out.

Times are read in one zone everywhere, :func:`zone` (``CRON_TZ``, else the
project's ``timezone``, else the machine's own): a named zone is written into
every artefact (``CRON_TZ=``, ``OnCalendar=… Europe/Paris``, ``timeZone``) so
that the host's scheduler fires when ``list`` and ``health`` say it does.
"""

from __future__ import annotations

from typing import Any

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding

# The schedules' code (cron, the schedulers' dialects, cronsim) is imported by the hooks that read a schedule:
# a project that schedules nothing never loads it.


@hookimpl
def declare_tables():
    """The ``[schedule]`` table."""
    from envfence_builtins.operations.schedule_entries import TABLE

    return [TABLE]


@hookimpl
def validate(session) -> list[Finding]:
    """Schedules of environments sharing a host that fire together, a scheduled automation no scheduler can be given,
    a schedule the target cannot say, a broken ``[schedule]`` table, staggered schedules that still collide."""
    try:
        session.automations
    except ConfigurationError:
        return []  # a broken [automations] table is its owner's to report (AUTOMATION_INVALID), once
    if not session.settings.section("schedule") and not any(
        automation.schedule_for(env) for automation in session.automations.values() for env in session.settings.environments
    ):
        return []  # nothing is scheduled anywhere and [schedule] is absent: there is nothing to judge
    from envfence_builtins.operations.schedule_collisions import schedule_collisions
    from envfence_builtins.operations.schedule_entries import SECTION, collisions, daylight_saving, options, unsupported

    try:
        stagger = options(session.settings).get("stagger")
        found = schedule_collisions(session, bool(stagger)) + unsupported(session)
        if any(f.severity == "error" for f in found) or not session.settings.section(SECTION):
            return found
        found += daylight_saving(session)
        return found + collisions(session) if stagger else found
    except ConfigurationError as exc:
        return [Finding("SCHEDULE_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]


@hookimpl
def automation_state(session, automation) -> dict[str, Any] | None:
    """``schedule``: the expression installed here when ``[schedule] stagger`` moved the declared one, and the
    scheduler that fires it when it is not cron (``target``).

    ``list``'s next firing, ``health``'s missed-run check and ``advise`` read the firing times from it
    (:func:`envfence.automations.installed_firing`): the core does not read ``[schedule]``.
    """
    if not automation.schedule_for(session.environment.name):
        return None
    from envfence_builtins.operations.schedule_entries import entries, options, target

    try:
        said = {} if (how := target(session)) == "crontab" else {"target": how}
        if options(session.settings).get("stagger"):
            entry = next((e for e in entries(session) if e.automation == automation.name), None)
            if entry is not None and entry.offset:
                said.update(declared=entry.declared, installed=entry.expression, offset=entry.offset)
    except ConfigurationError:
        return None  # check reports it
    return {"schedule": said} if said else None


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``scheduled_commands`` (envfence commands of other plugins, ``backup``, run beside the automations) and
    ``share_host`` (the plugin that knows the hosts says which environments may meet on one machine)."""
    from envfence_builtins.operations.schedule_hooks import ScheduleHookspecs

    register(ScheduleHookspecs)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence schedule`` (show, install, diff, remove)."""
    from envfence_builtins.operations.schedule_cli import schedule

    cli.add_command(schedule)
