"""Appending to an environment's trail: crash-consistent, chained to its last record, never extending a broken trail.

Under an exclusive lock, an append writes its records with one ``write`` and
fsyncs them, and only then replaces the head (a temporary file, fsynced,
renamed). A kill at any point leaves either the old state, or the new
records with the old head (the trail runs ahead of its head: not tampering,
the next append seals them), or a last line cut short, which no head covers:
the next append removes it and records an ``audit.repaired`` event. A write
that fails (a full disk) is undone at once. The directory is flushed only
after an append that created a file: a power cut that undoes the rename of
a replaced head gives back the previous head, whose records are on disk, so
the trail runs ahead of it as after a kill.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Mapping

from envfence import slotted
from envfence import audit_chain
from envfence.digests import sha256_hex
from envfence.errors import EnvfenceError
from envfence.models import EnvPaths

from .head import Head, parse_head
from .trail_files import (
    INTERRUPTED, head_path, lines_back, moved_aside, open_dir, open_file, read_small, refusal, replace, torn_tail, trail_path,
    write_all,
)

#: The event an append writes when it removes a last line an interrupted append cut short.
REPAIRED = "audit.repaired"
#: The first record of a trail started over: by ``envfence audit restart``,
#: or by an append that found the trail gone while the run history shows runs.
RESTARTED = "audit.restarted"
#: ``envfence audit restart`` on a trail that an append started over: the loss is acknowledged.
ACKNOWLEDGED = "audit.acknowledged"
#: Why an append started a trail over by itself.
LOST = "the trail and its head were missing although the run history shows runs"
#: More records than this past the head are not what an interrupted append leaves.
_MAX_UNSEALED = 10_000


def broken(trail: Path, what: str) -> EnvfenceError:
    """The refusal to extend a trail that is damaged in a way no crash leaves."""
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
    dir_fd = open_dir(paths, trail.parent, create=True)
    try:
        existed = open_file(dir_fd, trail, os.O_RDONLY, "read")
        if existed is not None:
            os.close(existed)
        elif restart_reason is None and read_small(dir_fd, head_path(trail)) is None:
            if moved_aside(dir_fd, trail):
                raise broken(trail, INTERRUPTED)
            if has_runs():
                restart_reason = LOST
        fd = open_file(dir_fd, trail, os.O_RDWR | os.O_APPEND | os.O_CREAT, "written")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = _Locked(paths, trail, dir_fd, fd, key, dict(context or {}), created=existed is None)
            return locked.append(entries, restart_reason)
        finally:
            os.close(fd)  # releases the lock
    finally:
        os.close(dir_fd)


@slotted.define
class _Locked:
    """One append under the trail's exclusive lock: find where the chain ends, extend it, seal it."""

    paths: EnvPaths
    trail: Path
    dir_fd: int
    fd: int
    key: bytes | None
    context: dict[str, Any]
    #: This append created the trail's file: its name reaches the disk with the directory's flush.
    created: bool = False

    @property
    def env(self) -> str:
        return self.paths.environment

    def append(self, entries: list[dict[str, Any]], restart_reason: str | None) -> list[dict[str, Any]]:
        head_file = head_path(self.trail)
        raw_head = read_small(self.dir_fd, head_file)
        head = parse_head(raw_head, head_file) if raw_head is not None else None
        if head is not None and (head.environment not in (None, self.env) or head.file not in (None, self.trail.name)):
            raise broken(self.trail, f"its head belongs to {head.environment}'s {head.file}: heads were swapped")
        size = os.fstat(self.fd).st_size
        if size == 0:
            prev, seq, entries = self._start(head, entries, restart_reason)
        else:
            prev, seq, size, entries = self._continue(head, size, entries)
        return self._write(entries, prev, seq, size)

    def _record(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        return {**self.context, "at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "event": event, "environment": self.env, "data": data}

    def _start(self, head: Head | None, entries, restart_reason):
        """An empty trail: its head exists first, and a restart says why it starts over."""
        env, name = self.env, self.trail.name
        if head is not None and head.seq > 0:
            raise broken(self.trail, f"the trail is empty but its head says record {head.seq}")
        if head is None:
            # The head exists before the first record, so a head missing beside
            # a non-empty trail is never what a crash leaves.
            replace(self.paths, head_path(self.trail), Head(0, audit_chain.genesis(env, name), None, env, name).to_bytes())
        if restart_reason is not None:
            entries = [self._record(RESTARTED, {"reason": restart_reason, "automatic": restart_reason == LOST}), *entries]
        return audit_chain.genesis(env, name), 0, entries

    def _continue(self, head: Head | None, size: int, entries):
        """A trail with records: check its end against its head, remove a line cut short (on the record)."""
        env, name, fd = self.env, self.trail.name, self.fd
        if head is None:
            raise broken(self.trail, f"its head {head_path(self.trail).name} is missing")
        if head.mac and not self.key:
            # An unsigned record after a signed head fails `verify`: the action stops rather than break the trail.
            raise EnvfenceError(
                f"{self.trail}: the trail is signed, and this process has no audit key to sign what it appends",
                f"give it the key: the ENVFENCE_AUDIT_KEY_<PREFIX> variable, or the key file under .envfence/keys "
                f"(`envfence --env {env} audit keygen` made it); never sign on without it",
            )
        torn = torn_tail(fd, size)
        end = size - torn
        prev, seq = self._last(end)
        if head.seq > seq:
            raise broken(self.trail, f"it ends at record {seq} but its head says record {head.seq}: records were removed")
        if head.seq and (seq - head.seq > _MAX_UNSEALED or _hash_of(lines_back(fd, end, seq - head.seq + 1)[0]) != head.hash):
            raise broken(self.trail, f"record {head.seq} does not match its head: the trail was rewritten")
        if self.key and seq > head.seq and any(
            audit_chain.unsigned_line(self.key, env, name, r) for r in lines_back(fd, end, seq - head.seq)
        ):
            raise broken(self.trail, f"a record after its head (#{head.seq}) does not carry the audit key's signature: "
                                     "it was added without the key")
        if torn:
            # A last line cut short by an interrupted append: no head covers it
            # (the head is replaced only after a complete write), so it was
            # never acknowledged. Remove it, on the record.
            cut = os.pread(fd, torn, end)
            os.ftruncate(fd, end)
            os.fsync(fd)
            repair = {"removed_bytes": torn, "removed_sha256": sha256_hex(cut)}
            entries = [self._record(REPAIRED, repair), *entries]
        return prev, seq, end, entries

    def _last(self, end: int) -> tuple[str, int]:
        """The hash and number of the last complete record (the genesis when there is none)."""
        if end == 0:
            return audit_chain.genesis(self.env, self.trail.name), 0
        try:
            last = audit_chain.parse_record(lines_back(self.fd, end, 1)[0])
            prev, seq = last["hash"], int(last["seq"])
        except (ValueError, KeyError, TypeError, IndexError):
            raise broken(self.trail, "its last record is damaged") from None
        if last.get("environment") != self.env:
            raise broken(self.trail, f"its last record belongs to {last.get('environment')!r}, not {self.env}: trails were swapped")
        return prev, seq

    def _write(self, entries, prev: str, seq: int, size: int) -> list[dict[str, Any]]:
        """Write the chained records with one write, then seal them with a new head; undo on failure."""
        env, name, fd = self.env, self.trail.name, self.fd
        written = list(audit_chain.link(entries, seq=seq, prev=prev, key=self.key, environment=env, name=name))
        if written:
            seq, prev = written[-1]["seq"], written[-1]["hash"]
        data = b"".join(audit_chain.canonical(r) + b"\n" for r in written)
        try:
            write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            try:  # undo a partial write (a full disk): the trail stays as it was
                os.ftruncate(fd, size)
                os.fsync(fd)
            except OSError:
                pass  # the next append removes the cut-short line
            raise refusal(self.trail, exc, "written") from None
        mac = audit_chain.sign(self.key, env, name, seq, prev) if self.key else None
        try:
            replace(self.paths, head_path(self.trail), Head(seq, prev, mac, env, name).to_bytes(), sync_directory=self.created)
        except EnvfenceError:
            # The records go with the head that could not be written: the action
            # stops, and the trail is as it was (a kill here leaves a valid trail too).
            os.ftruncate(fd, size)
            os.fsync(fd)
            raise
        return written


def _hash_of(line: bytes) -> str | None:
    try:
        return audit_chain.parse_record(line).get("hash")
    except ValueError:
        return None
