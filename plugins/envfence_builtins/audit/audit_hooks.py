"""The hooks the ``audit`` plugin offers, and their typed calls.

``verify_audit_store``, for a trail kept outside the tree: a store that keeps a
second chain implements it. ``history_has_runs``: whether the environment's
run history shows runs (a trail missing beside runs was removed), answered
by the plugin keeping the history. Declared by the ``audit`` plugin
(``register_hookspecs``); implemented with ``optionalhook=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


class AuditHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.FINDING)
    @hookspec
    def verify_audit_store(self, session: Session) -> Mapping[str, Any] | None:
        """Check the environment's audit chain kept outside its tree (``envfence audit verify``).

        :param session: the open session.
        :returns: ``{"store": name, "records": n, "ok": bool, "broken": {"seq": n, "reason": text} | None}``,
            or None when the plugin keeps no such trail.

        All results are collected; any that is not ok makes ``audit verify`` exit
        1, and so does a plugin that raises (reported as a broken trail naming it).
        """


    @failure_policy(OnError.LOG)
    @hookspec(firstresult=True)
    def history_has_runs(self, session: Session) -> bool | None:
        """Whether the environment's run history shows any run, read without changing it.

        :param session: the open session.
        :returns: True or False, or None when you keep no history (or cannot read it:
            its own plugin reports that).

        Stops at first non-None result. Read only: marking abandoned runs
        would audit, and the trail is what is being checked.
        """


class AuditHooks(OfferedHooks):
    """Typed calls to the ``audit`` plugin's hooks: ``AuditHooks(session.plugins).verify_audit_store(...)``."""

    declared_by = "audit"
    specs = AuditHookspecs

    def verify_audit_store(self, *, session: Session) -> HookResult[Mapping[str, Any]]:
        """``verify_audit_store``: each kept chain's check (FINDING: the caller reports a failure as a broken trail)."""
        return self._call("verify_audit_store", session=session)

    def history_has_runs(self, *, session: Session) -> HookResult[bool]:
        """``history_has_runs``: the first answer (LOG: a plugin that raises is logged and counts as no answer)."""
        return self._call("history_has_runs", session=session)
