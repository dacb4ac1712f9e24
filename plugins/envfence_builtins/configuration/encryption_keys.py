"""The ``encryption`` plugin's symmetric keys: the environment's Fernet from the key ring, and values encrypted with it.

Shared by the plugin's hooks (:mod:`.encryption`), its commands
(:mod:`.encryption_cli`) and ``secret migrate`` (:mod:`.encryption_migration`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from envfence.errors import ConfigurationError

SCHEME = "enc:fernet:"


def _fernet(key: bytes, where: str, environment: str):
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        raise ConfigurationError(
            "encrypted configuration needs the cryptography package", "pip install 'envfence[encryption]'"
        ) from None
    try:
        return Fernet(key.strip())
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{where}: not a valid key",
            f"create one with `envfence --env {environment} secret keygen` (and re-encrypt the values it opened)",
        ) from None


def load_key(root: Path, environment: str, prefix: str, environ: Mapping[str, str]):
    """The environment's Fernet, from the key ring (the variable, else the owner-only key file)."""
    from envfence import keyring

    key = keyring.find(root, environment, prefix, environ, "encryption", error=ConfigurationError)
    if key is None:
        raise ConfigurationError(
            f"no {environment} key: set {keyring.key_variable('encryption', prefix)} or create {keyring.key_file(root, environment, 'encryption')}",
            f"run `envfence --env {environment} secret keygen` on a machine allowed to hold it",
        )
    return _fernet(key.material, key.source, environment)


def fernet_for(session: Any):
    """The session's environment's Fernet (see :func:`load_key`)."""
    env = session.environment.name
    return load_key(session.root.path, env, session.settings.naming.prefix(env), session.environ)


def encrypt_for(session, key: str, value: str) -> str:
    """``value`` as it is written in a ``.env`` file of this environment: sealed to its public key, else Fernet."""
    from envfence import keypairs

    env, settings = session.environment.name, session.settings
    public = keypairs.public_key(settings, env)
    if public is not None:
        return keypairs.seal(public, env, settings.naming.split(key)[1], value)
    return SCHEME + fernet_for(session).encrypt(value.encode("utf-8")).decode()
