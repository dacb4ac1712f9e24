"""Configuration snapshots and rollback, kept in the environment's own tree.

A snapshot copies the file layers of one environment (``.env``,
``.env.<environment>``, the ``.local`` files: whatever file layers the
plugins loaded) into ``backups/config/<id>/`` with a manifest of their
digests. Rolling back first snapshots the current files, so a rollback can
itself be rolled back, then puts the snapshot's files in place, each by an
atomic replace. Snapshot files hold secrets: directories are 0700, files 0600.
Every file is written through :mod:`envfence.files`, so a link planted at
``backups/config`` (or anywhere on the way) is refused, never copied through.

Snapshots age out by number, not by ``envfence clean``: taking one removes the
oldest beyond ``[snapshots] keep`` (default 20)::

    [snapshots]
    keep = 20
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from . import slotted
from .digests import sha256_hex
from . import files
from .errors import EnvfenceError, UsageError
from .pipeline import system_hostname

MANIFEST = "manifest.json"
#: How many snapshots an environment keeps when ``[snapshots] keep`` is not set.
DEFAULT_KEEP = 20


@slotted.frozen
class Snapshot:
    """One saved state of an environment's configuration files."""

    id: str
    path: Path
    created: str
    note: str
    files: dict[str, str | None]  #: layer source -> sha256, or None when the file did not exist


