"""The hook the ``schedule`` plugin offers: envfence commands of other plugins, run by the host scheduler.

Declared by the ``schedule`` plugin (``register_hookspecs``), so with
``-p no:schedule`` it does not exist; an implementation in another plugin is
marked ``optionalhook=True``. The ``backup`` plugin answers it with
``envfence backup`` at ``[backup] schedule``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


class ScheduleHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec
    def scheduled_commands(self, session: Session, environment: str) -> list[tuple[str, str, tuple[str, ...]]] | None:
        """Envfence commands your plugin wants the host scheduler to run in ``environment``, beside its automations.

        :param session: the open session (its settings; its environment may be another one).
        :param environment: the environment whose schedule is being written.
        :returns: ``(name, cron expression, envfence arguments)`` for each, e.g.
            ``("envfence-backup", "0 2 * * *", ("backup",))``: the entry runs
            ``envfence --env ENVIRONMENT -q backup``, is named like an
            automation in units and CronJobs, and takes no ``[resources]``.
            None or an empty list when there is nothing to schedule.

        All results are collected. Raise :class:`~envfence.errors.ConfigurationError`
        for a bad setting: ``schedule`` stops with it.
        """


class ScheduleHooks(OfferedHooks):
    """Typed calls to the ``schedule`` plugin's hook: ``ScheduleHooks(session.plugins).scheduled_commands(...)``."""

    declared_by = "schedule"
    specs = ScheduleHookspecs

    def scheduled_commands(self, *, session: Session, environment: str) -> HookResult[list[tuple[str, str, tuple[str, ...]]]]:
        """``scheduled_commands``: each plugin's list (CONFIGURATION: a plugin's error stops ``schedule``)."""
        return self._call("scheduled_commands", session=session, environment=environment)
