"""The hooks the ``store`` plugin offers: what ``envfence store import`` copies from the environment's tree.

Declared by the ``store`` plugin (``register_hookspecs``); the plugins that
keep state in the tree answer with ``optionalhook=True``: ``history`` its
finished runs, ``audit`` its file trail's records. With either disabled,
``store import`` says it read nothing of that kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


class StoreHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def local_runs(self, session: Session) -> list[Mapping[str, Any]] | None:
        """The environment's finished runs as your history keeps them in the tree, one row (column -> value) each.

        :param session: the open session.
        :returns: the rows (a run still going is left out: it is imported once
            it ends), or None when you keep no history in the tree.

        Stops at first non-None result.
        """

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def local_audit_records(self, session: Session) -> Mapping[str, Any] | None:
        """The environment's file trail, verified: ``{"trail": path, "records": [record, ...]}``, oldest first.

        :param session: the open session.
        :returns: the records as written (numbers and hashes kept), ``records``
            empty when there is no trail yet; or None when you keep no trail.

        Stops at first non-None result. Raise
        :class:`~envfence.errors.ConfigurationError` for a trail that does not
        verify: a broken trail is never copied.
        """


class StoreHooks(OfferedHooks):
    """Typed calls to the ``store`` plugin's hooks: ``StoreHooks(session.plugins).local_runs(...)``."""

    declared_by = "store"
    specs = StoreHookspecs

    def local_runs(self, *, session: Session) -> HookResult[list[Mapping[str, Any]]]:
        """``local_runs``: the history's rows (CONFIGURATION)."""
        return self._call("local_runs", session=session)

    def local_audit_records(self, *, session: Session) -> HookResult[Mapping[str, Any]]:
        """``local_audit_records``: the verified file trail (CONFIGURATION: a broken trail stops the import)."""
        return self._call("local_audit_records", session=session)
