"""``envfence backup`` and ``envfence restore``: a consistent, checksummed archive of an environment's state.

The archive (``.tar.gz``) holds, by their paths inside the environment's
tree: the run history and the webhook queue (copied through SQLite's backup
API, so a run or a delivery writing at the same time is never half-copied), the audit trail and its head (read
under the trail's shared lock), the configuration snapshots and the
operations state (pauses, alerts), each configuration snapshot whole (its
``.env`` copies included, so ``config rollback`` works after a restore), and
with ``[backup] include`` the CSV stages and the log files. The
environment's encryption key is added only with ``--include-key``, as
``key/<environment>.key``. ``manifest.json`` names the project, the
environment and the sha256 of every file; with the environment's audit key
``manifest.mac`` signs it. Settings (per environment with ``[backup.<env>]``,
see :mod:`envfence_builtins.operations.backup_settings`)::

    [backup]
    include = ["csv", "logs"]
    keep = 7          # archives of this project and environment kept in the directory written to
    schedule = "0 2 * * *"   # run by the host scheduler, written by `envfence schedule`

``backup verify ARCHIVE`` restores into a temporary directory and checks the
result (:func:`verify_archive`).

``restore`` verifies every checksum, the MAC and every member's own
environment first (:mod:`envfence_builtins.operations.backup_archive`),
refuses an archive of another environment (exit 3), and writes only into an
empty tree: the tree is written beside its place and renamed into it, so a
restore that fails leaves nothing half-written. Retention (``--keep``)
counts and removes only archives whose manifest names this project and
environment (and, with an audit key, that this key signed); the archive
just written always stays.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from envfence import slotted
from envfence import hookimpl
from envfence.errors import ConfigurationError, EnvfenceError, SafetyError
from envfence.models import utcnow

from envfence_builtins.operations.backup_archive import (
    FORMAT, MAC_MEMBER, MANIFEST, check_mac, foreign_members, key_member, manifest_mac, read_archive, read_manifest,
)

SECTION = "backup"
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
        path.unlink(missing_ok=True)
    return removed


# --- restore --------------------------------------------------------------------


def restore(session, archive: Path, dry_run: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Verify ``archive`` and put its files in place as the environment's tree (which must be empty), all or nothing."""
    from envfence import keyring

    read, signature = _checked_archive(session, archive)
    manifest, files = read.manifest, read.files
    env = session.environment.name
    _check_target(session)
    key = keyring.key_file(session.root.path, env, "encryption")
    if key_member(env) in files and (key.exists() or key.is_symlink()):
        raise EnvfenceError(f"{key} exists; the archive's key would replace it", "move the key aside, or restore the state without it")
    if progress is not None and hasattr(progress, "expect"):
        progress.expect(len(files))
    written = [] if dry_run else _install(session, files, key, progress)
    return {"archive": str(archive), "environment": env, "project": manifest.get("project"), "created_at": manifest["created_at"],
            "signature": signature, "dry_run": dry_run, "files": sorted(files), "written": written}


def _checked_archive(session, archive: Path):
    """The archive read and bound to this environment (checksums, MAC, members), as restore and verify need it."""
    read = read_archive(archive)
    env = session.environment.name
    if read.manifest["environment"] != env:
        raise SafetyError(
            f"{archive} is a backup of {read.manifest['environment']}, not of {env}; refusing to restore across environments",
            f"restore it with --env {read.manifest['environment']}",
        )
    signature = check_mac(read, audit_key(session), env)
    foreign = foreign_members(read.files, env)
    if foreign:
        more = f" (and {len(foreign) - 3} more)" if len(foreign) > 3 else ""
        raise SafetyError(f"{archive} says it is {env}'s, but {'; '.join(foreign[:3])}{more}; "
                          f"refusing to restore another environment's state",
                          "use an unaltered archive of this environment; nothing was restored")
    return read, signature


def verify_archive(session, archive: Path, check_trail: Callable[[Any, bytes | None], Any]) -> dict[str, Any]:
    """Restore ``archive`` into a temporary directory and check what came out; the environment's tree is not touched.

    Checked: every checksum, the manifest's MAC and every member's own
    environment (as for a restore); then, restored: the audit trail
    (``check_trail(paths, key)``, the audit plugin's verification, with the
    audit key when there is one), each SQLite database (``PRAGMA
    integrity_check``) and each configuration snapshot's copies against its
    manifest. :returns: the summary, ``ok`` False when a restored part is damaged.
    """
    import tempfile

    from envfence import files as tree_files

    read, signature = _checked_archive(session, archive)
    env, key = session.environment.name, audit_key(session)
    with tempfile.TemporaryDirectory(prefix="envfence-verify-") as scratch:
        old = session.paths
        base = Path(scratch) / old.base.name
        for name, data in read.files.items():
            if name != key_member(env):
                tree_files.write_atomic(base, name, data)
        paths = slotted.evolve(old, base=base, dirs={k: base / p.relative_to(old.base) for k, p in old.dirs.items()
                                                     if p.is_relative_to(old.base)})
        verdict = check_trail(paths, key)
        problems = [f"audit trail: {verdict.problem['reason']}"] if verdict.problem else []
        problems += [f"{name}: {why}" for name, why in _restored_problems(base, read.files)]
    return {"archive": str(archive), "environment": env, "created_at": read.manifest["created_at"], "signature": signature,
            "files": len(read.files), "audit_records": verdict.records, "ok": not problems, "problems": problems}


