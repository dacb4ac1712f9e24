"""Configuration versions: one name for the state of an environment's configuration files, and what made it.

A version is a digest of the environment's file layers (``.env``,
``.env.<environment>``, the ``.local`` files), each by its content's sha256:
``cv-1a2b3c4d5e6f``. The same files give the same version on any host, so a
version names a state whether it is on disk, in a snapshot or in a git commit.

The ledger (``state/config-versions.jsonl`` in the environment's tree) says
what produced each version: a migration step (``config migrate``), a
deployment (``envfence deploy``) or a rollback. ``config history`` and
``deployments`` read it; one line is appended per event, so a crash leaves at
worst a torn last line, which is skipped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from . import files
from .digests import sha256_hex

LEDGER = "config-versions.jsonl"


def version_of(digests: Mapping[str, str | None]) -> str:
    """The version of a set of file layers, ``{source: sha256 of its content, or None when absent}``."""
    h = hashlib.sha256()
    for source in sorted(digests):
        if digests[source] is not None:  # an absent file and no file are the same state
            h.update(f"{source}\0{digests[source]}\n".encode())
    return "cv-" + h.hexdigest()[:12]


def file_layers(session: Any) -> dict[str, Path]:
    """The session's file layers, ``{source: path}`` (whatever files the plugins loaded)."""
    return {layer.source: layer.path for layer in session.config.layers if layer.path is not None}


def digest_of(path: Path) -> str | None:
    """sha256 of the file's content, or None when it does not exist."""
    try:
        return sha256_hex(path.read_bytes())
    except FileNotFoundError:
        return None


def file_digests(session: Any) -> dict[str, str | None]:
    """``{source: sha256}`` of the session's file layers as they are on disk now."""
    return {source: digest_of(path) for source, path in file_layers(session).items()}


def current(session: Any) -> str:
    """The version of the environment's configuration files as they are on disk now."""
    return version_of(file_digests(session))


def _ledger(session: Any) -> Path:
    paths = session.paths
    return paths.dirs.get("state", paths.base / "state") / LEDGER


def record(session: Any, version: str, by: str, name: str, digests: Mapping[str, str | None], **extra: Any) -> dict:
    """Append that ``version`` was produced ``by`` (``migration``, ``deployment``, ``rollback``) ``name``.

    The session must be prepared (the ledger is in the environment's tree).
    """
    entry = {"version": version, "by": by, "name": name, "at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
             "environment": session.environment.name, "files": dict(digests), **extra}
    with files.open_append(session.paths, _ledger(session)) as out:
        out.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def entries(session: Any) -> list[dict]:
    """The ledger, oldest first; a torn or foreign line is skipped (reads only, never through a link)."""
    path = _ledger(session)
    if session.paths is None or files.check_file(session.paths, path) is not None:
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("version"), str):
            found.append(entry)
    return found


def names(session: Any) -> dict[str, list[dict]]:
    """``{version: [the ledger entries that produced it]}``."""
    by_version: dict[str, list[dict]] = {}
    for entry in entries(session):
        by_version.setdefault(entry["version"], []).append(entry)
    return by_version


def label(entry: Mapping[str, Any]) -> str:
    """How a ledger entry is named to a reader: ``migration 0003_rename_token``, ``deployment d-…``."""
    return f"{entry.get('by')} {entry.get('name')}"
