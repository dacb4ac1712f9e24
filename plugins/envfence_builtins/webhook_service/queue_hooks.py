"""The hook the ``webhook_receiver`` plugin offers: ``open_webhook_queue``, and its typed call.

Declared by the ``webhook_receiver`` plugin (``register_hookspecs``); a shared
store implements it with ``optionalhook=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


class QueueHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def open_webhook_queue(self, session: Session) -> Any:
        """Open the environment's webhook queue somewhere other than its tree.

        :param session: the open, prepared session.
        :returns: an object with the methods of the SQLite ``WebhookQueue``
            (``accept``, ``claim``, ``finish``, ``recover``, ``list``, ``get``,
            ``retry``, ``drop``, ``counts``, ``writable``, ``close``), or None
            to use the SQLite queue in the environment's tree.

        Stops at first non-None result. ``envfence serve``, ``worker`` and
        ``queue`` use what it returns.
        """


class QueueHooks(OfferedHooks):
    """Typed calls to the ``webhook_receiver`` plugin's hooks."""

    declared_by = "webhook_receiver"
    specs = QueueHookspecs

    def open_webhook_queue(self, *, session: Session) -> HookResult[Any]:
        """``open_webhook_queue``: a queue kept outside the tree (CONFIGURATION)."""
        return self._call("open_webhook_queue", session=session)
