"""What the ``alerts`` plugin answers every session: the credentials it declares and which audit events are security events.

Kept apart from the delivery (:mod:`.alerts_delivery`): every session asks the
plugin what it declares and hands it every audit event, and only a security
event or a run needs the channels, the state and the ``[alerts]`` table.
"""

from __future__ import annotations

SECTION = "alerts"
#: The credentials the channels read through the environment's prefix.
PASSWORD = "SMTP_PASSWORD"
WEBHOOK_SECRET = "ALERT_WEBHOOK_SECRET"
#: The audit events that raise a security alert (:func:`.alerts_delivery.security_alert` says how each reads).
SECURITY_EVENTS = frozenset(
    {"run.forced", "secret.revealed", "audit.broken", "backup.restored", "deploy.failed", "config.reload_refused"}
)
