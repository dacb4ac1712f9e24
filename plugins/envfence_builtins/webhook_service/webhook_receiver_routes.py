"""The webhook receiver's routes: ``[webhooks.routes."/path"]`` tables, and each route's signing secret.

Part of the ``webhook_receiver`` plugin (its entry module declares the
secrets and reports bad tables in ``envfence check``; ``serve``, ``worker``
and ``webhooks verify`` read them here). See :mod:`.webhook_receiver` for the
keys of a route.
"""

from __future__ import annotations

from typing import Mapping

from envfence import slotted
from envfence.errors import ConfigurationError
from envfence.models import reveal

SECTION = "webhooks"
ROUTES = "routes"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_TOLERANCE = 300
DEFAULT_MAX_ATTEMPTS = 5
#: Seconds a rotated-out signing secret is still accepted: time to update the sender; 0 for a leaked secret.
DEFAULT_SECRET_OVERLAP = 3600
#: Headers never written to the queue: they may carry credentials of their own.
_ROUTE_KEYS = ("provider", "secret", "automation", "events", "max_body", "tolerance", "max_attempts", "secret_overlap")



@slotted.frozen
class Route:
    """One ``[webhooks.routes."/path"]`` table."""

    path: str
    provider: str
    secret: str  #: the plain name of the setting holding the signing secret
    automation: str
    events: tuple[str, ...] = ()  #: the event types that run the automation; empty means all
    max_body: int = DEFAULT_MAX_BODY
    tolerance: int = DEFAULT_TOLERANCE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    secret_overlap: int = DEFAULT_SECRET_OVERLAP  #: seconds the previous secret stays valid after a rotation

    def wants(self, event_type: str | None) -> bool:
        """True when an event of this type runs the route's automation."""
        return not self.events or event_type in self.events


def routes(settings) -> list[Route]:
    """The routes of ``[webhooks.routes]``; a :class:`ConfigurationError` names the first bad key."""
    table = settings.section(SECTION).get(ROUTES, {})
    where = f"{settings.source}: [{SECTION}.{ROUTES}"
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where}] must be a table of routes", f'write [{SECTION}.{ROUTES}."/path"] tables')
    found = []
    for path, body in table.items():
        here = f'{where}."{path}"]'
        if not isinstance(body, Mapping):
            raise ConfigurationError(f"{here} must be a table", 'with provider = "...", automation = "..."')
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ConfigurationError(f"{here}: a route is a URL path starting with /", 'e.g. [webhooks.routes."/housecallpro"]')
        unknown = sorted(set(body) - set(_ROUTE_KEYS))
        if unknown:
            raise ConfigurationError(f"{here}: unknown key {unknown[0]!r}", f"known keys: {', '.join(_ROUTE_KEYS)}")
        for key in ("provider", "automation"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ConfigurationError(f"{here}: {key} is required (a name)", f'e.g. {key} = "..."')
        secret = body.get("secret", f"{body['provider'].upper().replace('-', '_')}_WEBHOOK_SECRET")
        events = body.get("events", [])
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f"{here}: secret must name a setting", 'e.g. secret = "HOUSECALLPRO_WEBHOOK_SECRET"')
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ConfigurationError(f"{here}: events must be a list of event types", 'e.g. events = ["job.created"]')
        numbers = {}
        for key, default in (("max_body", DEFAULT_MAX_BODY), ("tolerance", DEFAULT_TOLERANCE), ("max_attempts", DEFAULT_MAX_ATTEMPTS)):
            value = body.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{here}: {key} must be a positive whole number, not {value!r}", f"e.g. {key} = {default}")
            numbers[key] = value
        overlap = body.get("secret_overlap", DEFAULT_SECRET_OVERLAP)
        if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
            raise ConfigurationError(f"{here}: secret_overlap must be a whole number of seconds (0 or more), not {overlap!r}",
                                     f"e.g. secret_overlap = {DEFAULT_SECRET_OVERLAP}, or 0 when the old secret leaked")
        found.append(Route(path, body["provider"], secret, body["automation"], tuple(events), **numbers, secret_overlap=overlap))
    return found


def route_secrets(session, declared: list[Route]) -> dict[str, str]:
    """Each route's signing secret, read through the environment's prefix (the access is audited)."""
    found = {}
    for route in declared:
        value = session.credential(route.secret, by="webhook receiver")
        if value is None or not str(reveal(value)).strip():
            raise ConfigurationError(
                f"route {route.path}: its signing secret {route.secret} is not set in {session.environment.name}",
                f"set {session.settings.naming.key(session.environment.name, route.secret)} "
                f"(or {route.secret} in .env.{session.environment.name})",
            )
        found[route.path] = str(reveal(value))
    return found
