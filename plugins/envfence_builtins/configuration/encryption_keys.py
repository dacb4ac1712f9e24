"""The ``encryption`` plugin's keys: its ``[encryption]`` table, the environment's Fernet from the key ring,
the public key of its key pair, and values encrypted with them.

Shared by the plugin's hooks (:mod:`.encryption`), its commands
(:mod:`.encryption_cli`) and ``secret migrate`` (:mod:`.encryption_migration`).
The core's :mod:`envfence.keypairs` seals and opens values; the public keys
it seals to are read here, from the table this plugin declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from envfence.errors import ConfigurationError

SCHEME = "enc:fernet:"


def _encryption_table():
    from envfence.keypairs import PUBLIC_PREFIX
    from envfence.settings_kinds import text
    from envfence.settings_tables import Table

    table = Table("encryption", "encrypted values (enc:) and the environments' key pairs")
    table.add_table("public_keys", "each environment's public key, for sealing values to it (envfence secret keygen --pair)").add_free(
        text(pattern=PUBLIC_PREFIX + r"[A-Za-z0-9+/]{43}=", example=PUBLIC_PREFIX + "A" * 43 + "="),
        "the line envfence secret keygen --pair printed")
    return table


#: ``[encryption]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _encryption_table()


def public_key(settings: Any, environment: str) -> str | None:
    """The environment's public key from ``[encryption.public_keys]``, or None when it has no key pair.

    :raises ConfigurationError: the table or the entry is not what the declaration says, or the
        entry is not an ``x25519:`` key of 32 bytes (naming the file and the key).
    """
    from envfence import keypairs

    keys = TABLE.read(settings).sub("public_keys").free()
    value = keys.get(environment)
    if value is None:
        return None
    return keypairs.check_public(value, f"{settings.source}: encryption.public_keys.{environment}")


def write_public_key(settings: Any, environment: str, public: str) -> Path:
    """Add ``environment = "x25519:..."`` to the settings' ``[encryption.public_keys]`` table; return the file.

    The table is appended when the file has none; a file whose table is
    written another way (inline) is left alone with the line to add by hand.

    :raises UsageError: the project has no settings file, the environment has
        a public key already, or the table cannot be edited safely.
    """
    import re

    from envfence import files
    from envfence.errors import UsageError

    path = settings.path
    if path is None:
        raise UsageError("the project has no envfence.toml to keep the public key in", "create one (envfence init), then run this again")
    header = "[tool.envfence.encryption.public_keys]" if path.name == "pyproject.toml" else "[encryption.public_keys]"
    line = f'{environment} = "{public}"'
    if public_key(settings, environment) is not None:
        raise UsageError(f"{environment} has a public key in {path} already", "a key pair is never replaced here; remove the line first if you mean to")
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(header)}[ \t]*$", text, re.M)
    if found is not None:
        text = text[: found.end()] + "\n" + line + text[found.end():]
    elif re.search(r"^\s*(\[(tool\.envfence\.)?encryption\]|(tool\.envfence\.)?encryption\.public_keys\s*=)", text, re.M):
        raise UsageError(f"{path} writes the encryption table another way", f"add under {header}: {line}")
    else:
        text = text.rstrip("\n") + f"\n\n{header}\n{line}\n"
    files.write_atomic(path.parent, path.name, text, mode=path.stat().st_mode & 0o777)
    return path


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
    public = public_key(settings, env)
    if public is not None:
        return keypairs.seal(public, env, settings.naming.split(key)[1], value)
    return SCHEME + fernet_for(session).encrypt(value.encode("utf-8")).decode()
