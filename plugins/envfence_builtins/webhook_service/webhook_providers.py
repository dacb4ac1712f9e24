"""The built-in webhook providers: HousecallPro, Standard Webhooks and GitHub.

This plugin declares ``register_webhook_providers``
(:mod:`.provider_hooks`, where :class:`~.provider_hooks.WebhookProvider` is)
and answers it with the three built-ins. Routes of ``[webhooks.routes]`` name
their provider; the receiver asks it to verify each delivery before anything
else happens to it. A plugin adds another provider through the same hook;
``[webhooks.providers.<name>]`` tables define one without code, or change the
scheme a built-in is described by (HousecallPro's: :mod:`.webhook_schemes`)::

    [webhooks.providers.housecallpro]
    signed = "{timestamp}{body}"
    encoding = "base64"

Signatures themselves are checked by :mod:`.webhook_signatures`. With
``-p no:webhook_providers`` the hook is not declared: ``envfence check``
names this plugin for each route, and no other plugin's provider is asked.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

from envfence import hookimpl

from envfence_builtins.webhook_service import webhook_schemes, webhook_signatures
from envfence_builtins.webhook_service.provider_hooks import ProviderHookspecs, WebhookProvider, payload_field


def _housecallpro_id(headers: Mapping[str, str], body: bytes) -> str | None:
    # HousecallPro sends no delivery id: the signed timestamp and body make one,
    # so the same delivery sent twice has the same id.
    stamp = headers.get("api-timestamp")
    if not stamp:
        return None
    return "hcp_" + hashlib.sha256(stamp.strip().encode() + b"." + body).hexdigest()[:32]


HOUSECALLPRO = WebhookProvider(
    "housecallpro",
    verify=lambda secret, headers, body, tolerance: webhook_schemes.HOUSECALLPRO.verify(secret, headers, body, tolerance),
    event_id=_housecallpro_id,
    event_type=lambda headers, payload: payload_field(payload, "event", "event_type"),
    plugin="webhook_providers",
    scheme=webhook_schemes.HOUSECALLPRO,
)

STANDARD = WebhookProvider(
    "standard",
    verify=lambda secret, headers, body, tolerance: webhook_signatures.verify(
        "standard", secret, headers, body, tolerance=tolerance
    ),
    event_id=lambda headers, body: headers.get("webhook-id") or None,
    event_type=lambda headers, payload: payload_field(payload, "type"),
    plugin="webhook_providers",
)

GITHUB = WebhookProvider(
    "github",
    # GitHub signs no timestamp: its delivery id alone guards against replays.
    verify=lambda secret, headers, body, tolerance: webhook_signatures.verify("github", secret, headers, body),
    event_id=lambda headers, body: headers.get("x-github-delivery") or None,
    event_type=lambda headers, payload: headers.get("x-github-event") or None,
    plugin="webhook_providers",
)


@hookimpl
def declare_tables():
    """The ``[webhooks.providers]`` tables (:data:`.webhook_schemes.PROVIDERS_TABLE`)."""
    return [webhook_schemes.PROVIDERS_TABLE]


@hookimpl
def register_webhook_providers(register) -> None:
    """HousecallPro, Standard Webhooks and GitHub."""
    for provider in (HOUSECALLPRO, STANDARD, GITHUB):
        register(provider)


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``register_webhook_providers``: a plugin adds providers that routes can name."""
    register(ProviderHookspecs)


