"""The audit trail: an append-only, hash-chained JSON-lines file per environment.

Each environment keeps ``<tree>/audit/audit_<environment>.jsonl``. Every
record holds the hash of the record before it and its own hash, and the first
record's ``prev`` is derived from the environment and the file's name, so a
record edited, removed, inserted, or moved from another environment's trail
breaks the chain. A head file beside the trail (``audit_<environment>.head``)
holds the number and hash of the last record an append finished; with an
audit key (kept outside the tree, like the encryption key) the head is signed,
so a trail rewritten and re-hashed by someone without the key is found.
``envfence audit anchor`` prints the signed head as one line to keep
elsewhere; ``envfence audit verify --anchor LINE`` proves the trail still
extends it. What is and is not detected: ``docs/audit.md``.

Appends are crash-consistent. Under an exclusive lock, an append writes its
records with one ``write`` and fsyncs them, and only then replaces the head
(a temporary file, fsynced, renamed). A kill at any point leaves either the
old state, or the new records with the old head (the trail runs ahead of its
head: not tampering, the next append seals them), or a last line cut short,
which no head covers: the next append removes it and records an
``audit.repaired`` event. A write that fails (a full disk) is undone at once.
Every file is reached from the tree's base one component at a time without
following a symlink. The directory is owner-only (0700), the files 0600.

Records are kept only for a prepared session (see
:meth:`envfence.Session.prepare`): a dry run and a read-only command leave none.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import hmac
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Mapping

import attrs

from envfence import hookimpl
from envfence.errors import EnvfenceError, UsageError
from envfence.models import EnvPaths, Finding

#: ``prev`` of the first record of a trail written before records were bound to their file.
GENESIS = "0" * 64
#: The record format: version 2 records carry ``"v": 2`` and start from :func:`genesis`.
FORMAT = 2
#: The event an append writes when it removes a last line an interrupted append cut short.
REPAIRED = "audit.repaired"
#: The first record of a trail started over: by ``envfence audit restart``,
#: or by an append that found the trail gone while the run history shows runs.
RESTARTED = "audit.restarted"
#: ``envfence audit restart`` on a trail that an append started over: the loss is acknowledged.
ACKNOWLEDGED = "audit.acknowledged"
#: Why an append started a trail over by itself.
LOST = "the trail and its head were missing although the run history shows runs"
ANCHOR_TAG = "envfence-audit-anchor/1"
#: More records than this past the head are not what an interrupted append leaves.
_MAX_UNSEALED = 10_000


def trail_path(paths: EnvPaths) -> Path:
    """The environment's audit file: ``<tree>/audit/audit_<environment>.jsonl``."""
    return paths.dirs.get("audit", paths.base / "audit") / f"audit_{paths.environment}.jsonl"


def head_path(trail: Path) -> Path:
    """The head file beside a trail: ``audit_<environment>.head``."""
    return trail.with_suffix(".head")


def genesis(environment: str, name: str) -> str:
    """``prev`` of a trail's first record: binds the trail to its environment and file name."""
    return hashlib.sha256(f"envfence audit trail\0{environment}\0{name}".encode()).hexdigest()


#: Built once: ``json.dumps`` and ``json.loads`` with options build a new coder per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical(record: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(record).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """The sha256 of a record's canonical JSON, its own ``hash`` (and ``mac``) fields left out."""
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k not in ("hash", "mac")})).hexdigest()


class DuplicateKey(ValueError):
    """A JSON object names one key twice: the parser would keep only the last one."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


_STRICT = json.JSONDecoder(object_pairs_hook=_unique)


def parse_record(raw: bytes) -> dict[str, Any]:
    """One line of a trail as a record; a duplicate key is an error, not the last one winning.

    :raises ValueError: not a JSON object (:class:`DuplicateKey` for a key given twice).
    """
    record = _STRICT.decode(raw.decode("utf-8"))
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


# --- the audit key ------------------------------------------------------------------


def key_variable(prefix: str) -> str:
    """The variable that may hold an environment's audit key."""
    return f"ENVFENCE_AUDIT_KEY_{prefix}"


def key_file(root: Path, environment: str) -> Path:
    """The environment's audit key file, beside its encryption key, outside its tree."""
    from envfence_builtins.configuration.encryption import KEY_DIR

    return root / KEY_DIR / f"{environment}.audit.key"


