"""The contract of the ``webhook_providers`` plugin: ``register_webhook_providers``, its typed call, and ``WebhookProvider``.

Declared by the ``webhook_providers`` plugin (``register_hookspecs``); the
receiver collects the providers through it (:func:`collect_providers`), and a
plugin that adds a provider (``optionalhook=True``) builds it from
:class:`WebhookProvider`. Not a plugin: what the providers' plugin and those
who use its providers share, so neither imports the other::

    from envfence import hookimpl
    from envfence_builtins.webhook_service.provider_hooks import WebhookProvider

    @hookimpl(optionalhook=True)
    def register_webhook_providers(register):
        register(WebhookProvider("acme", verify=..., event_id=..., event_type=...))
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from envfence import slotted
from envfence.errors import ConfigurationError
from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

#: ``verify(secret, headers, body, tolerance)``: raises ``SignatureError`` when the delivery is not genuine.
Verifier = Callable[[str, Mapping[str, str], bytes, int], None]


@slotted.frozen
class WebhookProvider:
    """A sender of webhooks.

    ``headers`` passed to each function are lower-cased.

    :param name: what routes name in ``provider = "..."``.
    :param verify: ``verify(secret, headers, body, tolerance)`` raises
        :class:`~envfence_builtins.webhook_service.signature_checks.SignatureError` (its
        message says why, never the secret) for a delivery that is not genuine.
    :param event_id: ``event_id(headers, body)``: the delivery's unique id,
        the key of replay protection and of the queue; None when it has none.
    :param event_type: ``event_type(headers, payload)``: what happened
        (``job.created``), matched against a route's ``events``; None when unknown.
    :param scheme: the :class:`~envfence_builtins.webhook_service.webhook_schemes.Scheme` the provider verifies
        with, when it is described by one (settings can then change it, and
        ``webhooks verify`` diagnoses it part by part); None for a verifier of its own.
    """

    name: str
    verify: Verifier
    event_id: Callable[[Mapping[str, str], bytes], str | None]
    event_type: Callable[[Mapping[str, str], Any], str | None]
    plugin: str | None = None
    scheme: Any = None


def payload_field(payload: Any, *names: str) -> str | None:
    """The first of ``names`` that the JSON object ``payload`` holds as non-empty text (an event type, an id); None otherwise."""
    if not isinstance(payload, Mapping):
        return None
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    return None


class ProviderHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec
    def register_webhook_providers(self, register: Callable[[WebhookProvider], None]) -> None:
        """Add webhook providers that routes can name (``provider = "..."``).

        :param register: call it once per provider with a ``WebhookProvider``
            (a name, how to verify a delivery's signature, and where its event
            id and type are). A name registered twice is a configuration error.

        All implementations are called; the built-ins register
        ``housecallpro``, ``standard`` and ``github``.
        """


class ProviderHooks(OfferedHooks):
    """Typed calls to the ``webhook_providers`` plugin's hooks."""

    declared_by = "webhook_providers"
    specs = ProviderHookspecs

    def register_webhook_providers(self, *, register: Callable[[WebhookProvider], None]) -> HookResult[None]:
        """``register_webhook_providers`` (CONFIGURATION: a route's provider that cannot register is unverifiable)."""
        return self._call("register_webhook_providers", register=register)


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
