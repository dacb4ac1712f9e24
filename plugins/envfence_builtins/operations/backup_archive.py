"""Reading an envfence archive back: its shape, its checksums, and whose it is.

Not a plugin: :mod:`envfence_builtins.operations.backup` writes archives and
restores them through these functions. Everything here reads; nothing is
written until every check has passed.

An archive is bound to its environment three ways, each checked before a
byte is restored:

- the manifest names the environment;
- with the environment's audit key (``ENVFENCE_AUDIT_KEY_<PREFIX>`` or
  ``.envfence/keys/<environment>.audit.key``) the manifest carries an
  HMAC-SHA256 (``manifest.mac``), so an edited manifest is refused;
- every member that can say whose it is must say the same: the audit trail's
  file name and each of its records, the head, each configuration
  snapshot's manifest, the run history's rows and the key's member name
  (``key/<environment>.key``). Editing the manifest's ``environment`` alone
  therefore never passes development's state off as production's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from envfence.errors import EnvfenceError

MANIFEST = "manifest.json"
MAC_MEMBER = "manifest.mac"
FORMAT = 2
_MAC_CONTEXT = b"envfence backup manifest\0"
_SQLITE_MAGIC = b"SQLite format 3\0"
_TRAIL = re.compile(r"^(?:.*/)?audit_(?P<env>.+)\.(?:jsonl|head)$")
#: A configuration snapshot's manifest inside an archive.
SNAPSHOT_MANIFEST = re.compile(r"^(?:.*/)?backups/config/[^/]+/manifest\.json$")


def key_member(environment: str) -> str:
    """The archive's name for the environment's encryption key: it names the environment it belongs to."""
    return f"key/{environment}.key"


def manifest_mac(key: bytes, manifest: bytes) -> str:
    """The HMAC-SHA256 of a manifest's exact bytes under the environment's audit key (a message of its own)."""
    return hmac.new(key, _MAC_CONTEXT + manifest, hashlib.sha256).hexdigest()


class Archive:
    """A verified archive: its manifest (parsed and raw), its MAC if any, and its files by name."""

    def __init__(self, path: Path, manifest: dict[str, Any], raw: bytes, mac: str | None, files: dict[str, bytes]) -> None:
        self.path, self.manifest, self.raw_manifest, self.mac, self.files = path, manifest, raw, mac, files

    def corrupt(self, why: str) -> EnvfenceError:
        """The error for an archive that cannot be restored, naming it and why."""
        return damaged(self.path, why)


def damaged(path: Path, why: str) -> EnvfenceError:
    """``path`` is no archive that can be restored; nothing was written."""
    return EnvfenceError(f"{path}: {why}", "the archive is damaged or not an envfence backup; nothing was restored; use another archive")


def read_manifest(path: Path) -> tuple[dict[str, Any], bytes, str | None] | None:
    """The manifest (parsed, raw) and MAC of an archive, reading no other member; None for anything unreadable."""
    import tarfile

    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:  # the manifest and its MAC are written first
                if member.name not in (MANIFEST, MAC_MEMBER) or not member.isfile() or member.size > 1 << 24:
                    break
                found[member.name] = tar.extractfile(member).read()
        manifest = _manifest(found[MANIFEST], lambda why: damaged(path, why))
    except (KeyError, EnvfenceError, tarfile.TarError, EOFError, OSError, ValueError):
        return None
    mac = found.get(MAC_MEMBER)
    return manifest, found[MANIFEST], mac.decode("ascii", "replace").strip() if mac is not None else None


def read_archive(path: Path) -> Archive:
    """The archive's manifest and files, every checksum verified; :class:`EnvfenceError` says what is wrong.

    Everything is checked before anything is restored: each member is a
    plain file with a clean relative name (no link, no ``..``, no name that
    another member needs as a directory), the manifest has its shape, and
    each member's size is the manifest's before it is read (an archive
    cannot make restore read more than it declares).
    """
    import tarfile

    corrupt = lambda why: damaged(path, why)  # noqa: E731
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members = tar.getmembers()
            names = _checked_names(members, corrupt)
            raw = tar.extractfile(members[names.index(MANIFEST)]).read()
            manifest = _manifest(raw, corrupt)
            mac = _read_mac(tar, members, names, corrupt)
            listed = manifest["files"]
            stored = set(names) - {MANIFEST, MAC_MEMBER}
            if set(listed) != stored:
                raise corrupt(f"files do not match the manifest: {sorted(set(listed) ^ stored)}")
            files: dict[str, bytes] = {}
            for member, name in zip(members, names):
                if name in (MANIFEST, MAC_MEMBER):
                    continue
                if member.size != listed[name].get("size"):
                    raise corrupt(f"{name}: size {member.size} is not the manifest's {listed[name].get('size')!r}")
                files[name] = tar.extractfile(member).read()
    except FileNotFoundError:
        raise EnvfenceError(f"{path}: no such archive", "check the path (`envfence backup` prints where it wrote)") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise corrupt(f"cannot be read ({type(exc).__name__}: {exc})") from None
    keys = [name for name in files if name.startswith("key/")]  # whose key it is, is checked with the other members
    if len(keys) > 1 or bool(keys) != (manifest.get("includes_key") is True):
        raise corrupt(f"the manifest says includes_key = {manifest.get('includes_key')!r}, but the archive holds "
                      f"{len(keys)} key(s)")
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != listed[name].get("sha256"):
            raise corrupt(f"{name}: checksum mismatch")
    return Archive(path, manifest, raw, mac, files)


def _checked_names(members, corrupt: Callable[[str], EnvfenceError]) -> list[str]:
    names = [_member_name(member, corrupt) for member in members]
    if len(set(names)) != len(names):
        raise corrupt(f"member {next(n for n in names if names.count(n) > 1)!r} is in the archive twice")
    for name in names:
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        if parents & set(names):
            raise corrupt(f"member {name!r} lies under another member, {sorted(parents & set(names))[0]!r}")
    if MANIFEST not in names:
        raise corrupt("no manifest.json")
    return names


def _read_mac(tar, members, names: list[str], corrupt: Callable[[str], EnvfenceError]) -> str | None:
    if MAC_MEMBER not in names:
        return None
    member = members[names.index(MAC_MEMBER)]
    if member.size > 256:
        raise corrupt(f"{MAC_MEMBER} is {member.size} bytes; a MAC is 64 hex digits")
    return tar.extractfile(member).read().decode("ascii", "replace").strip()


def _member_name(member, corrupt: Callable[[str], EnvfenceError]) -> str:
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
        raise corrupt(f"archive format {manifest.get('format')!r} is not {FORMAT} (archives are read by the envfence that "
                      f"made them or a later one of the same format)")
    return manifest


# --- whose archive it is ------------------------------------------------------------------


def check_mac(archive: Archive, key: bytes | None, environment: str) -> str:
    """``signed``, ``unsigned`` (no key here, none in the archive), or :class:`SafetyError` when the binding fails."""
    from envfence.errors import SafetyError

    where = f"{archive.path}"
    if key is None:
        if archive.mac is not None:
            raise SafetyError(
                f"{where} is signed with {environment}'s audit key, which is not available here; its manifest cannot be checked",
                f"provide the key (the audit key file, or ENVFENCE_AUDIT_KEY_<PREFIX>) and restore again; nothing was restored",
            )
        return "unsigned"
    if archive.mac is None:
        raise SafetyError(
            f"{where} carries no MAC, but {environment} has an audit key: an archive of {environment} is always signed",
            "use an archive made by `envfence backup` of this environment; nothing was restored",
        )
    if not hmac.compare_digest(archive.mac, manifest_mac(key, archive.raw_manifest)):
        raise SafetyError(
            f"{where}: the manifest's MAC does not match {environment}'s audit key: the manifest was edited, "
            f"or the archive is another project's or environment's",
            "use an unaltered archive of this project and environment; if the audit key was replaced since the archive "
            "was made, provide the key then in use (ENVFENCE_AUDIT_KEY_<PREFIX>); nothing was restored",
        )
    return "signed"


def foreign_members(files: dict[str, bytes], environment: str) -> list[str]:
    """Members that name an environment other than ``environment`` (each as ``name: what it says``)."""
    found: list[str] = []
    for name, data in sorted(files.items()):
        claim = _claimed_environment(name, data, environment)
        if claim is not None:
            found.append(f"{name} belongs to {claim}")
    return found


def _claimed_environment(name: str, data: bytes, environment: str) -> str | None:
    """The other environment a member names, or None when it names ``environment`` (or none at all)."""
    if name.startswith("key/"):
        return None if name == key_member(environment) else repr(name.removeprefix("key/").removesuffix(".key"))
    trail = _TRAIL.match(name)
    if trail and trail["env"] != environment:
        return repr(trail["env"])
    if trail or SNAPSHOT_MANIFEST.match(name):
        return _named_in_json(data, environment)
    if data.startswith(_SQLITE_MAGIC):
        return _named_in_database(data, environment)
    return None


def _named_in_json(data: bytes, environment: str) -> str | None:
    """Another environment named by a JSON document, or by any line of a JSON-lines file."""
    try:
        documents = [json.loads(data)]
    except ValueError:
        documents = []
        for line in data.splitlines():
            try:
                documents.append(json.loads(line))
            except ValueError:
                continue  # a torn line names nobody; `audit verify` reports it after the restore
    for document in documents:
        if isinstance(document, dict) and document.get("environment") not in (None, environment):
            return repr(document.get("environment"))
    return None


def _named_in_database(data: bytes, environment: str) -> str | None:
    """Another environment named in an ``environment`` column of any table of a SQLite database."""
    import sqlite3

    db = sqlite3.connect(":memory:")  # the member is read in memory: nothing is written to disk
    try:
        db.deserialize(data)
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({quoted})")]
            if "environment" in columns:
                row = db.execute(f"SELECT environment FROM {quoted} WHERE environment IS NOT ? LIMIT 1", (environment,)).fetchone()
                if row is not None:
                    return repr(row[0])
    except sqlite3.DatabaseError:
        return None  # a damaged database names nobody; its own plugin reports it after the restore
    finally:
        db.close()
    return None
