"""The key ring: each environment's keys, found, created and read in one place.

An environment has up to three keys, each of a :data:`KINDS` entry:

- ``encryption`` opens ``enc:fernet:`` values: ``ENVFENCE_KEY_<PREFIX>`` when set,
  else ``.envfence/keys/<environment>.key``;
- ``audit`` signs the audit trail's head and records:
  ``ENVFENCE_AUDIT_KEY_<PREFIX>``, else ``.envfence/keys/<environment>.audit.key``;
- ``private`` opens ``enc:x25519:`` values, the private half of the
  environment's key pair (:mod:`envfence.keypairs`): ``ENVFENCE_PRIVATE_KEY_<PREFIX>``,
  else ``.envfence/keys/<environment>.private.key``.

The files live under the project root, outside every environment's tree, in
an owner-only directory under a ``.gitignore`` that keeps them out of version
control. They are reached from the root one component at a time without
following a link (through :mod:`envfence.files`), so a ``.envfence`` or
``keys`` directory linked elsewhere is refused, never read or written
through; a key file must be a regular file its owner alone can read; and a
key is created once and never overwritten.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping

from . import slotted
from envfence import files
from envfence.errors import EnvfenceError, SafetyError, UsageError

#: Where the key files live, relative to the project root.
KEY_DIR = Path(".envfence") / "keys"
_IGNORE = "# envfence keys: never commit them\n*\n"


@slotted.frozen
class KeyKind:
    """One kind of key: the variable's stem, the file's suffix and the command that makes one."""

    variable: str
    suffix: str
    keygen: str


#: The kinds of key an environment may hold.
KINDS: dict[str, KeyKind] = {
    "encryption": KeyKind("ENVFENCE_KEY_", ".key", "secret keygen"),
    "audit": KeyKind("ENVFENCE_AUDIT_KEY_", ".audit.key", "audit keygen"),
    # The private half of an environment's key pair (envfence.keypairs); its public half is in the settings.
    "private": KeyKind("ENVFENCE_PRIVATE_KEY_", ".private.key", "secret keygen --pair"),
}


@slotted.frozen
class Key:
    """A key and where it came from (the variable's name or the file's path), never shown."""

    material: bytes = slotted.field(repr=False)
    source: str


def key_variable(kind: str, prefix: str) -> str:
    """The variable that may hold an environment's key of ``kind`` (``ENVFENCE_KEY_PROD``)."""
    return f"{KINDS[kind].variable}{prefix}"


def key_file(root: Path, environment: str, kind: str) -> Path:
    """Where the environment's key file of ``kind`` lives (it may not exist)."""
    return Path(root) / KEY_DIR / f"{environment}{KINDS[kind].suffix}"


def find(root: Path, environment: str, prefix: str, environ: Mapping[str, str], kind: str,
         *, error: type[EnvfenceError] = EnvfenceError) -> Key | None:
    """The environment's key of ``kind``: the variable when set, else the key file, else None.

    :param error: the class of the error raised for an unusable key file.
    :raises EnvfenceError: (as ``error``) the key file is a link, not a regular
        file, readable by others, empty or unreadable.
    """
    variable = key_variable(kind, prefix)
    value = environ.get(variable)
    if value:
        return Key(value.strip().encode(), variable)
    material = read(root, environment, kind, error=error)
    return None if material is None else Key(material, str(key_file(root, environment, kind)))


def read(root: Path, environment: str, kind: str, *, error: type[EnvfenceError] = EnvfenceError) -> bytes | None:
    """The content of the environment's key file of ``kind`` (stripped), or None when there is none."""
    path = key_file(root, environment, kind)
    remedy = f"remove it and run `envfence --env {environment} {KINDS[kind].keygen}`"
    try:
        fd = files.open_read(root, path)
    except SafetyError:
        raise error(f"{path}: a directory on its way or the key itself is a symbolic link; keys are never read through one",
                    f"put the key file itself under {Path(root) / KEY_DIR}") from None
    except files.FileWriteError as exc:
        if "not a regular file" in exc.message:
            raise error(f"{path}: is not a regular file, expected a key file", remedy) from None
        raise error(f"{path}: cannot read the key file ({exc.message})", "make it readable by this user, or set the variable") from None
    if fd is None:
        return None
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o077:
            raise error(f"{path}: the key file is readable by others (mode {stat.filemode(info.st_mode)})", f"chmod 600 {path}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            material = handle.read(65536).strip()
    except OSError as exc:
        raise error(f"{path}: cannot read the key file ({exc.strerror})", "make it readable by this user, or set the variable") from None
    finally:
        os.close(fd)
    if not material:
        raise error(f"{path}: the key file is empty", remedy)
    return material


def create(root: Path, environment: str, kind: str, material: bytes) -> Path:
    """Write a new key file of ``kind`` for the environment (owner-only); never replace one.

    Also writes ``.envfence/.gitignore`` (ignoring everything there) when it is missing.

    :raises UsageError: the key file exists.
    :raises SafetyError: ``.envfence`` or ``keys`` is a link (nothing is written through it).
    """
    path = key_file(root, environment, kind)
    relative = path.relative_to(root)
    ignore = KEY_DIR.parent / ".gitignore"  # ignores everything under .envfence
    if files.check_file(root, ignore) is None and not (Path(root) / ignore).exists():
        files.write_atomic(root, ignore, _IGNORE, mode=0o644, dir_mode=files.PRIVATE_DIR)
    try:
        return files.create_new(root, relative, material, mode=files.PRIVATE_FILE, dir_mode=files.PRIVATE_DIR)
    except FileExistsError:
        raise UsageError(f"{path} exists; a key is never overwritten", "move it away first if you really mean to replace it") from None


def remove(root: Path, environment: str, kind: str) -> bool:
    """Remove the environment's key file of ``kind`` (a restore that failed takes back the key it wrote); False when there was none.

    :raises SafetyError: ``.envfence`` or ``keys`` is a link (nothing is removed through it).
    """
    return files.remove(root, key_file(root, environment, kind).relative_to(root))


__all__ = ["KEY_DIR", "KINDS", "Key", "KeyKind", "create", "find", "key_file", "key_variable", "read", "remove"]
