"""Where an environment's audit trail lives, and how its files are opened: never through a link, never outside the tree.

The trail's directory is reached through :func:`envfence.files.open_directory`
(from the tree's base, one component at a time, never through a symlink) and
its files opened in it with ``O_NOFOLLOW``; the directory is owner-only
(0700), the files 0600.
Whole-file replacements (the head) go through :func:`envfence.files.write_atomic`.
A failure becomes an :class:`~envfence.errors.EnvfenceError` that names the
file and what to do (:func:`refusal`).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from pathlib import Path
from typing import Iterator

from envfence.errors import EnvfenceError
from envfence.models import EnvPaths

#: Why an append refuses to start a trail that ``move_aside`` left behind.
INTERRUPTED = "it was moved aside and no new trail started: an `audit restart` was interrupted"


def trail_path(paths: EnvPaths) -> Path:
    """The environment's audit file: ``<tree>/audit/audit_<environment>.jsonl``."""
    return paths.dirs.get("audit", paths.base / "audit") / f"audit_{paths.environment}.jsonl"


def head_path(trail: Path) -> Path:
    """The head file beside a trail: ``audit_<environment>.head``."""
    return trail.with_suffix(".head")


def refusal(path: Path, exc: OSError, doing: str) -> EnvfenceError:
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


def open_dir(paths: EnvPaths, directory: Path, create: bool) -> int | None:
    """A descriptor of ``directory`` (owner-only when ``create``), reached through :mod:`envfence.files` from the tree's base.

    :returns: None when it does not exist and ``create`` is false.
    :raises EnvfenceError: it lies outside the tree, or a component is a symlink or a file.
    """
    from envfence import files
    from envfence.errors import SafetyError

    try:
        fd = files.open_directory(paths, directory, create=create, mode=files.PRIVATE_DIR)
    except SafetyError as exc:  # the trail's refusals are errors of the trail (exit 1), as for its files
        raise EnvfenceError(f"the audit directory {directory}: {exc.message}; the audit trail is never read or written "
                            "through a symbolic link or outside the tree", exc.hint) from None
    if fd is not None and create:
        os.fchmod(fd, files.PRIVATE_DIR)  # the trail's directory is owner-only, whoever made it
    return fd


def open_file(dir_fd: int, path: Path, flags: int, doing: str) -> int | None:
    """A descriptor of a regular file in ``dir_fd``, never through a symlink; None when missing."""
    try:
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise refusal(path, exc, doing) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise refusal(path, OSError(errno.EISDIR, "not a regular file"), doing)
    if info.st_nlink > 1 and flags & (os.O_WRONLY | os.O_RDWR):
        from envfence.files import hard_linked

        os.close(fd)
        raise hard_linked(path, info.st_nlink)
    return fd


def read_small(dir_fd: int, path: Path) -> bytes | None:
    """A small file of the trail's directory (the head) read whole; None when it is missing."""
    fd = open_file(dir_fd, path, os.O_RDONLY, "read")
    if fd is None:
        return None
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def replace(paths: EnvPaths, path: Path, data: bytes, *, sync_directory: bool = True) -> None:
    """Replace ``path`` whole (temporary file, fsync, rename, directory fsync), never through a link.

    :param sync_directory: False leaves out the directory's fsync (see :func:`envfence.files.write_atomic`).
    """
    from envfence import files

    files.write_atomic(paths, path, data, mode=files.PRIVATE_FILE, dir_mode=files.PRIVATE_DIR, sync_directory=sync_directory)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def reverse_lines(fd: int, end: int) -> Iterator[bytes]:
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


def lines_back(fd: int, end: int, count: int) -> list[bytes]:
    """Up to ``count`` complete lines ending at ``end``, oldest first."""
    return list(itertools.islice(reverse_lines(fd, end), count))[::-1]


def torn_tail(fd: int, size: int) -> int:
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


def moved_aside(directory: int, trail: Path) -> bool:
    """Whether ``move_aside`` left a ``<trail>.broken-…`` beside the (missing) trail, in the open ``directory``."""
    try:
        return any(n.startswith(f"{trail.name}.broken-") for n in os.listdir(directory))
    except OSError:
        return False


def moved_aside_in_tree(paths: EnvPaths, trail: Path) -> bool:
    """:func:`moved_aside` for the trail's directory, reached through :func:`open_dir` (never through a link)."""
    try:
        fd = open_dir(paths, trail.parent, create=False)
    except EnvfenceError:
        return False  # the trail's own checks report a linked or broken directory
    if fd is None:
        return False
    try:
        return moved_aside(fd, trail)
    finally:
        os.close(fd)
