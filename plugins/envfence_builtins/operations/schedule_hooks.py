"""The hooks the ``schedule`` plugin offers, their typed calls, and the question the plugin asks with ``share_host``.

Declared by the ``schedule`` plugin (``register_hookspecs``), so with
``-p no:schedule`` they do not exist; an implementation in another plugin is
marked ``optionalhook=True``.

- ``scheduled_commands``: envfence commands of other plugins, run by the host
  scheduler. The ``backup`` plugin answers it with ``envfence backup`` at
  ``[backup] schedule``.
- ``share_host``: whether two environments may run on one machine, which
  decides whether their schedules compete (``SCHEDULE_COLLISION``,
  ``[schedule] stagger``). The plugin that knows the hosts (``hostname``:
  enrolled hosts, hostname patterns) answers it; with nobody answering, two
  environments are taken to share a machine, the cautious reading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec
from envfence.stash import StashKey

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session
    from envfence.settings import ProjectSettings


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

    @failure_policy(OnError.LOG)
    @hookspec(firstresult=True)
    def share_host(self, settings: ProjectSettings, a: str, b: str) -> bool | None:
        """Whether environments ``a`` and ``b`` (two declared, distinct names) may run on one machine.

        :param settings: the project's settings.
        :param a: one environment's name.
        :param b: the other's.
        :returns: True when one machine may carry both (their schedules then
            compete for it), False when they never meet, None when you cannot tell.

        Stops at first non-None result.
        """


class ScheduleHooks(OfferedHooks):
    """Typed calls to the ``schedule`` plugin's hooks: ``ScheduleHooks(session.plugins).scheduled_commands(...)``."""

    declared_by = "schedule"
    specs = ScheduleHookspecs

    def scheduled_commands(self, *, session: Session, environment: str) -> HookResult[list[tuple[str, str, tuple[str, ...]]]]:
        """``scheduled_commands``: each plugin's list (CONFIGURATION: a plugin's error stops ``schedule``)."""
        return self._call("scheduled_commands", session=session, environment=environment)

    def share_host(self, *, settings: ProjectSettings, a: str, b: str) -> HookResult[bool]:
        """``share_host``: the first plugin's answer (LOG: a plugin that raises is logged and asked no more)."""
        return self._call("share_host", settings=settings, a=a, b=b)


#: Which pairs of environments may share a machine, per session (``share_host`` asks a plugin for each pair once).
_SHARED = StashKey[dict]()


def share_host(session, a: str, b: str) -> bool:
    """Whether environments ``a`` and ``b`` may run on one machine, so that their schedules compete for it.

    This host counts when its name carries both. Otherwise the plugin that
    knows the hosts answers (``share_host``, declared here; the ``hostname``
    plugin compares the enrolled hosts, else the hostname patterns). With no
    plugin answering, they are taken to share one: the cautious reading.
    """
    if a == b:
        return True
    host = session.host
    if host is not None and {a, b} <= {env for env, _ in host.matches}:
        return True
    known = session.stash.setdefault(_SHARED, {})
    pair = (a, b) if a < b else (b, a)
    if pair not in known:
        answer = ScheduleHooks(session.plugins).share_host(settings=session.settings, a=pair[0], b=pair[1]).first
        known[pair] = True if answer is None else bool(answer)
    return known[pair]
