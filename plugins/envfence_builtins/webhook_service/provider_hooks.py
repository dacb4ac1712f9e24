"""The hook the ``webhook_providers`` plugin offers: ``register_webhook_providers``, and its typed call.

Declared by the ``webhook_providers`` plugin (``register_hookspecs``); another
plugin's providers are registered with ``optionalhook=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from .webhook_providers import WebhookProvider


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
