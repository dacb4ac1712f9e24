"""Where text leaves a session: the secrets its one redactor masks, and findings masked once.

:meth:`envfence.Session.redactor` builds the session's
:class:`~envfence.redaction.Redactor` from :func:`secret_values` once; every
finding the session hands out passes :func:`redact_findings`; log records are
redacted at the logger (:meth:`envfence.Session.logger`), audit data in
:class:`~envfence.audit.AuditLog`, a command's output line by line as it is read.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from . import slotted
from .models import Finding, Secret


def secret_values(settings: Any, specs: Iterable[Any], config: Any, environ: Mapping[str, str]) -> list[str]:
    """Every secret value of a session's configuration and of its process environment. Never print them."""
    from .redaction import environ_secrets

    declared = set(settings.secrets) | {s.name for s in specs if s.secret}
    values = [e.value.reveal() for e in config.entries.values() if isinstance(e.value, Secret)]
    # A value a higher layer overrides is still a secret: validating every layer may quote it.
    values += [old.reveal() for e in config.entries.values() for _, old in e.overridden if isinstance(old, Secret)]
    return values + environ_secrets(environ, declared)


def redact_findings(redactor: Any, findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """``findings`` with secrets masked in message, remediation and key, in one pass each (:meth:`Redactor.each`)."""
    masked = []
    for f in findings:
        message, remediation, key = redactor.each([f.message, f.remediation or "", f.key or ""])
        masked.append(slotted.evolve(f, message=message, remediation=remediation, key=key if f.key else f.key))
    return tuple(masked)
