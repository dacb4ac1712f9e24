"""What the trail needs to know of the session: the environment's audit key, and whether its run history shows runs."""

from __future__ import annotations


def audit_key(session) -> bytes | None:
    """The environment's audit key from the key ring: the variable, else the owner-only key file, else None.

    :raises EnvfenceError: the key file is a link, readable by others, or is not a file.
    """
    from envfence import keyring

    name = session.environment.name
    key = keyring.find(session.root.path, name, session.settings.naming.prefix(name), session.environ, "audit")
    return None if key is None else key.material


def has_runs(session) -> bool:
    """Whether the environment's run history shows any run (``history_has_runs``); False when nobody can tell."""
    from .audit_hooks import AuditHooks

    return bool(AuditHooks(session.plugins).history_has_runs(session=session).first)
