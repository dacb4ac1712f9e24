"""Making an archive of an environment's state (``envfence backup``) and keeping the newest ``[backup] keep``.

What goes in, the manifest and its MAC: see :mod:`envfence_builtins.operations.backup`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from envfence.errors import EnvfenceError, SafetyError
from envfence.models import utcnow

from envfence_builtins.operations.backup_archive import FORMAT, MAC_MEMBER, MANIFEST, key_member, manifest_mac, read_manifest

_NAME = re.compile(r"^envfence_(?P<env>.+)_(?P<at>\d{8}T\d{6}\.\d{6}Z)\.tar\.gz$")
#: The temporary name :func:`envfence.files.write_atomic` writes under: a write under way, not state.
_WRITING = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def archive_dir(paths) -> Path:
    """``<tree>/backups/archives``: the default home of an environment's archives."""
    return paths.dirs.get("backups", paths.base / "backups") / "archives"


def settings_of(session, environment: str | None = None):
    """The environment's ``[backup]`` settings, ``[backup.<environment>]`` overlaid."""
    from envfence_builtins.operations.backup_settings import backup_settings

    return backup_settings(session.settings, environment or session.environment.name)


def _relative(paths, path: Path) -> str:
    """``path``'s name inside the tree, as the archive names it; a path outside it (``..`` included) is refused."""
    from envfence.files import tree_parts

    try:
        return PurePosixPath(*tree_parts(paths.base, path)).as_posix()
    except SafetyError:
        raise EnvfenceError(f"{path} is outside the {paths.environment} tree ({paths.base}); it cannot be backed up by its place",
                            "keep the history and the audit trail inside the environment's tree") from None


def collect(session) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(name in the archive, reader)`` for every file of the environment's state.

    The plugins that keep files in the tree name them (``backup_files``); the
    configuration snapshots, the operations state and ``[backup] include`` are
    read here.
    """
    from envfence.snapshots import listing

    from envfence_builtins.operations.backup_hooks import BackupHooks
    from envfence_builtins.operations.state_files import state_dir

    paths = session.paths
    kept = BackupHooks(session.plugins).backup_files(session=session).flat()
    for path, read in sorted(kept, key=lambda entry: _relative(paths, entry[0])):
        yield _relative(paths, path), read
    extra = [snapshot.path for snapshot in listing(session)] + [state_dir(paths)] + included_dirs(session)
    for directory in extra:
        if not directory.is_dir() or directory.is_symlink():
            continue
        for file in sorted(directory.rglob("*")):
            # Every file, dotfiles included: a snapshot's copies are named `.env`, `.env.<environment>`.
            if file.is_file() and not file.is_symlink() and not _WRITING.match(file.name):
                yield _relative(paths, file), file.read_bytes


def included_dirs(session) -> list[Path]:
    """The directories ``[backup] include`` adds: the CSV stages (``csv``), the logs (``logs``)."""
    paths, parts = session.paths, settings_of(session).include
    found = [p for name, p in sorted(paths.dirs.items()) if "csv" in parts and name.split("/")[0] == "csv"]
    if "logs" in parts:
        found.append(paths.dirs.get("logs", paths.base / "logs"))
    return found


def create(session, output: Path | None = None, include_key: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the archive; returns its manifest with ``archive`` (its path) and ``signed`` added."""
    from envfence import files

    from envfence_builtins.operations.state_files import write_outside

    paths = session.paths
    env = session.environment.name
    members = _members(session, include_key, progress)
    created = utcnow()
    manifest = {
        "format": FORMAT,
        "environment": env,
        "project": str(session.root.path),
        "created_at": created.isoformat(),
        "includes_key": include_key,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in members},
    }
    raw = json.dumps(manifest, indent=2).encode()
    key = audit_key(session)
    # The manifest and its MAC first: retention reads them without reading the rest.
    heading = [(MANIFEST, raw)] + ([(MAC_MEMBER, manifest_mac(key, raw).encode())] if key is not None else [])
    import tarfile  # imported when an archive is made or read, not by every command

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [*heading, *members]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(created.timestamp())
            tar.addfile(info, io.BytesIO(data))
    directory = Path(output) if output else archive_dir(paths)
    target = directory / f"envfence_{env}_{created:%Y%m%dT%H%M%S.%fZ}.tar.gz"
    if output:
        write_outside(target, buffer.getvalue(), mode=0o600, session=session)
    else:
        files.write_atomic(paths, target, buffer.getvalue())
    return {**manifest, "signed": key is not None, "archive": str(target)}


def audit_key(session) -> bytes | None:
    """The environment's audit key from the key ring (the variable, else the owner-only key file), or None."""
    from envfence import keyring

    env = session.environment.name
    found = keyring.find(session.root.path, env, session.settings.naming.prefix(env), session.environ, "audit")
    return None if found is None else found.material


def _members(session, include_key: bool, progress: Callable[[str], None] | None) -> list[tuple[str, bytes]]:
    from envfence import keyring

    env = session.environment.name
    members: list[tuple[str, bytes]] = []
    for name, read in collect(session):
        if progress:
            progress(name)
        members.append((name, read()))
    if include_key:
        key = keyring.read(session.root.path, env, "encryption")
        if key is None:
            raise EnvfenceError(f"--include-key: {env} has no key file ({keyring.key_file(session.root.path, env, 'encryption')})",
                                f"create one with `envfence --env {env} secret keygen`, or leave the key out")
        members.append((key_member(env), key + b"\n"))
    return members


def prune(session, directory: Path, count: int, just_written: Path) -> list[Path]:
    """Remove the oldest archives of this project's environment in ``directory`` beyond ``count``; returns what was removed.

    An archive is this environment's when its manifest names this project and
    this environment and, where the environment has an audit key, its MAC
    verifies: another project's archives, another environment's, and
    anything else in the directory are never touched. The archive just
    written always stays, whatever dates the others claim.
    """
    from envfence import files

    env, project, key = session.environment.name, str(session.root.path), audit_key(session)
    mine = []
    for path in directory.glob("envfence_*.tar.gz"):
        if path == just_written or not _NAME.match(path.name) or path.is_symlink() or not path.is_file():
            continue
        read = read_manifest(path)
        if read is None:
            continue  # not an archive this command can read: not ours to remove
        manifest, raw, mac = read
        if manifest["environment"] != env or manifest.get("project") != project:
            continue
        if key is not None and (mac is None or not hmac.compare_digest(mac, manifest_mac(key, raw))):
            continue
        mine.append((manifest["created_at"], path.name, path))
    removed = [path for _, _, path in sorted(mine)[: max(0, len(mine) - (count - 1))]]
    for path in removed:
        files.remove(directory, path.name)  # the name in the directory read, never through a link
    return removed
