"""Configuration values encrypted at rest, one key per environment.

A value written as ``enc:fernet:<token>`` in any ``.env`` file is decrypted
with the current environment's key when the session opens, and is a secret
from then on. Each environment has its own key, so a development machine that
holds only the development key cannot open production's values, and another
environment's encrypted credentials are never even tried.

The key comes from the key ring (:mod:`envfence.keyring`): ``ENVFENCE_KEY_<PREFIX>``
(``ENVFENCE_KEY_PROD``) when set, else the file ``.envfence/keys/<environment>.key``
under the project root, which must be readable by its owner only. ``envfence secret keygen`` creates it and
``envfence secret encrypt KEY`` prints the line to paste into a ``.env`` file.

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
    """Decrypt ``enc:fernet:`` values with the environment's key."""
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
    if "\0" in plain:
        # As for a .env line: no process can receive it (execve refuses it).
        raise ConfigurationError(
            f"{source}: {key} decrypts to a value holding a NUL byte",
            f"re-encrypt it without the NUL byte: `envfence --env {environment.name} secret encrypt {key}`",
        )
    return plain


@hookimpl
def register_commands(cli) -> None:
    """``envfence secret keygen`` and ``envfence secret encrypt KEY``."""
    import click

    from envfence.cli import State, pass_state
    from envfence.cli.output import dumps

    @click.group()
    def secret() -> None:
        """Encrypt configuration values at rest, one key per environment."""

    from envfence.cli.examples import examples

    @examples(
        "envfence --env production secret keygen",
    )
    @secret.command()
    @pass_state
    def keygen(state: State) -> None:
        """Create this environment's key file (owner-only; never overwritten)."""
        from cryptography.fernet import Fernet

        session = state.session()
        session.prepare()  # creating a key is an action: it goes on the audit trail
        from envfence import keyring

        path = keyring.create(session.root.path, session.environment.name, "encryption", Fernet.generate_key() + b"\n")
        session.audit("secret.key_created", path=str(path))
        click.echo(dumps({"key_file": str(path)}) if state.json else f"created {path} (mode 600); keep it out of version control")

    @examples(
        "envfence --env production secret encrypt AIRTABLE_API_KEY < token.txt",
    )
    @secret.command()
    @click.argument("key")
    @pass_state
    def encrypt(state: State, key: str) -> None:
        """Print KEY=enc:fernet:... for a value read from stdin or a hidden prompt."""
        session = state.session()
        settings, env = session.settings, session.environment.name
        owner = settings.naming.environment_of(key)
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
        fernet = load_key(session.root.path, env, settings.naming.prefix(env), session.environ)
        token = fernet.encrypt(value.encode("utf-8")).decode()
        session.audit("secret.encrypted", key=key)
        line = f"{key}={SCHEME}{token}"
        click.echo(dumps({"key": key, "line": line}) if state.json else line)

    cli.add_command(secret)
