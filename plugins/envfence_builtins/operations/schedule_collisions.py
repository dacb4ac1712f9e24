"""Schedules of different environments that fire in the same minute on one machine (``SCHEDULE_COLLISION``).

Part of the ``schedule`` plugin: without ``[schedule] stagger``, ``envfence
check`` warns of automations of environments sharing a host (see
:func:`envfence_builtins.operations.schedule_hooks.share_host`) that are scheduled
at the same time.
"""

from __future__ import annotations

from typing import Any

from envfence.models import Finding


def schedule_collisions(session, stagger: bool = False) -> list[Finding]:
    """A warning for schedules in different environments sharing a host that fire at the same minute.

    Environments on machines of their own never compete (see
    :func:`envfence_builtins.operations.schedule_hooks.share_host`). Schedules are grouped by
    their five fields (the same fields fire at the same times): the slots of a
    group joined by shared hosts are one warning naming them all, and two
    groups are compared once, so 50 environments on one schedule cost one
    comparison and one warning, not 1,225 of each. With ``stagger`` (``[schedule] stagger``, read by
    the schedule plugin from its table) there are none to say here.
    """
    from envfence.cron import CronError, parse

    from envfence_builtins.operations.schedule_hooks import share_host

    settings = session.settings
    if stagger:
        return []  # the schedule plugin moves them apart and reports what still meets (SCHEDULE_STAGGER_COLLISION)
    shared = {(a, b) for a in settings.environments for b in settings.environments if share_host(session, a, b)}

    groups: dict[str, list[tuple[str, str, Any]]] = {}
    for automation in session.automations.values():
        for env in settings.environments:
            expression = automation.schedule_for(env)
            if expression:
                try:
                    cron = parse(expression)
                except CronError:
                    continue  # an automation registered by a plugin with a bad schedule: its plugin's problem
                groups.setdefault(cron.fields, []).append((automation.name, env, cron))
    findings = []
    texts = list(groups)
    for i, text in enumerate(texts):
        group = groups[text]
        if (when := group[0][2].common_time(group[0][2])) is not None:
            findings += [_collision(together, when) for together in _sharing(group, shared)]
        for other in texts[i + 1 :]:
            when = group[0][2].common_time(groups[other][0][2])
            if when is not None:
                findings += [_collision([a, b], when) for a in group for b in groups[other]
                             if a[1] != b[1] and (a[1], b[1]) in shared]
    return findings


def _sharing(slots: list[tuple[str, str, Any]], shared: set[tuple[str, str]]) -> list[list[tuple[str, str, Any]]]:
    """``slots`` (firing together) joined by environments sharing a host; those spanning two environments or more."""
    joined = {i: {i} for i in range(len(slots))}
    for i, a in enumerate(slots):
        for j in range(i + 1, len(slots)):
            if slots[j][1] != a[1] and (a[1], slots[j][1]) in shared and joined[i] is not joined[j]:
                union = joined[i] | joined[j]
                for k in union:
                    joined[k] = union
    seen, out = set(), []
    for members in joined.values():
        key = min(members)
        if key not in seen and len({slots[k][1] for k in members}) > 1:
            seen.add(key)
            out.append([slots[k] for k in sorted(members)])
    return out


def _collision(slots: list[tuple[str, str, Any]], when) -> Finding:
    """The warning for ``slots`` (automation, environment, cron) that all fire at ``when``."""
    shown = [f"{name} in {env} ({cron.expression!r})" for name, env, cron in slots[:6]]
    if len(slots) > 6:
        shown[-1] = f"{len(slots) - 5} more"
    return Finding(
        code="SCHEDULE_COLLISION",
        severity="warning",
        message=(
            f"{', '.join(shown[:-1])} and {shown[-1]} are scheduled at the same time, e.g. {when:%a %d %b %H:%M}"
        ),
        remediation="stagger them: give each environment its own time, "
        'e.g. schedule = { development = "30 * * * *", production = "0 2 * * *" }',
        key=f"automations.{slots[0][0]}.schedule",
        plugin="schedule",
    )