def _digest(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except FileNotFoundError:
        return None


def _store(session) -> Path:
    paths = session.paths
    if paths is None:
        raise UsageError("no plugin computes the environment's directories", "enable the directories plugin")
    return paths.dirs.get("backups", paths.base / "backups") / "config"


def keep_setting(settings) -> int:
    """``[snapshots] keep``: how many snapshots an environment keeps (checked when the settings load)."""
    from .settings import CORE

    return CORE.tables["snapshots"].read(settings)["keep"]


def _file_layers(session) -> dict[str, Path]:
    return {layer.source: layer.path for layer in session.config.layers if layer.path is not None}


def take(session, note: str = "") -> Snapshot:
    """Snapshot the session's file layers; the session must be prepared."""
    keep = keep_setting(session.settings)
    session.prepare()
    note = session.redactor()(note)  # the manifest is a record too
    tree = session.paths
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = _store(session) / stamp
    files.make_dirs(tree, target, mode=files.PRIVATE_DIR)
    saved: dict[str, str | None] = {}
    try:
        for source, path in _file_layers(session).items():
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                saved[source] = None
                continue
            saved[source] = sha256_hex(content)
            files.write_atomic(tree, target / source, content, mode=files.PRIVATE_FILE)
    except BaseException:
        files.remove(tree, target, recursive=True)  # no half snapshot left behind (a full disk)
        raise
    manifest = {
        "id": stamp,
        "environment": session.environment.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "host": system_hostname(),
        "note": note,
        "files": saved,
    }
    # The manifest last: a snapshot without one is incomplete and never listed.
    files.write_atomic(tree, target / MANIFEST, json.dumps(manifest, indent=2), mode=files.PRIVATE_FILE)
    session.audit("config.snapshot", id=stamp, files=saved, note=note)
    _prune(session, keep, stamp)
    return Snapshot(stamp, target, manifest["created"], note, saved)


def _prune(session, keep: int, current: str) -> None:
    """Remove the oldest snapshots beyond ``keep``; the one just taken always stays."""
    old = [s for s in listing(session) if s.id != current][keep - 1:]
    for snapshot in old:
        files.remove(session.paths, snapshot.path, recursive=True)
    if old:
        session.audit("config.snapshots_pruned", removed=[s.id for s in old], keep=keep)


def listing(session) -> list[Snapshot]:
    """The environment's snapshots, newest first (reads only)."""
    store = _store(session)
    found = []
    for manifest in sorted(store.glob(f"*/{MANIFEST}"), reverse=True):
        if files.check_file(session.paths, manifest) is not None:
            continue  # a link planted in the store is never read, listed or rolled back to
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue  # a damaged snapshot is skipped, not fatal
        note = session.redactor()(data.get("note", ""))  # a manifest written by hand, or before notes were masked
        found.append(Snapshot(data["id"], manifest.parent, data["created"], note, data["files"]))
    return found


def changed_since_newest(session) -> tuple[Snapshot | None, list[str]]:
    """The newest snapshot and the file layers that differ from it (changed, added or removed since); reads only."""
    try:
        snapshots = listing(session)
    except UsageError:
        return None, []
    if not snapshots:
        return None, []
    newest = snapshots[0]
    current = {source: _digest(path) for source, path in _file_layers(session).items()}
    changed = [source for source in sorted(set(current) | set(newest.files)) if current.get(source) != newest.files.get(source)]
    return newest, changed


def find(session, snapshot_id: str) -> Snapshot:
    """The snapshot with this id (or unique id prefix)."""
    snapshots = listing(session)
    matches = [s for s in snapshots if s.id.startswith(snapshot_id)]
    if len(matches) != 1:
        known = ", ".join(s.id for s in snapshots[:5]) or "none yet"
        problem = "matches several snapshots" if matches else "is no snapshot"
        raise UsageError(
            f"{snapshot_id!r} {problem} of the {session.environment.name} configuration (newest: {known})",
            "list them with `envfence config rollback --list`",
        )
    return matches[0]


def plan(session, snapshot: Snapshot) -> list[dict[str, Any]]:
    """What a rollback would change: one entry per file layer that differs."""
    changes = []
    current = _file_layers(session)
    for source, wanted in snapshot.files.items():
        path = current.get(source, session.root.path / source)
        now = _digest(path)
        if now != wanted:
            action = "remove" if wanted is None else ("create" if now is None else "restore")
            changes.append({"source": source, "action": action, "path": str(path)})
    return changes


def _saved(session, snapshot: Snapshot, source: str) -> bytes:
    """A snapshot's copy of ``source``, read without following a link and checked against its manifest's digest."""
    copy = snapshot.path / source
    problem = files.check_file(session.paths, copy)
    problem = None if problem == "hard link" else problem  # read, not written: the digest below decides
    content = None
    try:
        content = copy.read_bytes() if problem is None else None
    except OSError as exc:
        problem = exc.strerror
    if content is None or sha256_hex(content) != snapshot.files.get(source):
        raise EnvfenceError(
            f"snapshot {snapshot.id}: its copy of {source} ({copy}) cannot be used: "
            f"{problem or 'it is not what the snapshot recorded'}; nothing was changed",
            "roll back to another snapshot (`envfence config rollback --list`)",
        )
    return content


def contents(session, snapshot: Snapshot) -> dict[str, bytes | None]:
    """Each file layer as ``snapshot`` saved it (None: it did not exist), checked against the manifest's digests."""
    return {source: None if digest is None else _saved(session, snapshot, source) for source, digest in snapshot.files.items()}


def _refuse_unsafe(session, snapshot: Snapshot, changes: list[dict[str, Any]]) -> None:
    """Refuse the rollback before anything is written when a file it would change lies outside the project,
    behind a linked directory, or where a directory stands: never half a rollback."""
    from .errors import SafetyError

    for change in changes:
        path = Path(change["path"])
        problem = files.check_file(session.root.path, path)
        if problem in ("outside", "not a file") or (problem == "symlink" and not path.is_symlink()):
            why = {"outside": f"it is outside the project ({session.root.path})", "not a file": "something other than a file stands there",
                   "symlink": "a directory on its way is a symbolic link"}[problem]
            raise SafetyError(
                f"refusing to roll back {change['source']} to snapshot {snapshot.id}: {path}: {why}; nothing was changed",
                f"put a plain file (or nothing) at {path}, in real directories of the project, then roll back again",
            )


def rollback(session, snapshot: Snapshot, reason: str | None = None) -> tuple[Snapshot, list[dict[str, Any]]]:
    """Put ``snapshot``'s files back; returns the snapshot taken first and the changes."""
    changes = plan(session, snapshot)
    saved = {c["source"]: _saved(session, snapshot, c["source"]) for c in changes if c["action"] != "remove"}
    _refuse_unsafe(session, snapshot, changes)
    before = take(session, note=f"automatic, before rollback to {snapshot.id}")
    project = session.root.path
    for change in changes:
        # Through envfence.files from the project's root: a link on the way (a linked directory
        # holding a layer) is refused, never written through; a link at the name is replaced.
        path = Path(change["path"])
        if change["action"] == "remove":
            files.remove(project, path)
            continue
        # Keep the live file's mode; a file that comes back gets owner-only.
        mode = path.lstat().st_mode & 0o777 if path.is_file() and not path.is_symlink() else 0o600
        files.write_atomic(project, path, saved[change["source"]], mode=mode)
    session.audit(
        "config.rolled_back",
        to=snapshot.id,
        saved_as=before.id,
        changes=[{"source": c["source"], "action": c["action"]} for c in changes],
        reason=reason,
    )
    return before, changes
