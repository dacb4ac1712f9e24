"""Sealing a verified trail's head with the audit key, and moving a broken trail aside to start over."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from envfence import audit_chain
from envfence.errors import EnvfenceError
from envfence.models import EnvPaths

from .head import Head
from .trail_files import head_path, lines_back, open_dir, open_file, replace, torn_tail, trail_path


def seal(paths: EnvPaths, key: bytes | None) -> Head:
    """Rewrite the head over the trail's last record, signed with ``key`` (after ``verify`` passed)."""
    import fcntl

    trail = trail_path(paths)
    dir_fd = open_dir(paths, trail.parent, create=False)
    if dir_fd is None:
        raise EnvfenceError(f"{trail} does not exist", "the trail starts with `envfence init` or the first run")
    try:
        fd = open_file(dir_fd, trail, os.O_RDONLY, "read")
        if fd is None:
            raise EnvfenceError(f"{trail} does not exist", "the trail starts with `envfence init` or the first run")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            end = size - torn_tail(fd, size)
            last = lines_back(fd, end, 1)
            if last:
                record = audit_chain.parse_record(last[0])
                seq, digest = int(record["seq"]), record["hash"]
            else:
                seq, digest = 0, audit_chain.genesis(paths.environment, trail.name)
            mac = audit_chain.sign(key, paths.environment, trail.name, seq, digest) if key else None
            head = Head(seq, digest, mac, paths.environment, trail.name)
            replace(paths, head_path(trail), head.to_bytes())
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
