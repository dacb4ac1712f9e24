"""The ``encryption`` plugin's commands: ``envfence secret keygen [--pair]``, ``secret encrypt KEY`` and ``secret migrate``."""

from __future__ import annotations

import sys

import click

from envfence.cli import State, pass_state
from envfence.cli.examples import examples
from envfence.errors import UsageError

from .encryption_keys import encrypt_for, public_key, write_public_key
from .encryption_migration import migrate_environment


@click.group()
def secret() -> None:
    """Encrypt configuration values at rest, one key (or key pair) per environment."""

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
    session = state.session()
    session.prepare()
    done = migrate_environment(session)
    _say(state, done, done["summary"])


def _keygen(state, session, pair: bool) -> None:
    from envfence import keypairs, keyring

    root, env = session.root.path, session.environment.name
    if not pair:
        from cryptography.fernet import Fernet

        path = keyring.create(root, env, "encryption", Fernet.generate_key() + b"\n")
        session.audit("secret.key_created", path=str(path))
        _say(state, {"key_file": str(path)}, f"created {path} (mode 600); keep it out of version control")
        return
    if public_key(session.settings, env) is not None:
        raise UsageError(f"{env} has a key pair already ({session.settings.source})", "a key pair is never replaced by keygen")
    private, public = keypairs.generate()
    path = keyring.create(root, env, "private", private)
    settings_file = write_public_key(session.settings, env, public)
    session.audit("secret.key_created", path=str(path), public_key=public, settings=str(settings_file))
    _say(state, {"private_key_file": str(path), "public_key": public, "settings": str(settings_file)},
         f"created {path} (mode 600): keep it on {env} hosts only\n"
         f"wrote {env}'s public key to {settings_file}: commit it, so anyone can `envfence --env {env} set KEY`")


def _say(state, data: dict, text: str) -> None:
    from envfence.cli.output import dumps

    click.echo(dumps(data) if state.json else text)
