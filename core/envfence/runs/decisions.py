"""DEBUG records of a run's decisions, for a profile with ``debug`` (development): production writes none.

Written to the run's log once its sinks are installed: how the environment
and the host's class were decided, each hook call since the process began
(which plugins answered, how long it took) and, for each guard, why it let
the run pass or what it found.
"""

from __future__ import annotations

from typing import Any


def log_decisions(session: Any, decision: Any, automation: str) -> None:
    """Write the DEBUG records of ``decision`` (a :class:`~envfence.runs.decide.Decision`) for ``automation``."""
    if not session.profile.debug:
        return
    log = session.logger(automation=automation, file_only=True)  # the log file's, never the screen's
    env, host = session.environment, session.host
    log.debug(f"decision: environment {env.name} decided by {env.method} ({env.evidence or 'no evidence'})")
    log.debug(f"decision: host {host.describe()}")
    calls = session.plugins.call_log
    for call in list(calls):
        answered = ", ".join(call.answered) or "no plugin answered"
        log.debug(f"decision: hook {call.hook} answered by {answered} in {call.seconds * 1000:.2f} ms")
    calls.clear()
    for line in guard_lines(session, decision, automation):
        log.debug(line)


def guard_lines(session: Any, decision: Any, automation: str) -> list[str]:
    """One line per guard (a plugin implementing ``pre_run_safety``): passed, and why, or what it found."""
    guards = [name for name, _ in session.plugins.implementations("pre_run_safety")]
    blocking = {id(f) for f in decision.blocking}
    lines = []
    for guard in guards:
        found = [f for f in decision.findings if f.plugin == guard]
        blocked = [f.code for f in found if id(f) in blocking]
        others = [f"{f.code} ({f.severity})" for f in found if id(f) not in blocking]
        if blocked:
            verdict = "forced past " + ", ".join(blocked) if decision.forced else "blocked by " + ", ".join(blocked)
            lines.append(f"decision: guard {guard} {verdict}")
        else:
            why = f"only {', '.join(others)}, nothing at error level" if others else "it found nothing that blocks"
            lines.append(f"decision: guard {guard} passed for {automation} in {session.environment.name}: {why}")
    return lines
