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

A provider's scheme can also be written in the settings, without code
(:mod:`envfence_builtins.webhook_service.webhook_schemes`): a
``[webhooks.providers.<name>]`` table defines a provider, or, under a
built-in's name, changes the scheme it is described by (HousecallPro's)::

    [webhooks.providers.housecallpro]
    signed = "{timestamp}{body}"
    encoding = "base64"

:func:`providers_for` gives a session's providers, the settings' included.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping

import attrs

from envfence import hookimpl
from envfence.errors import ConfigurationError

from envfence_builtins.webhook_service import webhook_schemes, webhook_signatures
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
    :param scheme: the :class:`~.webhook_schemes.Scheme` the provider verifies
        with, when it is described by one (settings can then change it, and
        ``webhooks verify`` diagnoses it part by part); None for a verifier of its own.
    """

    name: str
    verify: Verifier
    event_id: Callable[[Mapping[str, str], bytes], str | None]
    event_type: Callable[[Mapping[str, str], Any], str | None]
    plugin: str | None = None
    scheme: Any = None


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
    verify=lambda secret, headers, body, tolerance: webhook_schemes.HOUSECALLPRO.verify(secret, headers, body, tolerance),
    event_id=_housecallpro_id,
    event_type=lambda headers, payload: _field(payload, "event", "event_type"),
    plugin="webhook_providers",
    scheme=webhook_schemes.HOUSECALLPRO,
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


def scheme_provider(name: str, scheme: webhook_schemes.Scheme) -> WebhookProvider:
    """A provider verifying with ``scheme``, its event id and type found where the scheme says."""
    def event_id(headers: Mapping[str, str], body: bytes) -> str | None:
        if scheme.id_header:
            return headers.get(scheme.id_header.lower()) or None
        try:  # no id sent: the signed string names the delivery (the same one sent twice has the same id)
            return f"{name}_" + hashlib.sha256(scheme.message(headers, body)).hexdigest()[:32]
        except webhook_signatures.SignatureError:
            return None

    def event_type(headers: Mapping[str, str], payload: Any) -> str | None:
        source, _, key = scheme.event_type.partition(":")
        return (headers.get(key.lower()) or None) if source == "header" else _field(payload, key)

    return WebhookProvider(name, verify=lambda secret, headers, body, tolerance: scheme.verify(secret, headers, body, tolerance),
                           event_id=event_id, event_type=event_type, plugin="settings", scheme=scheme)


def configured_providers(settings, registered: Mapping[str, WebhookProvider]) -> dict[str, WebhookProvider]:
    """The providers of ``[webhooks.providers]``; a :class:`ConfigurationError` names the table and key that cannot be used."""
    table = settings.section("webhooks").get("providers", {})
    where = f"{settings.source}: [webhooks.providers"
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where}] must be a table of providers", "write [webhooks.providers.<name>] tables")
    found = {}
    for name, body in table.items():
        base = registered.get(name)
        if base is not None and base.scheme is None:
            raise ConfigurationError(
                f"{where}.{name}]: {name} (from {base.plugin or 'a plugin'}) verifies with code of its own, not a described scheme",
                f"give the table another name (e.g. [webhooks.providers.{name}-custom]) and name that in the route's provider")
        found[name] = scheme_provider(name, webhook_schemes.from_table(f"{where}.{name}]", body, base.scheme if base else None))
    return found


def providers_for(session) -> dict[str, WebhookProvider]:
    """The session's providers: the registered ones, then the settings' (which change a described built-in of their name)."""
    found = collect_providers(session.plugins)
    found.update(configured_providers(session.settings, found))
    return found
