"""Where an environment's audit trail lives, and how its files are opened: never through a link, never outside the tree.

Every file is reached from the tree's base one component at a time without
following a symlink; the directory is owner-only (0700), the files 0600.
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
        raise refusal(base, exc, "opened") from None
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
        raise refusal(where, exc, "opened") from None


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


def replace(paths: EnvPaths, path: Path, data: bytes) -> None:
    """Replace ``path`` whole (temporary file, fsync, rename, directory fsync), never through a link."""
    from envfence import files

    files.write_atomic(paths, path, data, mode=files.PRIVATE_FILE, dir_mode=files.PRIVATE_DIR)


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


def moved_aside(directory: int | Path, trail: Path) -> bool:
    """Whether ``move_aside`` left a ``<trail>.broken-…`` beside the (missing) trail."""
    try:
        return any(n.startswith(f"{trail.name}.broken-") for n in os.listdir(directory))
    except OSError:
        return False

