"""Deciding whether a run may go ahead: the safety guards, then the override policy.

``pre_run_safety`` findings at error level block the run. Forcing past them
(``--force``) needs a ``--reason`` in a strict profile and, on a development
terminal, the environment's name typed back; the decision is then recorded
(:func:`envfence.runs.record.forced`). A *confirmable* finding (a suspect host
name, a malformed credential) is asked about at a development terminal even
without ``--force``; without a terminal, forcing past it needs ``--reason``
in every profile.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import slotted
from ..models import Finding, RunRequest


@slotted.frozen
class Decision:
    """What the guards found, which of those block, and why forcing was refused (None: the run goes ahead)."""

    findings: tuple[Finding, ...] = ()
    blocking: tuple[Finding, ...] = ()
    refusal: str | None = None
    #: The request as it goes on: its ``--reason`` masked (the screen, the trail, the history and trackers show it).
    request: RunRequest | None = None

    @property
    def forced(self) -> bool:
        """True when the run goes ahead past blocking findings."""
        return bool(self.blocking) and self.refusal is None


def guard_findings(session: Any, request: RunRequest) -> list[Finding]:
    """The ``pre_run_safety`` findings for ``request``; a guard that raises blocks (``SAFETY_GUARD_FAILED``)."""
    # Validation is lazy; a run always validates first, so that its
    # failures reach the audit trail in every profile, strict or not.
    session.report.findings
    result = session.plugins.pre_run_safety(session=session, request=request)
    failed = result.findings("SAFETY_GUARD_FAILED", "the safety guard could not decide: ")
    return list(session.redact_findings(disabled_guards(session) + result.flat() + failed))


def disabled_guards(session: Any) -> list[Finding]:
    """``GUARD_DISABLED`` when a plugin implementing ``pre_run_safety`` is disabled: going without a guard is an override.

    Audited as ``plugins.disabled`` with the names, whatever the decision.
    """
    records = session.plugins.disabled_guards()
    if not records:
        return []
    names = [r.name for r in records]
    session.audit("plugins.disabled", names=names, how=[r.reason for r in records])
    override = "--force" + (" --reason TEXT" if session.profile.strict else "")
    return [
        Finding(
            code="GUARD_DISABLED",
            severity="error",
            message=(
                f"the safety guard(s) {', '.join(names)} are disabled ({'; '.join(sorted({r.reason for r in records}))}): "
                "the run would go without the checks they make"
            ),
            remediation=(
                "enable them (drop -p no:NAME, clear ENVFENCE_DISABLE_PLUGINS, or list them in ENVFENCE_PLUGINS); "
                f"to run without them, pass {override} (the override is recorded in the audit trail)"
            ),
            plugin=names[0],
        )
    ]


#: The plugin that keeps the audit trail: forcing is refused while it is disabled.
#: (Another store of audit events, such as a database, may be switched off alone.)
TRAIL_PLUGIN = "audit"


def refusal(
    session: Any, request: RunRequest, blocking: tuple[Finding, ...], confirm: Callable[[str, tuple[Finding, ...]], bool] | None
) -> str | None:
    """Why forcing past ``blocking`` is refused, or None when the run may go ahead forced."""
    env = session.environment.name
    confirmable = all(f.confirmable for f in blocking)
    if not request.force:
        # A person at a development terminal may confirm past a suspect host or a malformed credential.
        if confirmable and confirm is not None and not request.dry_run and not session.profile.strict and _trail_ok(session):
            return None if confirm(env, blocking) else f"going on was not confirmed (the environment's name {env!r} was not typed)"
        return "; ".join(f.message for f in blocking)
    if not _trail_ok(session):
        silenced = [r for r in session.plugins.disabled_implementing("audit_event") if r.name == TRAIL_PLUGIN]
        # Every override is on the record; with the trail switched off it could not be.
        names = ", ".join(r.name for r in silenced) or "every plugin that records audit events"
        return (
            f"{names} is disabled, so the override could not be recorded; "
            "enable them (drop -p no:NAME, clear ENVFENCE_DISABLE_PLUGINS, or list them in ENVFENCE_PLUGINS)"
        )
    if _bad_reason(request):
        return _bad_reason(request)
    if not (request.reason or "").strip():
        if session.profile.strict:
            return f"--force in {env} (a strict profile) needs --reason TEXT, which the audit trail records"
        if any(f.confirmable for f in blocking) and confirm is None:
            codes = ", ".join(sorted({f.code for f in blocking if f.confirmable}))
            return f"--force past {codes} without a person at a terminal needs --reason TEXT, which the audit trail records"
    # The person is shown what is being overridden before being asked to type the name.
    if confirm is not None and not request.dry_run and not confirm(env, blocking):
        return f"forcing was not confirmed (the environment's name {env!r} was not typed)"
    return None


def _trail_ok(session: Any) -> bool:
    """True when an override can be recorded: the trail's plugin is on and something records audit events."""
    silenced = [r for r in session.plugins.disabled_implementing("audit_event") if r.name == TRAIL_PLUGIN]
    return not silenced and bool(session.plugins.implementations("audit_event"))


def decide(session: Any, request: RunRequest, confirm: Callable[[str, tuple[Finding, ...]], bool] | None = None) -> Decision:
    """The guards' findings and the override policy's answer for ``request``."""
    if request.reason:
        request = slotted.evolve(request, reason=session.redactor()(request.reason))
    findings = tuple(guard_findings(session, request))
    blocking = tuple(f for f in findings if f.severity == "error")
    answer = refusal(session, request, blocking, confirm) if blocking else _bad_reason(request)
    return Decision(findings, blocking, answer, request)


def _bad_reason(request: RunRequest) -> str | None:
    """Why ``--reason`` is refused: a newline in it would forge a line of its own in `status` and the log."""
    if any(not c.isprintable() for c in request.reason or ""):
        return "--reason must be one line of text, without a newline or control character"
    return None
