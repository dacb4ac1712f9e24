"""Configuration values encrypted at rest, one key per environment.

A value written as ``enc:fernet:<token>`` in any ``.env`` file is decrypted
with the current environment's key when the session opens, and is a secret
from then on. Each environment has its own key, so a development machine that
holds only the development key cannot open production's values, and another
environment's encrypted credentials are never even tried.

The key is ``ENVFENCE_KEY_<PREFIX>`` (``ENVFENCE_KEY_PROD``) when set, else the
file ``.envfence/keys/<environment>.key`` under the project root, which must be
readable by its owner only. ``envfence secret keygen`` creates it and
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
KEY_DIR = Path(".envfence") / "keys"


def key_variable(prefix: str) -> str:
    """The variable that may hold an environment's key."""
    return f"ENVFENCE_KEY_{prefix}"


def key_file(root: Path, environment: str) -> Path:
    """Where an environment's key file lives."""
    return root / KEY_DIR / f"{environment}.key"


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
    """The environment's Fernet, from the variable or the owner-only key file."""
    variable = key_variable(prefix)
    if environ.get(variable):
        return _fernet(environ[variable].encode(), variable, environment)
    path = key_file(root, environment)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigurationError(
            f"no {environment} key: set {variable} or create {path}",
            f"run `envfence --env {environment} secret keygen` on a machine allowed to hold it",
        ) from None
    if not stat.S_ISREG(info.st_mode):
        # A FIFO would block the read forever; a directory cannot be a key.
        raise ConfigurationError(
            f"{path}: is not a regular file (mode {stat.filemode(info.st_mode)}), expected a key file",
            f"remove it and run `envfence --env {environment} secret keygen`, or set {variable}",
        )
    if info.st_mode & 0o077:
        raise ConfigurationError(
            f"{path}: the key file is readable by others (mode {stat.filemode(info.st_mode)})",
            f"chmod 600 {path}",
        )
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the key file ({exc.strerror})", f"make it readable by this user, or set {variable}") from None
    return _fernet(key, str(path), environment)


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

    @secret.command()
    @pass_state
    def keygen(state: State) -> None:
        """Create this environment's key file (owner-only; never overwritten)."""
        from cryptography.fernet import Fernet

        session = state.session()
        session.prepare()  # creating a key is an action: it goes on the audit trail
        from envfence import files

        root = session.root.path
        path = key_file(root, session.environment.name)
        # Through envfence.files: a linked .envfence or keys directory is refused, never written through.
        ignore = path.parent.parent / ".gitignore"
        if not ignore.exists() and not ignore.is_symlink():
            files.write_atomic(root, ignore.relative_to(root), "# envfence keys: never commit them\n*\n", mode=0o644, dir_mode=0o700)
        with files.directory(root, path.parent.relative_to(root), create=True, mode=0o700) as keys:
            try:
                fd = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=keys)
            except FileExistsError:
                raise UsageError(f"{path} exists; a key is never overwritten", "move it away first if you really mean to replace it") from None
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
        session.audit("secret.key_created", path=str(path))
        click.echo(dumps({"key_file": str(path)}) if state.json else f"created {path} (mode 600); keep it out of version control")

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
