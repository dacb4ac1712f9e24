"""Restoring an archive (``envfence restore``) and checking one without touching the tree (``backup verify``).

A restore verifies every checksum, the MAC and every member's own
environment first (:mod:`envfence_builtins.operations.backup_archive`),
refuses an archive of another environment (exit 3), and writes only into an
empty tree that no link leads out of: the tree is written beside its place
and renamed into it (:func:`envfence.files.make_stage`,
:func:`envfence.files.put_in_place`), so a restore that fails leaves nothing
half-written.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from envfence import slotted
from envfence.errors import EnvfenceError, SafetyError

from envfence_builtins.operations.backup_archive import check_mac, foreign_members, key_member, read_archive
from envfence_builtins.operations.backup_create import audit_key


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
    written = [] if dry_run else _install(session, files, progress)
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


def verify_archive(session, archive: Path) -> dict[str, Any]:
    """Restore ``archive`` into a temporary directory and check what came out; the environment's tree is not touched.

    Checked: every checksum, the manifest's MAC and every member's own
    environment (as for a restore); then, restored: the audit trail (by the
    plugin keeping it, ``verify_restored_trail``, with the audit key when
    there is one), each SQLite database (``PRAGMA integrity_check``) and each
    configuration snapshot's copies against its manifest.
    :returns: the summary, ``ok`` False when a restored part is damaged.
    """
    from envfence import files as tree_files

    read, signature = _checked_archive(session, archive)
    env, key = session.environment.name, audit_key(session)
    with tree_files.scratch("envfence-verify-") as scratch:
        old = session.paths
        base = scratch / old.base.name
        for name, data in read.files.items():
            if name != key_member(env):
                tree_files.write_atomic(base, name, data)
        paths = slotted.evolve(old, base=base, dirs={k: base / p.relative_to(old.base) for k, p in old.dirs.items()
                                                     if p.is_relative_to(old.base)})
        trail = restored_trail(session, paths, key)
        problems = [f"audit trail: {trail['problem']['reason']}"] if trail["problem"] else []
        problems += [f"{name}: {why}" for name, why in _restored_problems(base, read.files)]
    return {"archive": str(archive), "environment": env, "created_at": read.manifest["created_at"], "signature": signature,
            "files": len(read.files), "audit_records": trail["records"], "ok": not problems, "problems": problems}


def restored_trail(session, paths, key: bytes | None) -> dict[str, Any]:
    """The audit trail of the tree at ``paths`` checked by the plugin keeping it: ``{"records", "problem"}``.

    ``records`` is None when no plugin keeps a trail (``-p no:audit``); a
    plugin that fails the check is a problem naming it.
    """
    from envfence_builtins.operations.backup_hooks import BackupHooks

    result = BackupHooks(session.plugins).verify_restored_trail(session=session, paths=paths, key=key)
    if result.errors:
        failed = result.errors[0]
        return {"records": None, "problem": {"line": None, "seq": None, "reason": str(failed)}}
    answer = result.first
    if answer is None:
        return {"records": None, "problem": None}
    return {"records": answer["records"], "problem": answer["problem"]}


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
    from envfence import tree

    paths, env = session.paths, session.environment.name
    unsafe = tree.refusals(session)
    if unsafe:
        raise SafetyError(f"refusing to restore into the {env} tree: {unsafe[0].message}", unsafe[0].remediation or "")
    present = [str(p.relative_to(paths.base)) for p in paths.base.rglob("*") if p.is_file() or p.is_symlink()] if paths.base.exists() else []
    if present:
        raise EnvfenceError(
            f"the {env} tree ({paths.base}) is not empty ({len(present)} file(s), e.g. {present[0]}); restore writes only into an empty tree",
            f"move the tree aside first (mv {paths.base} {paths.base}.old), then restore again",
        )


def _install(session, files: dict[str, bytes], progress: Callable[[str], None] | None) -> list[str]:
    """Write the tree beside its place, then rename it into place: a restore that fails leaves no partial tree.

    The key (outside the tree) is written before the rename and removed again
    if the rename fails, so a failed restore leaves neither.
    """
    from envfence import files as tree_files, keyring
    from envfence.files import FileWriteError

    base = session.paths.base
    env = session.environment.name
    try:
        stage = tree_files.make_stage(base.parent, f".{base.name}.restoring-")  # owner-only, on the tree's file system
    except FileWriteError as exc:
        raise FileWriteError(f"cannot stage the restore beside {base}: {exc.message}",
                             f"make {base.parent} writable by this user; nothing was restored") from None
    key_data = files.get(key_member(env))
    wrote_key = False
    try:
        for name, data in files.items():
            if progress:
                progress(name)
            if name != key_member(env):
                tree_files.write_atomic(stage, name, data)
        if key_data is not None:
            keyring.create(session.root.path, env, "encryption", key_data)  # owner-only, never replacing a key
            wrote_key = True
        try:
            tree_files.put_in_place(base.parent, stage.name, base.name)
        except FileWriteError as exc:
            raise FileWriteError(f"cannot put the restored tree in place at {base}: {exc.message}",
                                 f"the tree at {base} was left as it was; move it aside and restore again") from None
    except BaseException:
        tree_files.remove(base.parent, stage.name, recursive=True)
        if wrote_key:
            keyring.remove(session.root.path, env, "encryption")
        raise
    return sorted(files)
