"""``envfence backup`` and ``envfence restore``: a consistent, checksummed archive of an environment's state.

The archive (``.tar.gz``) holds, by their paths inside the environment's
tree: the run history and the webhook queue (copied through SQLite's backup
API, so a run or a delivery writing at the same time is never half-copied), the audit trail and its head (read
under the trail's shared lock), the configuration snapshots and the
operations state (pauses, alerts). The environment's encryption key is
added only with ``--include-key``. ``manifest.json`` names the environment
and the sha256 of every file. Settings::

    [backup]
    keep = 7          # archives kept in the default directory (<tree>/backups/archives)

``restore`` verifies every checksum first, refuses an archive of another
environment (exit 3), and writes only into an empty tree.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from envfence import hookimpl
from envfence.errors import ConfigurationError, EnvfenceError, SafetyError
from envfence.models import utcnow

SECTION = "backup"
MANIFEST = "manifest.json"
FORMAT = 1
KEY_MEMBER = "key/environment.key"
DEFAULT_KEEP = 7
_NAME = re.compile(r"^envfence_(?P<env>.+)_(?P<at>\d{8}T\d{6}\.\d{6}Z)\.tar\.gz$")


def archive_dir(paths) -> Path:
    """``<tree>/backups/archives``: the default home of an environment's archives."""
    return paths.dirs.get("backups", paths.base / "backups") / "archives"


def keep(settings) -> int:
    """How many archives the retention policy keeps."""
    value = settings.section(SECTION).get("keep", DEFAULT_KEEP)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{settings.source}: {SECTION}.keep: {value!r} is not a number of archives", "write keep = 7")
    return value


def _relative(paths, path: Path) -> str:
    try:
        return PurePosixPath(path.relative_to(paths.base)).as_posix()
    except ValueError:
        raise EnvfenceError(f"{path} is outside the {paths.environment} tree ({paths.base}); it cannot be backed up by its place",
                            "keep the history and the audit trail inside the environment's tree") from None


def collect(session) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(name in the archive, reader)`` for every file of the environment's state."""
    from envfence.snapshots import listing

    from envfence_builtins.audit.trail_files import trail_path
    from envfence_builtins.runs.history import history_file
    from envfence_builtins.operations.state_files import state_dir
    from envfence_builtins.webhook_service.webhook_queue import queue_path

    paths = session.paths
    history = history_file(session)
    if history is not None and history.is_file():
        yield _relative(paths, history), lambda: sqlite_copy(history)
    queue = queue_path(paths)
    if queue.is_file() and not queue.is_symlink():  # accepted webhook events still to run, and the ids a replay is refused by
        yield _relative(paths, queue), lambda: _queue_copy(queue)
    trail = trail_path(paths)
    if trail.is_file():
        trail_bytes, head_bytes = read_trail(trail)
        yield _relative(paths, trail), lambda: trail_bytes
        if head_bytes is not None:
            yield _relative(paths, trail.with_suffix(".head")), lambda: head_bytes
    extra = [snapshot.path for snapshot in listing(session)] + [state_dir(paths)]
    for directory in extra:
        if not directory.is_dir() or directory.is_symlink():
            continue
        for file in sorted(directory.rglob("*")):
            if file.is_file() and not file.is_symlink() and not file.name.startswith("."):
                yield _relative(paths, file), file.read_bytes


def _queue_copy(path: Path) -> bytes:
    import sqlite3

    from envfence_builtins.webhook_service.webhook_queue import damaged

    try:
        return sqlite_copy(path)
    except sqlite3.DatabaseError as exc:
        raise damaged(path, exc) from None


def sqlite_copy(path: Path) -> bytes:
    """A consistent copy of a SQLite database, through SQLite's online backup API."""
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "copy.sqlite3"
        source = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return target.read_bytes()


