"""The hook the ``advise`` plugin offers: ``advice``, each plugin's recommendations from what it knows, and :class:`Advice`.

Declared by the ``advise`` plugin (``register_hookspecs``), so with
``-p no:advise`` it does not exist (``envfence report`` then carries no
advice). The ``advise`` plugin answers it from the run history (durations,
limits, metrics, retries, the disk, schedules piling up); the ``alerts``
plugin answers it about environments nobody is alerted for, with
``optionalhook=True``. ``envfence advise`` and the report call it.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from envfence import slotted
from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


@slotted.frozen
class Advice:
    """One recommendation: a stable ``code``, what it concerns, the numbers behind it, and what acts on it."""

    code: str
    environment: str
    automation: str | None
    message: str
    action: str  #: the setting to change or the command to run
    numbers: dict[str, Any] = slotted.field(factory=dict)


class AdviceHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec
    def advice(self, session: Session, now: _dt.datetime) -> list[Advice] | None:
        """Recommend changes from what your plugin knows (its history, its settings).

        :param session: the open session of the environment advised on.
        :param now: the moment the advice is for (timezone-aware UTC).
        :returns: :class:`Advice` items, or None. Advice about the settings as a
            whole (not one environment's) may come for each environment asked;
            the callers show it once.

        All results are collected. A plugin that raises stops the command, naming it.
        """


class AdviceHooks(OfferedHooks):
    """Typed calls to the ``advise`` plugin's hook: ``AdviceHooks(session.plugins).advice(...)``."""

    declared_by = "advise"
    specs = AdviceHookspecs

    def advice(self, *, session: Session, now: _dt.datetime) -> HookResult[list[Advice]]:
        """``advice``: each plugin's recommendations (CONFIGURATION)."""
        return self._call("advice", session=session, now=now)
