"""Webhook providers: how a sender signs a delivery, and where its event id and type are.

A route of ``[webhooks.routes]`` names its provider; the receiver asks the
provider to verify each delivery before anything else happens to it. The
built-ins are HousecallPro, Standard Webhooks and GitHub; a plugin adds
another through the ``register_webhook_providers`` hook::

    from envfence import hookimpl
    from envfence_builtins.webhook_service.webhook_providers import WebhookProvider

    @hookimpl
    def register_webhook_providers(register):
        register(WebhookProvider("acme", verify=..., event_id=..., event_type=...))

Signatures themselves are checked by :mod:`envfence_builtins.webhook_service.webhook_signatures`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping

import attrs

from envfence import hookimpl
from envfence.errors import ConfigurationError

from envfence_builtins.webhook_service import webhook_signatures
from envfence_builtins.webhook_service.provider_hooks import ProviderHooks

#: ``verify(secret, headers, body, tolerance)``: raises ``SignatureError`` when the delivery is not genuine.
Verifier = Callable[[str, Mapping[str, str], bytes, int], None]


@attrs.frozen
class WebhookProvider:
    """A sender of webhooks.

    ``headers`` passed to each function are lower-cased.

    :param name: what routes name in ``provider = "..."``.
    :param verify: ``verify(secret, headers, body, tolerance)`` raises
        :class:`~envfence_builtins.webhook_service.webhook_signatures.SignatureError` (its
        message says why, never the secret) for a delivery that is not genuine.
    :param event_id: ``event_id(headers, body)``: the delivery's unique id,
        the key of replay protection and of the queue; None when it has none.
    :param event_type: ``event_type(headers, payload)``: what happened
        (``job.created``), matched against a route's ``events``; None when unknown.
    """

    name: str
    verify: Verifier
    event_id: Callable[[Mapping[str, str], bytes], str | None]
    event_type: Callable[[Mapping[str, str], Any], str | None]
    plugin: str | None = None


def _field(payload: Any, *names: str) -> str | None:
    if not isinstance(payload, Mapping):
        return None
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _housecallpro_id(headers: Mapping[str, str], body: bytes) -> str | None:
    # HousecallPro sends no delivery id: the signed timestamp and body make one,
    # so the same delivery sent twice has the same id.
    stamp = headers.get("api-timestamp")
    if not stamp:
        return None
    return "hcp_" + hashlib.sha256(stamp.strip().encode() + b"." + body).hexdigest()[:32]


HOUSECALLPRO = WebhookProvider(
    "housecallpro",
    verify=lambda secret, headers, body, tolerance: webhook_signatures.verify(
        "housecallpro", secret, headers, body, tolerance=tolerance
    ),
    event_id=_housecallpro_id,
    event_type=lambda headers, payload: _field(payload, "event", "event_type"),
    plugin="webhook_providers",
)

STANDARD = WebhookProvider(
    "standard",
    verify=lambda secret, headers, body, tolerance: webhook_signatures.verify(
        "standard", secret, headers, body, tolerance=tolerance
    ),
    event_id=lambda headers, body: headers.get("webhook-id") or None,
    event_type=lambda headers, payload: _field(payload, "type"),
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
def register_webhook_providers(register) -> None:
    """HousecallPro, Standard Webhooks and GitHub."""
    for provider in (HOUSECALLPRO, STANDARD, GITHUB):
        register(provider)


def collect_providers(plugins) -> dict[str, WebhookProvider]:
    """Every registered provider by name; a name registered twice is a :class:`ConfigurationError`."""
    found: dict[str, WebhookProvider] = {}

    def register(provider: WebhookProvider) -> None:
        if not isinstance(provider, WebhookProvider):
            raise TypeError(f"register() takes a WebhookProvider, not {type(provider).__name__}")
        if provider.name in found:
            raise ConfigurationError(
                f"webhook provider {provider.name!r} is registered twice "
                f"({found[provider.name].plugin or '?'} and {provider.plugin or '?'})",
                "disable one of the plugins (-p no:NAME)",
            )
        found[provider.name] = provider

    # A provider that cannot register would leave its routes unverifiable: its
    # policy (CONFIGURATION) makes that a configuration error naming the plugin.
    ProviderHooks(plugins).register_webhook_providers(register=register)
    return found


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``register_webhook_providers``: a plugin adds providers that routes can name."""
    from envfence_builtins.webhook_service.provider_hooks import ProviderHookspecs

    register(ProviderHookspecs)
