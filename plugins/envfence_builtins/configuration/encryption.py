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

import os
import stat
import sys
from pathlib import Path
from typing import Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError, UsageError

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
    import click

    from envfence.cli import State, pass_state

    @click.group()
    def secret() -> None:
        """Encrypt configuration values at rest, one key (or key pair) per environment."""

    from envfence.cli.examples import examples

    @examples(
        "envfence --env production secret keygen",
        "envfence --env production secret keygen --pair   # anyone may encrypt, only this host decrypts",
    )
    @secret.command()
    @click.option("--pair", is_flag=True, help="A key pair: the public key goes in the settings (anyone encrypts), the private key stays here.")
    @pass_state
    def keygen(state: State, pair: bool) -> None:
        """Create this environment's key file (owner-only; never overwritten), or its key pair."""
        session = state.session()
        session.prepare()  # creating a key is an action: it goes on the audit trail
        _keygen(state, session, pair)

    @examples(
        "envfence --env production secret encrypt AIRTABLE_API_KEY < token.txt",
    )
    @secret.command()
    @click.argument("key")
    @pass_state
    def encrypt(state: State, key: str) -> None:
        """Print KEY=enc:...: sealed to the environment's public key when it has a pair, else with its key."""
        session = state.session()
        env = session.environment.name
        owner = session.settings.naming.environment_of(key)
        if owner not in (None, env):
            raise UsageError(
                f"{key} belongs to {owner}, but this is {env}",
                f"run `envfence --env {owner} secret encrypt {key}` with the {owner} key",
            )
        if sys.stdin.isatty():
            value = click.prompt(f"value of {key}", hide_input=True, confirmation_prompt=True)
        else:
            value = sys.stdin.read().rstrip("\n")
        if not value:
            raise UsageError("the value is empty", "pipe the value on stdin or type it at the prompt")
        if "\0" in value:
            raise UsageError("the value holds a NUL byte, which no environment variable can hold", "remove it and try again")
        line = f"{key}={encrypt_for(session, key, value)}"
        session.audit("secret.encrypted", key=key)
        _say(state, {"key": key, "line": line}, line)

    @examples(
        "envfence --env production secret migrate   # where production's current key is",
    )
    @secret.command()
    @pass_state
    def migrate(state: State) -> None:
        """Move this environment's encrypted values to a key pair, and seal its plaintext secrets in .env.ENVIRONMENT.

        Run it where the environment's current key is (its values are opened
        once, then sealed to the new public key). The key pair is made when
        the environment has none; its public key goes in the settings.
        """
        from envfence_builtins.configuration.key_migration import migrate_environment

        session = state.session()
        session.prepare()
        done = migrate_environment(session)
        _say(state, done, done["summary"])

    cli.add_command(secret)


def encrypt_for(session, key: str, value: str) -> str:
    """``value`` as it is written in a ``.env`` file of this environment: sealed to its public key, else Fernet."""
    from envfence import keypairs

    env, settings = session.environment.name, session.settings
    public = keypairs.public_key(settings, env)
    if public is not None:
        return keypairs.seal(public, env, settings.naming.split(key)[1], value)
    fernet = load_key(session.root.path, env, settings.naming.prefix(env), session.environ)
    return SCHEME + fernet.encrypt(value.encode("utf-8")).decode()


def _keygen(state, session, pair: bool) -> None:
    from envfence import keypairs, keyring

    root, env = session.root.path, session.environment.name
    if not pair:
        from cryptography.fernet import Fernet

        path = keyring.create(root, env, "encryption", Fernet.generate_key() + b"\n")
        session.audit("secret.key_created", path=str(path))
        _say(state, {"key_file": str(path)}, f"created {path} (mode 600); keep it out of version control")
        return
    if keypairs.public_key(session.settings, env) is not None:
        raise UsageError(f"{env} has a key pair already ({session.settings.source})", "a key pair is never replaced by keygen")
    private, public = keypairs.generate()
    path = keyring.create(root, env, "private", private)
    settings_file = keypairs.write_public_key(session.settings, env, public)
    session.audit("secret.key_created", path=str(path), public_key=public, settings=str(settings_file))
    _say(state, {"private_key_file": str(path), "public_key": public, "settings": str(settings_file)},
         f"created {path} (mode 600): keep it on {env} hosts only\n"
         f"wrote {env}'s public key to {settings_file}: commit it, so anyone can `envfence --env {env} set KEY`")


def _say(state, data: dict, text: str) -> None:
    import click

    from envfence.cli.output import dumps

    click.echo(dumps(data) if state.json else text)
