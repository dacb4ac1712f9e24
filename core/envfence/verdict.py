"""The run's verdict in advance: what would stop ``envfence run`` of each automation here.

``envfence check`` adds these findings to the configuration's own, so that
``check`` passing means ``run`` of every automation of this environment
passes the guards: the ``pre_run_safety`` findings of a dry run of each
(declared settings missing, the host, targets, pauses, the maintenance
window, a disabled guard), and a lock held now (a warning: a run would wait
or be refused until it is free). An automation that does not run in this
environment (``environments = [...]``) is left out: its refusal here is the
rule, not a problem.

A finding every automation shares (the host, a disabled guard, validation
errors that refuse runs) is given once, for every automation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import slotted
from .models import Finding, RunRequest

def run_verdicts(session: Any) -> list[Finding]:
    """What would stop a run of each automation of this environment, as check findings."""
    from .runs.decide import guard_findings

    from .errors import EnvfenceError

    env = session.environment.name
    try:
        automations = session.automations
    except EnvfenceError:  # the settings of an automation are wrong: validation reports it, and no run starts
        return []
    mine = [a for a in automations.values() if a.allows(env) and not a.adhoc]
    by_text: dict[tuple[str, str, str], list[str]] = {}
    found: dict[tuple[str, str, str], Finding] = {}
    for automation in mine:
        for f in guard_findings(session, RunRequest(automation, dry_run=True)):
            if f.severity == "info":
                continue
            text = (f.code, f.message.replace(automation.name, "\0"), f.remediation.replace(automation.name, "\0"))
            by_text.setdefault(text, []).append(automation.name)
            found.setdefault(text, f)
        held = _lock_held(session, automation.name)
        if held is not None:
            by_text.setdefault(("LOCK_HELD", automation.name, ""), []).append(automation.name)
            found[("LOCK_HELD", automation.name, "")] = held
    return [_for(found[text], names, len(mine)) for text, names in by_text.items()]


def _for(finding: Finding, names: list[str], total: int) -> Finding:
    """``finding`` said of the automations it stops."""
    who = "every automation" if total > 1 and len(names) == total else ", ".join(names)
    if len(names) == 1 and names[0] in finding.message:
        return finding
    return slotted.evolve(finding, message=f"run of {who}: {finding.message}")


def _lock_held(session: Any, name: str) -> Finding | None:
    """``LOCK_HELD`` (a warning) when a run of ``name`` holds its lock now; read from /proc/locks, taking nothing."""
    from .runs.execute import lock_holder, lock_path

    paths = session.paths
    if paths is None:
        return None
    path = lock_path(paths, name)
    try:
        inode = os.stat(path, follow_symlinks=False).st_ino
    except OSError:
        return None
    if not _inode_locked(inode):
        return None
    pid, since = lock_holder(path)
    env = session.environment.name
    return Finding(
        code="LOCK_HELD",
        severity="warning",
        message=f"{name} is running in {env} now (pid {pid}, since {since}): a run now is refused (exit 3) until it ends",
        remediation=f"wait for it (`envfence --env {env} run {name} --wait`), or see `envfence --env {env} status`",
        plugin="runner",
    )


def _inode_locked(inode: int, table: Path = Path("/proc/locks")) -> bool:
    """True when the kernel's lock table holds a lock on ``inode`` (Linux; False where there is no table)."""
    try:
        lines = table.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF": the sixth field is major:minor:inode.
        if len(fields) > 5 and fields[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False
