"""Small state files in an environment's tree: read as JSON, written atomically, never through a symlink.

Not a plugin: the operations plugins (maintenance pauses, alert state,
restored backups) keep their state through these two functions, so a crash
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from envfence.errors import EnvfenceError, SafetyError


def state_dir(paths) -> Path:
    """``<tree>/state``: where the operations plugins keep their files."""
    return paths.base / "state"


def write_atomic(path: Path, data: bytes, mode: int = 0o600, inside: Path | None = None) -> None:
    """Write ``data`` to ``path`` by a rename of a fresh temporary file.

    :param inside: when given, ``path`` must lie inside it once symlinks are
        resolved (an environment's tree), else :class:`SafetyError`.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if inside is not None and not path.parent.resolve().is_relative_to(inside.resolve()):
        raise SafetyError(f"refusing to write {path}: it leads outside {inside}", "remove the symlink that leads elsewhere")
    if path.is_symlink():
        raise SafetyError(f"refusing to write {path}: it is a symlink", "remove it; envfence never writes through a symlink")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path, default: Any) -> Any:
    """The JSON in ``path``, ``default`` when it does not exist; a damaged file is an error naming it."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EnvfenceError(f"{path} is damaged ({exc})", f"move it aside (mv {path} {path}.damaged); envfence starts a new one") from None


def write_json(path: Path, data: Any, inside: Path | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode("utf-8"), inside=inside)