def read_trail(trail: Path) -> tuple[bytes, bytes | None]:
    """The trail and its head, read together under the trail's shared lock (appends wait)."""
    import fcntl

    with open(trail, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        data = handle.read()
        head = trail.with_suffix(".head")
        return data, head.read_bytes() if head.is_file() else None


def create(session, output: Path | None = None, include_key: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the archive; returns its manifest with ``archive`` (its path) added."""
    from envfence import files

    from envfence import keyring

    from envfence_builtins.operations.state_files import write_outside

    paths = session.paths
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
        members.append((KEY_MEMBER, key + b"\n"))
    created = utcnow()
    manifest = {
        "format": FORMAT,
        "environment": env,
        "project": str(session.root.path),
        "created_at": created.isoformat(),
        "includes_key": include_key,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in members},
    }
    import tarfile  # imported when an archive is made or read, not by every command

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(created.timestamp())
            tar.addfile(info, io.BytesIO(data))
    directory = Path(output) if output else archive_dir(paths)
    target = directory / f"envfence_{env}_{created:%Y%m%dT%H%M%S.%fZ}.tar.gz"
    if output:
        write_outside(target, buffer.getvalue(), mode=0o600, session=session)
    else:
        files.write_atomic(paths, target, buffer.getvalue())
    return {**manifest, "archive": str(target)}


def prune(directory: Path, environment: str, count: int) -> list[Path]:
    """Remove the oldest archives of ``environment`` in ``directory`` beyond ``count``; returns what was removed."""
    mine = sorted((p for p in directory.glob("envfence_*.tar.gz") if (m := _NAME.match(p.name)) and m["env"] == environment),
                  key=lambda p: _NAME.match(p.name)["at"])
    removed = mine[:-count] if len(mine) > count else []
    for path in removed:
        path.unlink()
    return removed


# --- restore --------------------------------------------------------------------


def read_archive(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the files of an archive, every checksum verified; :class:`EnvfenceError` says what is wrong.

    Everything is checked before anything is restored: each member is a
    plain file with a clean relative name (no link, no ``..``, no name that
    another member needs as a directory), the manifest has its shape, and
    each member's size is the manifest's before it is read (an archive
    cannot make restore read more than it declares).
    """
    def corrupt(why: str) -> EnvfenceError:
        return EnvfenceError(f"{path}: {why}", "the archive is damaged or not an envfence backup; nothing was restored; use another archive")

    import tarfile

    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members = tar.getmembers()
            names = [_member_name(member, corrupt) for member in members]
            if len(set(names)) != len(names):
                raise corrupt(f"member {next(n for n in names if names.count(n) > 1)!r} is in the archive twice")
            for name in names:
                parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
                if parents & set(names):
                    raise corrupt(f"member {name!r} lies under another member, {sorted(parents & set(names))[0]!r}")
            if MANIFEST not in names:
                raise corrupt("no manifest.json")
            manifest = _manifest(tar.extractfile(members[names.index(MANIFEST)]).read(), corrupt)
            listed = manifest["files"]
            if set(listed) != set(names) - {MANIFEST}:
                raise corrupt(f"files do not match the manifest: {sorted(set(listed) ^ (set(names) - {MANIFEST}))}")
            files: dict[str, bytes] = {}
            for member, name in zip(members, names):
                if name == MANIFEST:
                    continue
                if member.size != listed[name].get("size"):
                    raise corrupt(f"{name}: size {member.size} is not the manifest's {listed[name].get('size')!r}")
                files[name] = tar.extractfile(member).read()
    except FileNotFoundError:
        raise EnvfenceError(f"{path}: no such archive", "check the path (`envfence backup` prints where it wrote)") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise corrupt(f"cannot be read ({type(exc).__name__}: {exc})") from None
    if (KEY_MEMBER in files) != (manifest.get("includes_key") is True):
        raise corrupt(f"the manifest says includes_key = {manifest.get('includes_key')!r}, but the key is "
                      f"{'there' if KEY_MEMBER in files else 'not'}")
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != listed[name].get("sha256"):
            raise corrupt(f"{name}: checksum mismatch")
    return manifest, files


def _member_name(member: tarfile.TarInfo, corrupt: Callable[[str], EnvfenceError]) -> str:
    """The member's name, if it is a plain file with a clean relative name (``a/b``, never ``./a``, ``/a`` or ``a/../b``)."""
    name = PurePosixPath(member.name)
    clean = bool(name.parts) and not name.is_absolute() and all(p not in ("..", ".") for p in name.parts) \
        and name.as_posix() == member.name
    if not member.isfile() or not clean:
        raise corrupt(f"member {member.name!r} is not a plain file inside the archive")
    return member.name


def _manifest(raw: bytes, corrupt: Callable[[str], EnvfenceError]) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise corrupt("manifest.json is damaged (not JSON)") from None
    shaped = (isinstance(manifest, dict) and isinstance(manifest.get("environment"), str)
              and isinstance(manifest.get("created_at"), str) and isinstance(manifest.get("files"), dict)
              and all(isinstance(v, dict) for v in manifest["files"].values()))
    if not shaped:
        raise corrupt("manifest.json is damaged (it needs environment, created_at and a table of files)")
    if manifest.get("format") != FORMAT:
        raise corrupt(f"archive format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def restore(session, archive: Path, dry_run: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Verify ``archive`` and write its files into the environment's empty tree."""
    from envfence import files as tree_files

    from envfence import keyring

    manifest, files = read_archive(archive)
    env = session.environment.name
    if manifest["environment"] != env:
        raise SafetyError(
            f"{archive} is a backup of {manifest['environment']}, not of {env}; refusing to restore across environments",
            f"restore it with --env {manifest['environment']}",
        )
    paths = session.paths
    from envfence_builtins.runs.directories import inspect_tree

    unsafe = [f for f in inspect_tree(session, paths) if f.severity == "error" and f.code != "DIR_PERMISSIONS"]
    if unsafe:
        raise SafetyError(f"refusing to restore into the {env} tree: {unsafe[0].message}", unsafe[0].remediation or "")
    present = [str(p.relative_to(paths.base)) for p in paths.base.rglob("*") if p.is_file() or p.is_symlink()] if paths.base.exists() else []
    if present:
        raise EnvfenceError(
            f"the {env} tree ({paths.base}) is not empty ({len(present)} file(s), e.g. {present[0]}); restore writes only into an empty tree",
            f"move the tree aside first (mv {paths.base} {paths.base}.old), then restore again",
        )
    key = keyring.key_file(session.root.path, env, "encryption")
    if KEY_MEMBER in files and (key.exists() or key.is_symlink()):
        raise EnvfenceError(f"{key} exists; the archive's key would replace it", "move the key aside, or restore the state without it")
    written = []
    if not dry_run:
        for name, data in files.items():
            if progress:
                progress(name)
            if name == KEY_MEMBER:
                keyring.create(session.root.path, env, "encryption", data)  # owner-only, never replacing a key
            else:
                tree_files.write_atomic(paths, name, data)
            written.append(name)
    return {"archive": str(archive), "environment": env, "created_at": manifest["created_at"], "dry_run": dry_run,
            "files": sorted(files), "written": written}


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence backup`` and ``envfence restore``."""
    from envfence_builtins.operations.backup_cli import backup, restore_cmd

    cli.add_command(backup)
    cli.add_command(restore_cmd)
