"""``envfence health``: is this environment well? Nagios plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

Checks, per environment: each scheduled automation's last expected firing
against its last run (a missed run), the last run's status, the error rate,
duration and memory against ``[thresholds]``, a lock held longer than
``[health] max_lock_age`` (default 6h), free disk in the tree against
``[health] min_free_disk`` (default 10%; critical below half of it), memory
pressure on the host (Linux PSI, ``/proc/pressure/memory``, where present)
against ``[health] max_memory_pressure`` (default 10% of the last minute
stalled; critical at twice it), and what other plugins check of their own state
through ``health_checks`` (the audit trail's chain, from the ``audit`` plugin).
One summary line comes first, as monitoring expects.
"""

from __future__ import annotations

from envfence import hookimpl

from envfence_builtins.operations.health_checks import SECTION, TABLE, run_checks


@hookimpl
def declare_tables():
    """The ``[health]`` table."""
    return [TABLE]


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``health_alerts``: the plugin that sends alerts takes ``health --alert``'s checks."""
    from envfence_builtins.operations.health_hooks import HealthHookspecs

    register(HealthHookspecs)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence health``."""
    from envfence_builtins.operations.health_cli import health

    cli.add_command(health)


@hookimpl(optionalhook=True)  # declared by the deploy plugin; absent with -p no:deploy
def post_deploy(session, deployment) -> list:
    """The health check after ``envfence deploy``: a CRITICAL check fails the deployment, a WARNING or UNKNOWN is told."""
    from envfence.models import Finding

    found = []
    for c in run_checks(session):
        if c.state == "OK":
            continue
        severity = "error" if c.state == "CRITICAL" else "warning"
        found.append(Finding(f"HEALTH_{c.state}", severity, f"health after deployment {deployment['id']}: {c.name}: {c.message}",
                             "fix it, then deploy again (`envfence health` shows every check)", plugin=SECTION))
    return found