def audit_key(session) -> bytes | None:
    """The environment's audit key: the variable, else the owner-only key file, else None.

    :raises EnvfenceError: the key file is readable by others, or is not a file.
    """
    prefix = session.settings.environments[session.environment.name].prefix
    value = session.environ.get(key_variable(prefix))
    if value:
        return value.strip().encode()
    path = key_file(session.root.path, session.environment.name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refusal(path, exc, "read") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EnvfenceError(f"{path}: the audit key is not a regular file", f"remove it and run `envfence audit keygen`")
        if info.st_mode & 0o077:
            raise EnvfenceError(f"{path}: the audit key is readable by others (mode {stat.filemode(info.st_mode)})", f"chmod 600 {path}")
        key = handle.read(4096).strip()
    if not key:
        raise EnvfenceError(f"{path}: the audit key is empty", f"remove it and run `envfence audit keygen`")
    return key


def sign(key: bytes, environment: str, name: str, seq: int, digest: str) -> str:
    """The HMAC-SHA256 of a head: the environment, the trail's file name, a record's number and hash."""
    message = f"envfence audit head\0{environment}\0{name}\0{seq}\0{digest}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_mac(key: bytes, environment: str, name: str, record: Mapping[str, Any]) -> str:
    """The HMAC-SHA256 a record carries (``mac``) when its environment has an audit key.

    Records an interrupted append left after the head are adopted by the next
    append; with a key, only those that carry it are, so nobody without the
    key can append records the next run would seal. (A message of its own,
    so that no record's ``mac`` can serve as a signed head.)
    """
    message = f"envfence audit record\0{environment}\0{name}\0{record.get('seq')}\0{record.get('hash')}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _unsigned_line(key: bytes, environment: str, name: str, raw: bytes) -> bool:
    try:
        return _unsigned(key, environment, name, parse_record(raw))
    except ValueError:
        return True


def _unsigned(key: bytes, environment: str, name: str, record: Mapping[str, Any]) -> bool:
    mac = record.get("mac")
    return not isinstance(mac, str) or not hmac.compare_digest(mac, record_mac(key, environment, name, record))


# --- confined files (no symlink followed, never outside the tree) -------------------


def _refusal(path: Path, exc: OSError, doing: str) -> EnvfenceError:
    """A clear error for a file operation on the trail that failed."""
    code = exc.errno
    if code == errno.ELOOP or (code == errno.ENOTDIR and os.path.islink(path)):
        return EnvfenceError(
            f"{path} is a symbolic link; the audit trail is never read or written through one",
            f"remove the link (ls -l {path}) and put the environment's own file back",
        )
    if code in (errno.EISDIR, errno.ENOTDIR):
        return EnvfenceError(
            f"{path} is not a regular file (or a directory on its path is not a directory)",
            f"move it aside (mv {path} {path}.aside), then run `envfence audit verify`",
        )
    if code in (errno.EACCES, errno.EPERM):
        return EnvfenceError(f"{path} cannot be {doing}: permission denied", f"as its owner: chmod 600 {path} (its directory 700)")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return EnvfenceError(
            f"cannot write {path}: {exc.strerror or 'No space left on device'}",
            f"free space on the disk holding {path.parent}; the trail is as it was",
        )
    return EnvfenceError(f"{path} cannot be {doing}: {exc.strerror or exc}", "check the environment's tree (envfence check)")


def _open_dir(paths: EnvPaths, directory: Path, create: bool) -> int | None:
    """A descriptor of ``directory``, reached from the tree's base without following a symlink.

    :returns: None when it does not exist and ``create`` is false.
    :raises EnvfenceError: it lies outside the tree, or a component is a symlink or a file.
    """
    base = paths.base
    try:
        parts = directory.relative_to(base).parts
    except ValueError:
        raise EnvfenceError(f"{directory} is outside the {paths.environment} tree ({base})", "keep the audit directory inside the tree") from None
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    where = base
    try:
        fd = os.open(base, flags)
    except FileNotFoundError:
        if not create:
            return None
        raise EnvfenceError(f"{base} does not exist", "run `envfence init` to create the environment's tree") from None
    except OSError as exc:
        raise _refusal(base, exc, "opened") from None
    try:
        for part in parts:
            where = where / part
            if create:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                inner = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if create:
                    raise
                os.close(fd)
                return None
            os.close(fd)
            fd = inner
        if create:
            os.fchmod(fd, 0o700)
        return fd
    except OSError as exc:
        os.close(fd)
        raise _refusal(where, exc, "opened") from None


def _open_file(dir_fd: int, path: Path, flags: int, doing: str) -> int | None:
    """A descriptor of a regular file in ``dir_fd``, never through a symlink; None when missing."""
    try:
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refusal(path, exc, doing) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refusal(path, OSError(errno.EISDIR, "not a regular file"), doing)
    if info.st_nlink > 1 and flags & (os.O_WRONLY | os.O_RDWR):
        from envfence.files import hard_linked

        os.close(fd)
        raise hard_linked(path, info.st_nlink)
    return fd


def _read_small(dir_fd: int, path: Path) -> bytes | None:
    fd = _open_file(dir_fd, path, os.O_RDONLY, "read")
    if fd is None:
        return None
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _replace(paths: EnvPaths, path: Path, data: bytes) -> None:
    """Replace ``path`` whole (temporary file, fsync, rename, directory fsync), never through a link."""
    from envfence import files

    files.write_atomic(paths, path, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- the head -----------------------------------------------------------------------


@attrs.frozen
class Head:
    """What a head file says: the last sealed record's number and hash, and its signature."""

    seq: int
    hash: str
    mac: str | None = None
    environment: str | None = None  #: None in a head written before heads named their trail
    file: str | None = None

    def to_bytes(self) -> bytes:
        data = {"v": FORMAT, "environment": self.environment, "file": self.file, "seq": self.seq, "hash": self.hash}
        if self.mac:
            data["mac"] = self.mac
        return json.dumps(data, sort_keys=True).encode() + b"\n"

    def anchor(self) -> str:
        """The head as one line to keep elsewhere."""
        return f"{ANCHOR_TAG} {self.environment} {self.seq} {self.hash} {self.mac or '-'}"


def _parse_head(raw: bytes, path: Path) -> Head:
    try:
        data = parse_record(raw)
        seq, digest = data["seq"], data["hash"]
        if not isinstance(seq, int) or not isinstance(digest, str):
            raise ValueError
    except (ValueError, KeyError):
        raise EnvfenceError(f"{path} is damaged (not a head)", "run `envfence audit verify` and keep the files as evidence") from None
    return Head(seq, digest, data.get("mac"), data.get("environment"), data.get("file"))


def parse_anchor(line: str) -> Head:
    """An anchor line printed by ``envfence audit anchor``.

    :raises UsageError: it is not one.
    """
    parts = line.split()
    try:
        tag, environment, seq, digest, mac = parts
        if tag != ANCHOR_TAG or len(digest) != 64:
            raise ValueError
        return Head(int(seq), digest, None if mac == "-" else mac, environment)
    except ValueError:
        raise UsageError(
            f"not an anchor line: {line[:120]!r}", f"give the whole line `envfence audit anchor` printed ({ANCHOR_TAG} ENV SEQ HASH MAC)"
        ) from None


# --- appending ----------------------------------------------------------------------


def _reverse_lines(fd: int, end: int) -> Iterator[bytes]:
    """The complete lines ending at ``end`` (just after a newline), newest first, read in blocks from the end."""
    buf, pos = b"", end
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        while cut != -1:
            yield buf[cut + 1 :]
            buf = buf[: cut + 1]
            cut = buf.rfind(b"\n", 0, len(buf) - 1)
    if buf:
        yield buf


def _lines_back(fd: int, end: int, count: int) -> list[bytes]:
    """Up to ``count`` complete lines ending at ``end``, oldest first."""
    return list(itertools.islice(_reverse_lines(fd, end), count))[::-1]


def _torn_tail(fd: int, size: int) -> int:
    """How many bytes at the end of the file follow its last newline (a last line cut short)."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        chunk = os.pread(fd, step, pos - step)
        cut = chunk.rfind(b"\n")
        if cut != -1:
            return size - (pos - step + cut + 1)
        pos -= step
    return size


def _broken(trail: Path, what: str) -> EnvfenceError:
    return EnvfenceError(
        f"{trail}: {what}; refusing to extend a broken trail",
        "run `envfence audit verify` to see where, keep the files as evidence, then `envfence audit restart --reason TEXT`",
    )


def append(
    paths: EnvPaths,
    entries: list[dict[str, Any]],
    *,
    key: bytes | None = None,
    context: Mapping[str, Any] | None = None,
    has_runs=lambda: False,
    restart_reason: str | None = None,
) -> list[dict[str, Any]]:
    """Append ``entries`` to the environment's trail under one lock, chained to its last record.

    :param key: the audit key that signs the new head, if the environment has one.
    :param context: fields of an ``audit.repaired`` record written first when
        the last line was cut short by an interrupted append (user, host, pid).
    :param has_runs: called when the trail does not exist yet: True when the
        history shows runs, so the trail was removed; the new trail then starts
        with an ``audit.restarted`` record saying so, which ``verify`` reports
        until the loss is acknowledged (runs go on meanwhile).
    :param restart_reason: start a new trail (``envfence audit restart``); the
        old files must already have been moved aside.
    :returns: the records as written (with ``v``, ``seq``, ``prev`` and ``hash``).
    :raises EnvfenceError: the trail cannot be written, or it is damaged or
        shortened in a way no crash leaves (it is not extended blindly).
    """
    import fcntl

    trail = trail_path(paths)
    head_file = head_path(trail)
    dir_fd = _open_dir(paths, trail.parent, create=True)
    try:
        existed = _open_file(dir_fd, trail, os.O_RDONLY, "read")
        if existed is not None:
            os.close(existed)
        elif restart_reason is None and _read_small(dir_fd, head_file) is None:
            if _moved_aside(dir_fd, trail):
                raise _broken(trail, _INTERRUPTED)
            if has_runs():
                restart_reason = LOST
        fd = _open_file(dir_fd, trail, os.O_RDWR | os.O_APPEND | os.O_CREAT, "written")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return _append_locked(paths, dir_fd, fd, entries, key, context or {}, restart_reason)
        finally:
            os.close(fd)  # releases the lock
    finally:
        os.close(dir_fd)


def _append_locked(paths, dir_fd, fd, entries, key, context, restart_reason) -> list[dict[str, Any]]:
    trail = trail_path(paths)
    head_file = head_path(trail)
    env, name = paths.environment, trail.name
    size = os.fstat(fd).st_size
    raw_head = _read_small(dir_fd, head_file)
    head = _parse_head(raw_head, head_file) if raw_head is not None else None
    written: list[dict[str, Any]] = []
    if head is not None and (head.environment not in (None, env) or head.file not in (None, name)):
        raise _broken(trail, f"its head belongs to {head.environment}'s {head.file}: heads were swapped")
    if size == 0:
        if head is not None and head.seq > 0:
            raise _broken(trail, f"the trail is empty but its head says record {head.seq}")
        if head is None:
            # The head exists before the first record, so a head missing beside
            # a non-empty trail is never what a crash leaves.
            _replace(paths, head_file, Head(0, genesis(env, name), None, env, name).to_bytes())
        prev, seq = genesis(env, name), 0
        if restart_reason is not None:
            data = {"reason": restart_reason, "automatic": restart_reason == LOST}
            entries = [{**context, "at": _now(), "event": RESTARTED, "environment": env, "data": data}, *entries]
    else:
        if head is None:
            raise _broken(trail, f"its head {head_file.name} is missing")
        torn = _torn_tail(fd, size)
        end = size - torn
        if end == 0:
            prev, seq = genesis(env, name), 0
        else:
            try:
                last = parse_record(_lines_back(fd, end, 1)[0])
                prev, seq = last["hash"], int(last["seq"])
            except (ValueError, KeyError, TypeError, IndexError):
                raise _broken(trail, "its last record is damaged") from None
            if last.get("environment") != env:
                raise _broken(trail, f"its last record belongs to {last.get('environment')!r}, not {env}: trails were swapped")
        if head.seq > seq:
            raise _broken(trail, f"it ends at record {seq} but its head says record {head.seq}: records were removed")
        if head.seq and (seq - head.seq > _MAX_UNSEALED or _hash_of(_lines_back(fd, end, seq - head.seq + 1)[0]) != head.hash):
            raise _broken(trail, f"record {head.seq} does not match its head: the trail was rewritten")
        if key and seq > head.seq and any(_unsigned_line(key, env, name, r) for r in _lines_back(fd, end, seq - head.seq)):
            raise _broken(trail, f"a record after its head (#{head.seq}) does not carry the audit key's signature: it was added without the key")
        if torn:
            # A last line cut short by an interrupted append: no head covers it
            # (the head is replaced only after a complete write), so it was
            # never acknowledged. Remove it, on the record.
            cut = os.pread(fd, torn, end)
            os.ftruncate(fd, end)
            os.fsync(fd)
            size = end
            repair = {"removed_bytes": torn, "removed_sha256": hashlib.sha256(cut).hexdigest()}
            entries = [{**context, "at": _now(), "event": REPAIRED, "environment": env, "data": repair}, *entries]
    for entry in entries:
        seq += 1
        record = {**entry, "v": FORMAT, "seq": seq, "prev": prev}
        record["hash"] = prev = record_hash(record)
        if key:
            record["mac"] = record_mac(key, env, name, record)
        written.append(record)
    data = b"".join(_canonical(r) + b"\n" for r in written)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except OSError as exc:
        try:  # undo a partial write (a full disk): the trail stays as it was
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            pass  # the next append removes the cut-short line
        raise _refusal(trail, exc, "written") from None
    mac = sign(key, env, name, seq, prev) if key else None
    try:
        _replace(paths, head_file, Head(seq, prev, mac, env, name).to_bytes())
    except EnvfenceError:
        # The records go with the head that could not be written: the action
        # stops, and the trail is as it was (a kill here leaves a valid trail too).
        os.ftruncate(fd, size)
        os.fsync(fd)
        raise
    return written


_INTERRUPTED = "it was moved aside and no new trail started: an `audit restart` was interrupted"


def _moved_aside(directory: int | Path, trail: Path) -> bool:
    """Whether ``move_aside`` left a ``<trail>.broken-…`` beside the (missing) trail."""
    try:
        return any(n.startswith(f"{trail.name}.broken-") for n in os.listdir(directory))
    except OSError:
        return False


def _hash_of(line: bytes) -> str | None:
    try:
        return parse_record(line).get("hash")
    except ValueError:
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


# --- reading ------------------------------------------------------------------------


@attrs.define
class Snapshot:
    """A trail opened for reading: its size and head at one moment, read without holding a lock."""

    trail: Path
    fd: int | None  #: None when the trail does not exist
    size: int
    head: Head | None
    head_error: EnvfenceError | None = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def lines(self) -> Iterator[bytes]:
        """The raw lines up to the snapshot's size, oldest first; the last may lack its newline."""
        if self.fd is None:
            return
        with os.fdopen(os.dup(self.fd), "rb", buffering=1 << 20) as handle:
            left = self.size
            for raw in handle:
                if len(raw) >= left:
                    yield raw[:left]
                    return
                left -= len(raw)
                yield raw

    def lines_from_end(self) -> Iterator[bytes]:
        """The complete lines, newest first (a last line cut short is left out)."""
        if self.fd is None:
            return iter(())
        return _reverse_lines(self.fd, self.size - _torn_tail(self.fd, self.size))


def open_snapshot(paths: EnvPaths) -> Snapshot:
    """Open the trail and read its head under a brief shared lock, so both match.

    :raises EnvfenceError: the trail or its directory is a symlink, not a
        regular file, or unreadable.
    """
    import fcntl

    trail = trail_path(paths)
    head_file = head_path(trail)
    dir_fd = _open_dir(paths, trail.parent, create=False)
    if dir_fd is None:
        return Snapshot(trail, None, 0, None)
    try:
        fd = _open_file(dir_fd, trail, os.O_RDONLY, "read")
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            raw = _read_small(dir_fd, head_file)
            size = os.fstat(fd).st_size if fd is not None else 0
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(dir_fd)
    snapshot = Snapshot(trail, fd, size, None)
    if raw is not None:
        try:
            snapshot.head = _parse_head(raw, head_file)
        except EnvfenceError as exc:
            snapshot.head_error = exc
    return snapshot


def records(paths: EnvPaths) -> Iterator[dict[str, Any]]:
    """The trail's records, oldest first, streamed; lines that are not records are skipped (``verify`` reports them)."""
    with open_snapshot(paths) as snapshot:
        for raw in snapshot.lines():
            try:
                yield json.loads(raw)
            except ValueError:
                continue


def records_from_end(paths: EnvPaths, count: int, keep=lambda record: True) -> list[dict[str, Any]]:
    """The last ``count`` records that ``keep`` accepts, oldest first, read backwards from the end.

    The time depends on how far back they are, not on the trail's length.
    """
    found: list[dict[str, Any]] = []
    with open_snapshot(paths) as snapshot:
        for raw in snapshot.lines_from_end():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if keep(record):
                found.append(record)
                if len(found) == count:
                    break
    return found[::-1]


# --- verifying ----------------------------------------------------------------------


@attrs.define
class Verdict:
    """What ``verify`` found."""

    trail: Path
    exists: bool
    records: int = 0
    problem: dict[str, Any] | None = None  #: ``line``, ``seq`` (when known), ``reason``
    notes: list[str] = attrs.field(factory=list)  #: not tampering, but worth saying
    head: Head | None = None
    signed: bool = False  #: the head's signature was checked with the audit key
    #: The trail was started over by an append because it was gone; nobody acknowledged it yet.
    unacknowledged: str | None = None
    anchored: bool = False  #: an anchor was given and the trail extends it

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(paths: EnvPaths, *, key: bytes | None = None, anchor: Head | None = None, has_runs=lambda: False) -> Verdict:
    """Check the trail, streaming: the chain, its binding, its head, its signature, an anchor.

    :param key: the audit key; when given, the head must carry its signature.
    :param anchor: a head kept elsewhere (``audit anchor``) that the trail must still extend.
    :param has_runs: called when the trail is missing: True when the run
        history shows runs, so the trail was removed.
    :raises EnvfenceError: the trail cannot be read (a symlink, a directory, no permission).
    """
    with open_snapshot(paths) as snapshot:
        verdict = Verdict(snapshot.trail, snapshot.fd is not None, head=snapshot.head)
        if snapshot.head_error is not None:
            verdict.problem = _problem(None, None, snapshot.head_error.message)
            return verdict
        if anchor is not None and anchor.environment != paths.environment:
            verdict.problem = _problem(None, None, f"the anchor is for {anchor.environment}, not {paths.environment}")
            return verdict
        _check(snapshot, paths, verdict, key, anchor, has_runs)
    return verdict


def _problem(line: int | None, seq: Any, reason: str) -> dict[str, Any]:
    return {"line": line, "seq": seq, "reason": reason}


def _check(snapshot: Snapshot, paths: EnvPaths, verdict: Verdict, key, anchor, has_runs) -> None:
    env, name = paths.environment, snapshot.trail.name
    head = snapshot.head
    bound, legacy = genesis(env, name), GENESIS
    prev, seq, count = None, 0, 0
    at_head = at_anchor = None
    line = 0
    for raw in snapshot.lines():
        line += 1
        if not raw.endswith(b"\n"):
            if head is not None and head.seq > seq:
                verdict.problem = _problem(line, None, "a sealed record is cut short (the trail was truncated)")
                return
            verdict.notes.append(
                f"line {line} is a record cut short by an interrupted append (never acknowledged); the next append removes it"
            )
            break
        try:
            record = parse_record(raw)
            claimed = record["hash"]
        except DuplicateKey as exc:
            verdict.problem = _problem(line, None, f"it names the key {str(exc)!r} twice (edited)")
            return
        except (ValueError, KeyError, TypeError):
            verdict.problem = _problem(line, None, "not a valid record (edited)")
            return
        if record_hash(record) != claimed:
            verdict.problem = _problem(line, record.get("seq"), "its content does not match its hash (edited)")
            return
        if prev is None:
            start = legacy if "v" not in record else bound
            if record.get("prev") != start or record.get("seq") != 1:
                reason = "it does not start this trail: the file was copied from another environment or file"
                verdict.problem = _problem(line, record.get("seq"), reason)
                return
        elif record.get("prev") != prev or record.get("seq") != seq + 1:
            reason = "it does not follow the record before it (a record was removed, inserted or reordered)"
            verdict.problem = _problem(line, record.get("seq"), reason)
            return
        if record.get("environment") != env:
            verdict.problem = _problem(line, record.get("seq"), f"it belongs to {record.get('environment')!r}, not {env}: trails were swapped")
            return
        if key is not None and head is not None and record["seq"] > head.seq and _unsigned(key, env, name, record):
            reason = f"it comes after the head (#{head.seq}) without the audit key's signature: it was added without the key"
            verdict.problem = _problem(line, record.get("seq"), reason)
            return
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        if record.get("event") == RESTARTED and record.get("seq") == 1:
            if data.get("automatic"):
                verdict.unacknowledged = str(record.get("at"))
            else:
                verdict.notes.append(f"the trail was started over at {record.get('at')}: {data.get('reason')}")
        elif record.get("event") == ACKNOWLEDGED and verdict.unacknowledged:
            verdict.notes.append(f"the trail was lost before {verdict.unacknowledged}; acknowledged: {data.get('reason')}")
            verdict.unacknowledged = None
        prev, seq, count = claimed, record["seq"], count + 1
        if head is not None and seq == head.seq:
            at_head = claimed
        if anchor is not None and seq == anchor.seq:
            at_anchor = claimed
    verdict.records = count
    _check_ends(snapshot, paths, verdict, key, anchor, has_runs, seq, at_head, at_anchor)


def _check_ends(snapshot, paths, verdict, key, anchor, has_runs, seq, at_head, at_anchor) -> None:
    env, name, head = paths.environment, snapshot.trail.name, snapshot.head
    if snapshot.fd is None:
        if head is not None:
            verdict.problem = _problem(None, None, f"the trail is missing but its head says record {head.seq}: it was removed")
        elif _moved_aside(snapshot.trail.parent, snapshot.trail):
            verdict.problem = _problem(None, None, _INTERRUPTED)
        elif has_runs():
            verdict.problem = _problem(None, None, "the trail is missing although the run history shows runs: it was removed")
        return
    if head is None:
        if verdict.records:
            verdict.problem = _problem(None, None, f"its head {head_path(snapshot.trail).name} is missing: it was removed")
        return
    if head.environment not in (None, env) or head.file not in (None, name):
        verdict.problem = _problem(None, None, f"its head belongs to {head.environment}'s {head.file}: heads were swapped")
        return
    if head.seq > seq:
        verdict.problem = _problem(
            None, head.seq, f"the trail ends at record {seq}, but its head says record {head.seq}: records were removed from the end"
        )
        return
    if head.seq and at_head != head.hash:
        verdict.problem = _problem(None, head.seq, f"record {head.seq} does not match the head: the trail was rewritten")
        return
    if key is not None:
        if not head.mac or not hmac.compare_digest(head.mac, sign(key, env, name, head.seq, head.hash)):
            what = "is not signed" if not head.mac else "has a signature the audit key does not make"
            verdict.problem = _problem(None, head.seq, f"its head {what}: the trail or its head was rewritten without the audit key")
            return
        verdict.signed = True
    if seq > head.seq:
        verdict.notes.append(
            f"{seq - head.seq} record(s) after the head (#{head.seq}): an append was interrupted before sealing them; the next append seals them"
        )
    if anchor is not None:
        if anchor.seq > seq:
            verdict.problem = _problem(None, anchor.seq, f"the trail ends at record {seq}, before the anchor's record {anchor.seq}: records were removed")
        elif anchor.seq and at_anchor != anchor.hash:
            verdict.problem = _problem(None, anchor.seq, f"record {anchor.seq} differs from the anchor: the trail was rewritten")
        elif anchor.mac and key is not None and not hmac.compare_digest(anchor.mac, sign(key, env, name, anchor.seq, anchor.hash)):
            verdict.problem = _problem(None, anchor.seq, "the anchor's signature is not the audit key's: it was not made by `audit anchor`")
        else:
            verdict.anchored = True
    if verdict.problem is None and verdict.unacknowledged:
        verdict.problem = _problem(
            1, 1, f"{LOST}; a new trail started at {verdict.unacknowledged}: the earlier records are gone "
            "(acknowledge with `envfence audit restart --reason TEXT`)",
        )


# --- sealing and starting over --------------------------------------------------------


def seal(paths: EnvPaths, key: bytes | None) -> Head:
    """Rewrite the head over the trail's last record, signed with ``key`` (after ``verify`` passed)."""
    import fcntl

    trail = trail_path(paths)
    dir_fd = _open_dir(paths, trail.parent, create=False)
    if dir_fd is None:
        raise EnvfenceError(f"{trail} does not exist", "the trail starts with `envfence init` or the first run")
    try:
        fd = _open_file(dir_fd, trail, os.O_RDONLY, "read")
        if fd is None:
            raise EnvfenceError(f"{trail} does not exist", "the trail starts with `envfence init` or the first run")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            end = size - _torn_tail(fd, size)
            last = _lines_back(fd, end, 1)
            if last:
                record = parse_record(last[0])
                seq, digest = int(record["seq"]), record["hash"]
            else:
                seq, digest = 0, genesis(paths.environment, trail.name)
            mac = sign(key, paths.environment, trail.name, seq, digest) if key else None
            head = Head(seq, digest, mac, paths.environment, trail.name)
            _replace(paths, head_path(trail), head.to_bytes())
            return head
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def move_aside(paths: EnvPaths) -> list[Path]:
    """Rename the trail and its head to ``<name>.broken-<time>`` beside them (never replacing anything)."""
    from envfence import files

    trail = trail_path(paths)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for path in (trail, head_path(trail)):
        if os.path.lexists(path):
            moved.append(files.move_aside(paths, path, f"broken-{stamp}"))
    return moved


# --- hooks --------------------------------------------------------------------------


def has_runs(session) -> bool:
    """Whether the environment's run history shows any run; False when there is none or it cannot be read.

    The database is opened read-only and only queried: reading it through the
    ``run_history`` hook would mark abandoned runs, which audits, which appends.
    """
    import sqlite3

    from envfence_builtins.runs.history import history_file

    try:
        path = history_file(session)
        if path is None or not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            row = db.execute("SELECT 1 FROM runs WHERE environment = ? LIMIT 1", (session.environment.name,)).fetchone()
        finally:
            db.close()
    except (OSError, sqlite3.Error, EnvfenceError):  # no file, or a damaged one: its own plugin reports that
        return False
    return row is not None


#: Events written at once even for a session that is not prepared, when the
#: trail already exists (it is never created for them): a refused run is
#: worth a record, and its session is never prepared; so are a run marked
#: abandoned and a damaged history moved aside by ``status`` or ``list``.
KEPT_UNPREPARED = ("run.blocked", "run.abandoned", "history.moved_aside")

def context(session) -> dict[str, Any]:
    """The fields every record of this process carries: user, host, pid."""
    from envfence.runner import current_user  # the runner is heavy; most commands never run

    return {"user": current_user(), "host": session.host.hostname, "pid": os.getpid()}


def _entry(common: Mapping[str, Any], event) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "event": event.event,
        "environment": event.environment,
        **common,
        "data": dict(event.data),  # redacted by Session.audit
    }


@hookimpl
def audit_event(session, event) -> None:
    """Append the event to the environment's trail, once the session is prepared.

    Before that the session's audit log holds the events; the first event
    written (``environment.prepared``, or a refused run, ``run.blocked``,
    written at once when the trail exists) takes the held ones first, in order.
    """
    paths = session.paths
    if paths is None:
        return
    trail = trail_path(paths)
    if not session.prepared and not (event.event in KEPT_UNPREPARED and trail.is_file()):
        return  # the session's audit log holds it until the session is prepared
    earlier = session.audit_log.release()
    common = context(session)
    append(
        paths, [_entry(common, e) for e in [*earlier, event]],
        key=audit_key(session), context=common, has_runs=lambda: has_runs(session),
    )


@hookimpl
def validate(session) -> list[Finding]:
    """The trail's files must stay owner-only (0600)."""
    paths = session.paths
    if paths is None:
        return []
    trail = trail_path(paths)
    findings = []
    for path in (trail, head_path(trail)):
        if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o077:
            findings.append(
                Finding(
                    "AUDIT_PERMISSIONS", session.profile.escalate("warning"),
                    f"{path.name} has mode {stat.S_IMODE(path.stat().st_mode):04o}; the audit trail is owner-only (0600)",
                    f"chmod 600 {path}", key=path.name, plugin="audit",
                )
            )
    return findings


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence audit show|verify|anchor|keygen|restart``."""
    from envfence_builtins.audit.audit_cli import audit

    cli.add_command(audit)
