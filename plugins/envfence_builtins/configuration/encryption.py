"""Configuration values encrypted at rest, one key (or key pair) per environment.

A value written as ``enc:fernet:<token>`` in any ``.env`` file is decrypted
with the current environment's key when the session opens, and is a secret
from then on. Each environment has its own key, so a development machine that
holds only the development key cannot open production's values, and another
environment's encrypted credentials are never even tried.

The key comes from the key ring (:mod:`envfence.keyring`): ``ENVFENCE_KEY_<PREFIX>``
(``ENVFENCE_KEY_PROD``) when set, else the file ``.envfence/keys/<environment>.key``
under the project root, which must be readable by its owner only. ``envfence secret keygen`` creates it and
``envfence secret encrypt KEY`` prints the line to paste into a ``.env`` file.

An environment may instead have a key pair (:mod:`envfence.keypairs`): values
``enc:x25519:...`` are sealed with its public key, kept in the settings, and
opened only where its private key is (``secret keygen --pair``; ``secret
migrate`` moves an environment's values to it). On a host without the private
key such a value stays sealed: the session opens (``set`` and ``secret
encrypt`` need no private key), and ``check`` reports ``SECRET_SEALED``.

On a host that is not a strict environment's own, ``check`` warns when that
environment's plaintext secrets are readable (``PRODUCTION_SECRETS_ON_HOST``)
or its decryption key is present (``PRODUCTION_KEY_ON_HOST``).

Needs the ``cryptography`` package (``pip install 'envfence[encryption]'``),
imported only when a value is encrypted or decrypted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError

from .encryption_keys import SCHEME, TABLE, encrypt_for, fernet_for, load_key, public_key


@hookimpl
def declare_tables():
    """The ``[encryption]`` table."""
    return [TABLE]


@hookimpl
def decrypt_value(key: str, value: str, source: str, environment, settings, root: Path, environ: Mapping[str, str]) -> str | None:
    """Decrypt ``enc:fernet:`` values with the environment's key, ``enc:x25519:`` ones with its private key."""
    from envfence import keypairs

    if value.startswith(keypairs.SCHEME):
        private = keypairs.private_key(root, environment.name, settings.naming.prefix(environment.name), environ)
        if private is None:
            return value  # sealed on this host: `set` still works, and validation says why nothing opens it
        _, plain = settings.naming.split(key)
        return _no_nul(keypairs.unseal(private.material, private.source, environment.name, plain, value), key, source, environment)
    if not value.startswith(SCHEME):
        return None
    fernet = load_key(root, environment.name, settings.naming.prefix(environment.name), environ)
    from cryptography.fernet import InvalidToken

    try:
        plain = fernet.decrypt(value[len(SCHEME):].encode()).decode("utf-8")
    except (InvalidToken, UnicodeDecodeError):
        raise ConfigurationError(
            f"{source}: {key} cannot be decrypted with the {environment.name} key",
            f"was it encrypted for another environment? re-encrypt it with `envfence --env {environment.name} secret encrypt {key}`",
        ) from None
    return _no_nul(plain, key, source, environment)


def _no_nul(plain: str, key: str, source: str, environment) -> str:
    if "\0" in plain:
        # As for a .env line: no process can receive it (execve refuses it).
        raise ConfigurationError(
            f"{source}: {key} decrypts to a value holding a NUL byte",
            f"re-encrypt it without the NUL byte: `envfence --env {environment.name} secret encrypt {key}`",
        )
    return plain


@hookimpl
def validate(session) -> list:
    """``SECRET_SEALED`` where this host cannot open a value; what a host holds of a strict environment not its own."""
    from envfence import keypairs
    from envfence.models import Finding, reveal

    env = session.environment.name
    findings = [
        Finding(
            "SECRET_SEALED", "error",
            f"{key} is sealed to {env}'s key pair, and this host holds no {env} private key",
            f"run on a {env} host, or place the private key there (ENVFENCE_PRIVATE_KEY_{session.config.prefix} "
            f"or .envfence/keys/{env}.private.key)",
            key=key, plugin="encryption",
        )
        for key, entry in session.config.entries.items()
        if session.settings.naming.readable_in(key, env) and str(reveal(entry.value)).startswith(keypairs.SCHEME)
    ]
    from envfence_builtins.configuration.host_holdings import holdings

    return findings + holdings(session)


@hookimpl
def register_commands(cli) -> None:
    """``envfence secret keygen [--pair]``, ``secret encrypt KEY`` and ``secret migrate``."""
    from .encryption_cli import secret

    cli.add_command(secret)


@hookimpl(optionalhook=True)
def encrypt_value(session, key: str, value: str) -> str | None:
    """``set``'s secret sealed to the environment's public key, else encrypted with its key (declared by ``values``).

    None when the environment has no key pair and this host holds no key. A public key
    that is not one is an error (naming the settings file), not a reason to keep the secret local.
    """
    if public_key(session.settings, session.environment.name) is not None:
        return encrypt_for(session, key, value)  # sealing needs no key that could read it back
    try:
        fernet = fernet_for(session)
    except ConfigurationError:
        return None  # no key here: the secret stays on this machine
    return SCHEME + fernet.encrypt(value.encode("utf-8")).decode()
