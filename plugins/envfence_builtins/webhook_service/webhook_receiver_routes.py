"""The webhook receiver's routes: ``[webhooks.routes."/path"]`` tables, and each route's signing secret.

Part of the ``webhook_receiver`` plugin (its entry module declares the
secrets and reports bad tables in ``envfence check``; ``serve``, ``worker``
and ``webhooks verify`` read them here). See :mod:`.webhook_receiver` for the
keys of a route.
"""

from __future__ import annotations

from typing import Any

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


def _routes_table() -> Any:
    from envfence.settings_kinds import text, texts, whole
    from envfence.settings_tables import Table

    # The receiver's part of [webhooks]: the sources are the webhooks plugin's, the providers the providers plugin's.
    table = Table(SECTION, "the webhook receiver's routes (envfence serve)")
    route = table.add_each(ROUTES, "one route: the URL path a sender posts to", names=r"/\S*", noun="route",
                           names_hint='a URL path starting with /, without spaces, e.g. [webhooks.routes."/housecallpro"]')
    route.add("provider", text(example="housecallpro"), None, "the webhook provider that signs its deliveries", required=True)
    route.add("automation", text(example="sync_job"), None, "the automation each accepted event runs", required=True)
    route.add("secret", text(example="HOUSECALLPRO_WEBHOOK_SECRET"), None,
              "the setting holding the signing secret (default <PROVIDER>_WEBHOOK_SECRET)")
    route.add("events", texts(example="job.created"), [], "the event types that run the automation (default: all)")
    route.add("max_body", whole(minimum=1, example=DEFAULT_MAX_BODY), DEFAULT_MAX_BODY, "the largest body accepted, in bytes")
    route.add("tolerance", whole(minimum=1, example=DEFAULT_TOLERANCE), DEFAULT_TOLERANCE,
              "seconds a signed timestamp may be off")
    route.add("max_attempts", whole(minimum=1, example=DEFAULT_MAX_ATTEMPTS), DEFAULT_MAX_ATTEMPTS,
              "runs of an event before it is given up")
    route.add("secret_overlap", whole(minimum=0, example=DEFAULT_SECRET_OVERLAP), DEFAULT_SECRET_OVERLAP,
              "seconds a rotated-out secret is still accepted (0 when it leaked)")
    return table


#: The ``[webhooks.routes]`` part of ``[webhooks]``, declared once: loading, ``check``, the schema and the docs.
TABLE = _routes_table()


def routes(settings) -> list[Route]:
    """The routes of ``[webhooks.routes]``, read through :data:`TABLE`; a :class:`ConfigurationError` names the first bad key."""
    values = TABLE.read(settings)
    values.refuse(ROUTES)
    found = []
    for path, body in values.each(ROUTES).items():
        provider = body["provider"]
        secret = body["secret"] or f"{provider.upper().replace('-', '_')}_WEBHOOK_SECRET"
        found.append(Route(path, provider, secret, body["automation"], tuple(body["events"]), body["max_body"],
                           body["tolerance"], body["max_attempts"], body["secret_overlap"]))
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
