"""The audit trail: an append-only, hash-chained JSON-lines file per environment.

Each environment keeps ``<tree>/audit/audit_<environment>.jsonl``. Every
record holds the hash of the record before it and its own hash, so an edited,
removed or inserted record breaks the chain; a head file beside the trail
(``audit_<environment>.head``) holds the last record's number and hash, so
records cut off the end are noticed too. Appends take an exclusive lock, so
processes writing at once lose nothing, and each record is flushed and
fsynced before the lock is released. The directory is owner-only (0700), the
files 0600.

Records are kept only for a prepared session (see
:meth:`envfence.Session.prepare`): a dry run and a read-only command leave none.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator

from envfence import hookimpl
from envfence.errors import EnvfenceError
from envfence.models import EnvPaths, Finding

GENESIS = "0" * 64


def trail_path(paths: EnvPaths) -> Path:
    """The environment's audit file: ``<tree>/audit/audit_<environment>.jsonl``."""
    return paths.dirs.get("audit", paths.base / "audit") / f"audit_{paths.environment}.jsonl"


def _head_path(trail: Path) -> Path:
    return trail.with_suffix(".head")


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    """The sha256 of a record's canonical JSON, its own ``hash`` field left out."""
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _last_line(fd: int) -> bytes:
    """The file's last line (without its newline), read backwards from the end."""
    size = os.fstat(fd).st_size
    buf, pos = b"", size
    while pos > 0:
        step = min(8192, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut != -1:
            return buf[cut + 1 :].rstrip(b"\n")
    return buf.rstrip(b"\n")


def _ensure_dir(directory: Path) -> None:
    if directory.is_symlink():
        raise EnvfenceError(f"{directory} is a symlink; the audit trail must live in the environment's own tree", f"remove the link {directory}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def append(trail: Path, *entries: dict[str, Any]) -> list[dict[str, Any]]:
    """Append ``entries`` to the trail under one lock, chained to the last record.

    :returns: the records as written (with ``seq``, ``prev`` and ``hash``).

    :raises EnvfenceError: the trail's last line is damaged (it is not
        extended blindly: ``envfence audit verify`` shows where).
    """
    import fcntl

    _ensure_dir(trail.parent)
    fd = os.open(trail, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        if last:
            try:
                previous = json.loads(last)
                prev, seq = previous["hash"], int(previous["seq"])
            except (ValueError, KeyError, TypeError):
                raise EnvfenceError(
                    f"{trail}: the last record is damaged; refusing to extend a broken trail",
                    f"run `envfence audit verify`, then move the file aside (mv {trail} {trail}.damaged) to start a new trail",
                ) from None
        else:
            prev, seq = GENESIS, 0
        written = []
        for entry in entries:
            seq += 1
            record = {**entry, "seq": seq, "prev": prev}
            record["hash"] = prev = record_hash(record)
            written.append(record)
        os.write(fd, b"".join(_canonical(r) + b"\n" for r in written))
        os.fsync(fd)
        head = _head_path(trail)
        tmp = head.with_suffix(f".head.{os.getpid()}")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
            json.dump({"seq": seq, "hash": prev}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, head)
        return written
    finally:
        os.close(fd)  # releases the lock


def records(trail: Path) -> Iterator[dict[str, Any]]:
    """The trail's records, skipping lines that are not JSON (``verify`` reports them)."""
    with open(trail, "rb") as handle:
        lines = list(handle)
    for raw in lines:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def verify(trail: Path) -> tuple[int, dict[str, Any] | None]:
    """Check the chain: ``(records checked, the first problem or None)``.

    A problem is a dict with ``line``, ``seq`` (when known) and ``reason``.
    Reads under a shared lock, so a concurrent append is never half-seen.
    """
    import fcntl

    with open(trail, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        count, problem, last = _check_chain(handle)
        head = _head_path(trail)
        if problem is None and head.exists():
            try:
                expected = json.loads(head.read_text(encoding="utf-8"))
            except ValueError:
                return count, {"line": None, "seq": None, "reason": f"{head.name} is damaged"}
            if (expected.get("seq"), expected.get("hash")) != last:
                problem = {
                    "line": count + 1,
                    "seq": expected.get("seq"),
                    "reason": f"the trail ends at record {last[0]}, but its head says record {expected.get('seq')}: "
                    "records were removed from the end",
                }
    return count, problem


def _check_chain(handle) -> tuple[int, dict[str, Any] | None, tuple[int, str]]:
    prev, seq, count = GENESIS, 0, 0
    for number, raw in enumerate(handle, 1):
        if not raw.endswith(b"\n"):
            return count, {"line": number, "seq": None, "reason": "the last record is cut short (truncated)"}, (seq, prev)
        try:
            record = json.loads(raw)
            claimed = record["hash"]
        except (ValueError, KeyError, TypeError):
            return count, {"line": number, "seq": None, "reason": "not a valid record (edited or truncated)"}, (seq, prev)
        if record_hash(record) != claimed:
            return count, {"line": number, "seq": record.get("seq"), "reason": "its content does not match its hash (edited)"}, (seq, prev)
        if record.get("prev") != prev:
            reason = "it does not follow the record before it (a record was removed, inserted or reordered)"
            return count, {"line": number, "seq": record.get("seq"), "reason": reason}, (seq, prev)
        prev, seq, count = claimed, record.get("seq"), count + 1
    return count, None, (seq, prev)


#: Events written at once even for a session that is not prepared, when the
#: trail already exists (it is never created for them): a refused run is
#: worth a record, and its session is never prepared.
KEPT_UNPREPARED = ("run.blocked",)

def _entry(session, event) -> dict[str, Any]:
    from envfence.runner import current_user  # the runner is heavy; most commands never run

    return {
        "at": event.at.isoformat(),
        "event": event.event,
        "environment": event.environment,
        "user": current_user(),
        "host": session.host.hostname,
        "pid": os.getpid(),
        "data": dict(event.data),  # redacted by Session.audit
    }


@hookimpl
def audit_event(session, event) -> None:
    """Append the event to the environment's trail, once the session is prepared.

    Before that the event is held in memory; the session's
    ``environment.prepared`` event writes the held ones first, in order.
    A refused run (``run.blocked``) is written at once when the trail exists.
    """
    paths = session.paths
    if paths is None:
        return
    trail = trail_path(paths)
    if not session.prepared and not (event.event in KEPT_UNPREPARED and trail.is_file()):
        return  # the session's audit log holds it until the session is prepared
    earlier = session.audit_log.release()
    append(trail, *(_entry(session, e) for e in [*earlier, event]))


@hookimpl
def validate(session) -> list[Finding]:
    """The trail's files must stay owner-only (0600)."""
    paths = session.paths
    if paths is None:
        return []
    trail = trail_path(paths)
    findings = []
    for path in (trail, _head_path(trail)):
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
    """Add ``envfence audit show`` and ``envfence audit verify``."""
    from .audit_cli import audit

    cli.add_command(audit)
