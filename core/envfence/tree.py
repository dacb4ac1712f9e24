"""Preparing an environment's tree: the ``prepare_environment`` hook, its refusals, the audit event; the ``tree_refusals`` check."""

from __future__ import annotations

from typing import Any

from .errors import ConfigurationError, SafetyError
from .models import Finding


def prepare(session: Any, defer_event: bool = False) -> list[Finding]:
    """Create and secure ``session``'s tree once (see :meth:`Session.prepare`); the findings of what was done."""
    if session.prepared:
        return []
    paths = _paths(session)
    findings = session._findings(session.plugins.prepare_environment(session=session, paths=paths))
    refused = [f for f in findings if f.severity == "error"]
    if refused:
        raise SafetyError("; ".join(f.message for f in refused), refused[0].remediation)
    session.prepared = True
    data = {"base": str(paths.base), "changes": [f.key for f in findings]}
    if defer_event:
        session.audit_log.defer("environment.prepared", data)
    else:
        session.audit("environment.prepared", **data)
    return findings


def refusals(session: Any) -> list[Finding]:
    """What makes ``session``'s tree unsafe to write into as it stands on disk (the ``tree_refusals`` hook); creates nothing."""
    found = session._findings(session.plugins.tree_refusals(session=session, paths=_paths(session)))
    return [f for f in found if f.severity == "error"]


def _paths(session: Any) -> Any:
    paths = session.paths
    if paths is None:
        raise ConfigurationError("no plugin computes the environment's directories", "enable the directories plugin (drop -p no:directories)")
    return paths
