"""The hook the ``values`` plugin offers: ``encrypt_value``, and its typed call.

Declared by the ``values`` plugin (``register_hookspecs``); the plugin holding
the environment's key (``encryption``) implements it with ``optionalhook=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.pipeline import Session


class ValuesHookspecs:
    """The hookspecs the ``values`` plugin offers: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec(firstresult=True)
    def encrypt_value(self, session: Session, key: str, value: str) -> str | None:
        """Encrypt a secret ``set`` is about to write into the environment's shared ``.env.<environment>``.

        :param session: the open session (its environment's key is the one to use).
        :param key: the key as written, e.g. ``PROD_API_TOKEN``.
        :param value: the value in the clear.
        :returns: the value as the file keeps it (``enc:fernet:...``), or None when
            you hold no key for this environment (the secret then goes to the
            ``.local`` file, which stays on this machine).

        Stops at first non-None result.
        """


class ValuesHooks(OfferedHooks):
    """Typed calls to the ``values`` plugin's hooks: ``ValuesHooks(session.plugins).encrypt_value(...)``."""

    declared_by = "values"
    specs = ValuesHookspecs

    def encrypt_value(self, *, session: Session, key: str, value: str) -> HookResult[str]:
        """``encrypt_value``: the encrypted value, from the first plugin holding the key (CONFIGURATION)."""
        return self._call("encrypt_value", session=session, key=key, value=value)
