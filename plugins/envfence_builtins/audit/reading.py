"""Reading an environment's trail without holding its lock: a snapshot of its size and head, streamed forwards or backwards.

Reading never writes: ``envfence audit show`` and ``verify`` stream the
trail, so memory stays flat however long it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from envfence import slotted
from envfence.errors import EnvfenceError
from envfence.models import EnvPaths

from .head import Head, parse_head
from .trail_files import head_path, open_dir, open_file, read_small, reverse_lines, torn_tail, trail_path


@slotted.define
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
        return reverse_lines(self.fd, self.size - torn_tail(self.fd, self.size))


def open_snapshot(paths: EnvPaths) -> Snapshot:
    """Open the trail and read its head under a brief shared lock, so both match.

    :raises EnvfenceError: the trail or its directory is a symlink, not a
        regular file, or unreadable.
    """
    import fcntl

    trail = trail_path(paths)
    head_file = head_path(trail)
    dir_fd = open_dir(paths, trail.parent, create=False)
    if dir_fd is None:
        return Snapshot(trail, None, 0, None)
    try:
        fd = open_file(dir_fd, trail, os.O_RDONLY, "read")
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            raw = read_small(dir_fd, head_file)
            size = os.fstat(fd).st_size if fd is not None else 0
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(dir_fd)
    snapshot = Snapshot(trail, fd, size, None)
    if raw is not None:
        try:
            snapshot.head = parse_head(raw, head_file)
        except EnvfenceError as exc:
            snapshot.head_error = exc
    return snapshot


def read_whole(paths: EnvPaths) -> tuple[bytes, bytes | None] | None:
    """The trail and its head (None without one), read together under the trail's shared lock, so appends wait; None without a trail.

    Reached as every read is, never through a link (for ``envfence backup``).

    :raises EnvfenceError: the trail or its directory is a symlink, not a regular file, or unreadable.
    """
    import fcntl

    trail = trail_path(paths)
    dir_fd = open_dir(paths, trail.parent, create=False)
    if dir_fd is None:
        return None
    try:
        fd = open_file(dir_fd, trail, os.O_RDONLY, "read")
        if fd is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read()
            return data, read_small(dir_fd, head_path(trail))
        finally:
            os.close(fd)  # the lock goes with the last descriptor
    finally:
        os.close(dir_fd)


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

