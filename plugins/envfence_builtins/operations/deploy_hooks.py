"""The hooks the ``deploy`` plugin offers: a project's own steps before and after ``envfence deploy``.

Declared by the ``deploy`` plugin (``register_hookspecs``), so with
``-p no:deploy`` neither exists; an implementation in another plugin is
marked ``optionalhook=True`` (the ``health`` plugin's ``post_deploy`` is the
health check after a deployment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.models import Finding
    from envfence.pipeline import Session


class DeployHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.FINDING)
    @hookspec
    def pre_deploy(self, session: Session, deployment: Mapping[str, Any]) -> list[Finding] | None:
        """Run a project's own step before a deployment is recorded (build, migrate a database, drain a queue).

        :param session: the open, prepared session of the environment deployed.
        :param deployment: the deployment about to be recorded: ``id``,
            ``environment``, ``code_version``, ``user``, ``host``.
        :returns: findings; one at ``error`` (or an exception) stops the
            deployment before its snapshot, and nothing is rolled back.

        All results are collected.
        """

    @failure_policy(OnError.FINDING)
    @hookspec
    def post_deploy(self, session: Session, deployment: Mapping[str, Any]) -> list[Finding] | None:
        """Check (or finish) a deployment once it is recorded: a smoke test, a health check, a cache warm-up.

        :param session: the open, prepared session of the environment deployed.
        :param deployment: the recorded deployment: ``id``, ``environment``,
            ``code_version``, ``config_version``, ``snapshot``, ``user``, ``host``.
        :returns: findings; one at ``error`` (or an exception) fails the
            deployment: the configuration goes back to the previous
            deployment's snapshot and an alert is raised.

        All results are collected.
        """


class DeployHooks(OfferedHooks):
    """Typed calls to the ``deploy`` plugin's hooks: ``DeployHooks(session.plugins).post_deploy(...)``."""

    declared_by = "deploy"
    specs = DeployHookspecs

    def pre_deploy(self, *, session: Session, deployment: Mapping[str, Any]) -> HookResult[list[Finding]]:
        """``pre_deploy``: each plugin's findings (FINDING: a plugin that raised is an error finding)."""
        return self._call("pre_deploy", session=session, deployment=deployment)

    def post_deploy(self, *, session: Session, deployment: Mapping[str, Any]) -> HookResult[list[Finding]]:
        """``post_deploy``: each plugin's findings (FINDING: a plugin that raised is an error finding)."""
        return self._call("post_deploy", session=session, deployment=deployment)
