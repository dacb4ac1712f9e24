"""The hooks the ``alerts`` plugin offers to other plugins, and their typed calls.

``alert`` lets a plugin deliver an alert through its own channel (Slack,
a pager); ``hold_state`` lets a shared store keep the alerts' state where
every host sees it. Declared by the ``alerts`` plugin (``register_hookspecs``),
so with ``-p no:alerts`` neither exists; an implementation in another plugin
is marked ``optionalhook=True``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.models import Alert
    from envfence.pipeline import Session


class AlertHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.FINDING)
    @hookspec
    def alert(self, session: Session, alert: Alert, channels: tuple[str, ...]) -> list[str] | None:
        """Deliver an alert (a threshold crossed, or its recovery) through your channel.

        :param session: the open session.
        :param alert: the :class:`~envfence.models.Alert`; its message is redacted.
        :param channels: the channel names the environment's escalation asks for
            (``[alerts.escalation]``); deliver only when yours is among them.
        :returns: the names of the channels delivered to, or None when none of
            ``channels`` is yours.

        All results are collected. Raise when delivery failed: the alert is kept
        and retried on the next run; the others' deliveries are not repeated.
        """

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def hold_state(self, session: Session, name: str, write: bool) -> AbstractContextManager[dict[str, Any]] | None:
        """Hold an environment's named state (``alerts``) where every host sees it.

        :param session: the open session.
        :param name: the state's name, the plugin that owns it.
        :param write: True for a read-modify-write: holders queue behind each
            other across hosts, and the value is saved when the block ends
            without an exception; False to read only.
        :returns: a context manager whose value is the state (a dict, empty
            when none was saved), changed in place by the holder; or None to
            let the owning plugin keep it in its own file.

        Stops at first non-None result.
        """


class AlertHooks(OfferedHooks):
    """Typed calls to the ``alerts`` plugin's hooks: ``AlertHooks(session.plugins).alert(...)``."""

    declared_by = "alerts"
    specs = AlertHookspecs

    def alert(self, *, session: Session, alert: Alert, channels: tuple[str, ...]) -> HookResult[list[str]]:
        """``alert``: the channels each plugin delivered to (FINDING: the caller keeps the alert and retries)."""
        return self._call("alert", session=session, alert=alert, channels=channels)

    def hold_state(self, *, session: Session, name: str, write: bool) -> HookResult[AbstractContextManager[dict[str, Any]]]:
        """``hold_state``: the named state held where every host sees it (CONFIGURATION)."""
        return self._call("hold_state", session=session, name=name, write=write)