def _restored_problems(base: Path, members: dict[str, bytes]) -> Iterator[tuple[str, str]]:
    """What is damaged in a restored tree: a SQLite database that fails its integrity check, a snapshot copy unlike its manifest."""
    import sqlite3

    from envfence_builtins.operations.backup_archive import SNAPSHOT_MANIFEST

    for name, data in sorted(members.items()):
        if data.startswith(b"SQLite format 3\0"):
            try:
                db = sqlite3.connect(f"{(base / name).as_uri()}?mode=ro", uri=True)
                try:
                    said = db.execute("PRAGMA integrity_check").fetchone()[0]
                finally:
                    db.close()
            except sqlite3.DatabaseError as exc:
                said = str(exc)
            if said != "ok":
                yield name, f"SQLite integrity check: {said}"
        elif SNAPSHOT_MANIFEST.match(name):
            try:
                listed = json.loads(data).get("files") or {}
            except (ValueError, AttributeError):
                yield name, "the snapshot's manifest is damaged"
                continue
            folder = name.rsplit("/", 1)[0]
            for source, digest in sorted(listed.items()):
                copy = members.get(f"{folder}/{source}")
                if digest is not None and (copy is None or hashlib.sha256(copy).hexdigest() != digest):
                    yield f"{folder}/{source}", "the snapshot's copy is missing or not what its manifest recorded"


def _check_target(session) -> None:
    """The tree may be restored into: no link leading elsewhere, no file in it."""
    from envfence_builtins.runs.directories import inspect_tree

    paths, env = session.paths, session.environment.name
    unsafe = [f for f in inspect_tree(session, paths) if f.severity == "error" and f.code != "DIR_PERMISSIONS"]
    if unsafe:
        raise SafetyError(f"refusing to restore into the {env} tree: {unsafe[0].message}", unsafe[0].remediation or "")
    present = [str(p.relative_to(paths.base)) for p in paths.base.rglob("*") if p.is_file() or p.is_symlink()] if paths.base.exists() else []
    if present:
        raise EnvfenceError(
            f"the {env} tree ({paths.base}) is not empty ({len(present)} file(s), e.g. {present[0]}); restore writes only into an empty tree",
            f"move the tree aside first (mv {paths.base} {paths.base}.old), then restore again",
        )


def _install(session, files: dict[str, bytes], key: Path, progress: Callable[[str], None] | None) -> list[str]:
    """Write the tree beside its place, then rename it into place: a restore that fails leaves no partial tree.

    The key (outside the tree) is written before the rename and removed again
    if the rename fails, so a failed restore leaves neither.
    """
    import shutil
    import tempfile

    from envfence import files as tree_files, keyring
    from envfence.files import FileWriteError

    base = session.paths.base
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{base.name}.restoring-", dir=base.parent))  # owner-only, on the tree's file system
    except OSError as exc:
        raise FileWriteError(f"cannot stage the restore beside {base}: {exc.strerror}",
                             f"make {base.parent} writable by this user; nothing was restored") from None
    key_data = files.get(key_member(session.environment.name))
    wrote_key = False
    try:
        for name, data in files.items():
            if progress:
                progress(name)
            if name != key_member(session.environment.name):
                tree_files.write_atomic(stage, name, data)
        if key_data is not None:
            keyring.create(session.root.path, session.environment.name, "encryption", key_data)  # owner-only, never replacing a key
            wrote_key = True
        _swap_in(stage, base)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if wrote_key:
            key.unlink(missing_ok=True)
        raise
    return sorted(files)


def _swap_in(stage: Path, base: Path) -> None:
    """Rename ``stage`` to ``base``; empty directories left at ``base`` give way, a file there stops it."""
    import os

    from envfence.files import FileWriteError

    try:
        if base.is_dir() and not base.is_symlink():
            for directory, _, _ in sorted(os.walk(base), key=lambda entry: -len(entry[0])):
                os.rmdir(directory)  # only empty directories (checked before): a file that appeared since stops here
        os.rename(stage, base)
    except OSError as exc:
        raise FileWriteError(f"cannot put the restored tree in place at {base}: {exc.strerror}",
                             f"the tree at {base} was left as it was; move it aside and restore again") from None


@hookimpl(optionalhook=True)  # declared by the schedule plugin; absent without it
def scheduled_commands(session, environment: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``envfence backup`` at ``[backup] schedule`` (``[backup.<environment>] schedule``), when one is set."""
    when = settings_of(session, environment).schedule
    return [("envfence-backup", when, ("backup",))] if when else []


@hookimpl
def validate(session) -> list:
    """A ``[backup]`` table that stops ``backup`` (``BACKUP_INVALID``), found before a scheduled backup fails on it at night.

    A value of the wrong kind is ``check``'s own finding (``SETTINGS_INVALID``, from the declaration):
    one cause, one error. What the declaration alone cannot see is said here: a ``[backup.NAME]`` for
    no declared environment, and an unknown key (a warning for ``check``, but ``backup`` refuses it).
    """
    from envfence.models import Finding

    from envfence_builtins.operations.backup_settings import TABLE

    try:
        settings_of(session)
    except ConfigurationError as exc:
        if any(not p.unknown for p in TABLE.problems_here(session.settings.raw.get(SECTION), session.environment.name)):
            return []
        return [Finding("BACKUP_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    return []


@hookimpl
def declare_tables():
    """The ``[backup]`` table (:mod:`.backup_settings`)."""
    from envfence_builtins.operations.backup_settings import TABLE

    return [TABLE]


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence backup`` and ``envfence restore``."""
    from envfence_builtins.operations.backup_cli import backup, restore_cmd

    cli.add_command(backup)
    cli.add_command(restore_cmd)
