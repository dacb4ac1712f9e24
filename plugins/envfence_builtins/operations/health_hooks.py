"""The hooks the ``health`` plugin offers: ``health_checks`` and ``health_alerts``, their typed calls, and a :class:`Check`.

Declared by the ``health`` plugin (``register_hookspecs``). Another plugin
adds checks of what it keeps (``audit``: its hash chain) through
``health_checks``; ``envfence health --alert`` hands its checks to the plugin
that turns them into incidents and sends them (``alerts``). Both implement
them with ``optionalhook=True``. With ``-p no:alerts`` nobody answers
``health_alerts``, and health says the alerts were not sent; with
``-p no:audit`` there is no audit check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from envfence import slotted
from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


@slotted.frozen
class Check:
    """One check's result."""

    name: str  #: e.g. ``sync.expected_every``, ``disk``, ``audit``
    state: str  #: one of ``OK``, ``WARNING``, ``CRITICAL``, ``UNKNOWN`` (:data:`envfence_builtins.operations.health_checks.STATES`)
    message: str
    automation: str | None = None
    check: str | None = None
    value: Any = None
    limit: Any = None
    run_id: str | None = None
    severity: str | None = None  #: the threshold's severity when crossed


class HealthHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.FINDING)
    @hookspec
    def health_checks(self, session: Session) -> list[Mapping[str, Any]] | None:
        """Checks of the state your plugin keeps in the environment, for ``envfence health``.

        :param session: the open session (its tree exists).
        :returns: one mapping per check: ``name`` (e.g. ``audit``), ``state``
            (``OK``, ``WARNING``, ``CRITICAL`` or ``UNKNOWN``), ``message``, and
            optionally ``value`` and ``limit``; or None.

        All results are collected. A plugin that raises becomes an UNKNOWN
        check naming it; the other checks still run.
        """

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def health_alerts(self, session: Session, checks: list[Check]) -> Mapping[str, list[Any]] | None:
        """Send the environment's health checks as alerts (``envfence health --alert``).

        :param session: the open, prepared session.
        :param checks: every check of the environment, as ``health`` reports them.
        :returns: what was done (``{"sent": [...], "pending": [...]}``), or None when you send no alerts.

        Stops at first non-None result. Raise an
        :class:`~envfence.errors.EnvfenceError` when the alerts cannot be sent:
        health reports it as an UNKNOWN check, the other checks still stand.
        """


class HealthHooks(OfferedHooks):
    """Typed calls to the ``health`` plugin's hooks: ``HealthHooks(session.plugins).health_checks(...)``."""

    declared_by = "health"
    specs = HealthHookspecs

    def health_checks(self, *, session: Session) -> HookResult[list[Mapping[str, Any]]]:
        """``health_checks``: each plugin's checks (FINDING: the caller reports a plugin that raised)."""
        return self._call("health_checks", session=session)

    def health_alerts(self, *, session: Session, checks: list[Check]) -> HookResult[Mapping[str, list[Any]]]:
        """``health_alerts``: what the sending plugin did (CONFIGURATION: a plugin's failure is the caller's error)."""
        return self._call("health_alerts", session=session, checks=checks)
