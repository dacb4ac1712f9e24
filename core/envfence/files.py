"""Writing inside an environment's tree: the one way envfence creates, replaces, appends to and moves files.

Every path is taken relative to the tree's base (``EnvPaths.base``) and walked
one component at a time with ``openat``-style calls that never follow a
symlink (``O_NOFOLLOW`` and ``O_DIRECTORY`` on each directory), so a link
planted anywhere below the base (``locks -> /srv/prod/locks``,
``backups/config -> /tmp/x``) is refused instead of written through. The base
itself is opened as it is: where it lives is the directories plugin's
decision, checked by ``envfence check``.

- :func:`make_dirs` creates directories with a mode (the profile's ``dir_mode``).
- :func:`write_atomic` replaces a file whole: temporary file in the same
  directory, ``fsync``, ``rename``, ``fsync`` of the directory. A crash leaves
  the old content or the new one.
- :func:`open_append` and :func:`open_lock` open a log, trail or lock file
  without following a link and refuse anything but a regular file (a FIFO
  would block, a directory cannot be written).
- :func:`move_no_replace` moves a file and never overwrites one: ``renameat2``
  with ``RENAME_NOREPLACE`` where the kernel has it, ``link`` then ``unlink``
  otherwise; both fail atomically when the name is taken.
- :func:`remove` unlinks a file (or, ``recursive``, a directory) found through the same walk.
- :func:`make_stage` and :func:`put_in_place` write a whole tree beside its
  place and rename it into place, so a failure leaves no half-written tree.

Failures are :class:`~envfence.errors.SafetyError` (a link, or a path leaving
the tree: exit 3) or :class:`FileWriteError` (the disk is full, a directory
stands where a file belongs: exit 1), each naming the path and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import EnvfenceError, SafetyError

#: Owner-only, for files that hold secrets or records whatever the profile.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_RENAME_NOREPLACE = 1


class FileWriteError(EnvfenceError):
    """A file of the environment's tree could not be written (disk full, a directory in its place, ...)."""


def file_mode(dir_mode: int) -> int:
    """The mode of files in a tree whose directories have ``dir_mode``: no execute bit, never group- or world-writable.

    ``0o700`` (production) gives ``0o600``, ``0o755`` (development) ``0o644``.
    """
    return dir_mode & 0o644


def profile_modes(profile: Any) -> tuple[int, int]:
    """``(directory mode, file mode)`` for a profile (its ``dir_mode``)."""
    dir_mode = int(getattr(profile, "dir_mode", PRIVATE_DIR))
    return dir_mode, file_mode(dir_mode)


def tree_parts(base: Path, path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The components of ``path`` below ``base`` (``path`` relative to the base, or absolute under it).

    Decided on the names alone, before anything is opened.

    :raises SafetyError: the path is absolute elsewhere, is the base itself, or holds ``..``.
    """
    candidate = Path(path)
    if candidate.is_absolute():
        if not candidate.is_relative_to(base):
            raise _outside(base, path)
        candidate = candidate.relative_to(base)
    parts = tuple(p for p in PurePosixPath(candidate.as_posix()).parts if p != ".")
    if not parts or ".." in parts:
        raise _outside(base, path)
    return parts


def inside(base: Path, path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names something below ``base`` without leaving it (see :func:`tree_parts`)."""
    try:
        tree_parts(base, path)
    except SafetyError:
        return False
    return True


def _outside(base: Path, path: Any) -> SafetyError:
    return SafetyError(
        f"refusing to write {path}: it is outside the environment's tree ({base})",
        "name a path inside the tree, relative to it and without '..'",
    )


def _shown(base: Path, parts: tuple[str, ...]) -> str:
    return str(Path(base, *parts))


def _linked(base: Path, parts: tuple[str, ...]) -> SafetyError:
    shown = _shown(base, parts)
    return SafetyError(
        f"refusing to write through {shown}: it is a symlink, and envfence writes only to real files inside the tree",
        f"remove the link ({shown}); `envfence init` recreates what belongs there",
    )


def hard_linked(shown: Any, links: int) -> SafetyError:
    """The refusal to write a file that has other names: one of them may be in another environment's tree."""
    return SafetyError(
        f"refusing to write {shown}: it has {links - 1} other hard link(s), so writing here would also change "
        "a file elsewhere (another environment's, perhaps)",
        f"give {shown} a content of its own (copy it, then move the copy over it), or remove it",
    )


def _failed(base: Path, parts: tuple[str, ...], exc: OSError, doing: str = "write") -> FileWriteError:
    shown = _shown(base, parts)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space on the disk holding {Path(shown).parent}; the file's previous content is unchanged"
    elif exc.errno == errno.EISDIR:
        hint = f"move the directory {shown} away; a file belongs there"
    elif exc.errno == errno.ENOTDIR:
        hint = f"move the file in the way of {shown} aside; a directory belongs there"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"give this user write access to {Path(shown).parent}, or run as the tree's owner"
    elif exc.errno == errno.EINVAL:
        hint = f"move {shown} away; envfence writes only regular files there"
    else:
        hint = f"check {shown} and its directory"
    return FileWriteError(f"cannot {doing} {shown}: {exc.strerror or exc}", hint)


def _open_base(base: Path, create: bool, dir_mode: int) -> int:
    # The base itself is never a link either (the directories plugin refuses one),
    # so a link swapped in for it after that check is refused here.
    try:
        return os.open(base, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(base):
            raise _linked(base.parent, (base.name,)) from None
        raise _failed(base.parent, (base.name,), exc, "open") from None
    try:
        os.makedirs(base, mode=dir_mode, exist_ok=True)
        os.chmod(base, dir_mode)  # makedirs' mode goes through the umask
    except OSError as exc:
        raise _failed(base.parent, (base.name,), exc, "create") from None
    return os.open(base, _DIR_FLAGS)


def _walk(base: Path, parts: tuple[str, ...], create: bool, dir_mode: int) -> int:
    """An open descriptor of directory ``base/parts``, reached without following any link below ``base``."""
    fd = _open_base(base, create, dir_mode)
    try:
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, dir_mode, dir_fd=fd)
                    made = True
                except FileExistsError:  # made meanwhile by another process, or a dangling link
                    made = False
                except OSError as exc:
                    raise _failed(base, parts[: i + 1], exc, "create") from None
                child = _open_dir_component(base, parts[: i + 1], part, fd)
                if made:
                    os.fchmod(child, dir_mode)  # mkdir's mode goes through the umask
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    raise _not_a_dir(base, parts[: i + 1], part, fd) from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_dir_component(base: Path, parts: tuple[str, ...], part: str, fd: int) -> int:
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise _not_a_dir(base, parts, part, fd) from None
        raise


def _not_a_dir(base: Path, parts: tuple[str, ...], part: str, fd: int) -> EnvfenceError:
    try:
        info = os.lstat(part, dir_fd=fd)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return _linked(base, parts)
    return _failed(base, parts, OSError(errno.ENOTDIR, "not a directory"), "use")


def open_directory(paths_or_base: Any, path: str | os.PathLike[str] = ".", *, create: bool = False, mode: int = PRIVATE_DIR) -> int | None:
    """A descriptor of a directory of the tree, reached through no link, for ``dir_fd=`` calls; the caller closes it.

    ``path`` ``"."`` is the base. With ``create``, missing directories are made
    with ``mode``; without, a missing one gives None.

    :raises SafetyError: a component is a symlink, or the path leaves the tree.
    :raises FileWriteError: a component is not a directory, or cannot be opened or made.
    """
    base = _base(paths_or_base)
    parts = () if str(path) in (".", "") or Path(path) == base else tree_parts(base, path)
    try:
        return _walk(base, parts, create, mode)
    except FileNotFoundError:
        if create:  # removed while it was being made
            raise FileWriteError(f"{_shown(base, parts)} disappeared while it was made", "run the command again") from None
        return None


@contextmanager
def directory(paths_or_base: Any, path: str | os.PathLike[str] = ".", *, create: bool = False, mode: int = PRIVATE_DIR) -> Iterator[int]:
    """An open descriptor of a directory of the tree, for ``dir_fd=`` calls; closed on exit.

    ``path`` ``"."`` is the base. With ``create``, missing directories are made with ``mode``.
    """
    fd = open_directory(paths_or_base, path, create=create, mode=mode)
    if fd is None:
        base = _base(paths_or_base)
        shown = base if str(path) in (".", "") else Path(base, *tree_parts(base, path))
        raise FileWriteError(f"{shown} does not exist", "run `envfence init` to create the tree")
    try:
        yield fd
    finally:
        os.close(fd)


def _base(paths_or_base: Any) -> Path:
    return Path(getattr(paths_or_base, "base", paths_or_base))


def _split(paths_or_base: Any, path: str | os.PathLike[str]) -> tuple[Path, tuple[str, ...], str]:
    base = _base(paths_or_base)
    parts = tree_parts(base, path)
    return base, parts[:-1], parts[-1]


def make_dirs(paths_or_base: Any, path: str | os.PathLike[str], *, mode: int = PRIVATE_DIR) -> Path:
    """Create directory ``path`` of the tree and its missing parents with ``mode``; existing ones are kept as they are.

    :returns: the directory's path.
    :raises SafetyError: a component is a symlink, or the path leaves the tree.
    """
    base = _base(paths_or_base)
    parts = tree_parts(base, path)
    os.close(_walk(base, parts, True, mode))
    return Path(base, *parts)


def write_atomic(
    paths_or_base: Any, path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE_FILE, dir_mode: int = PRIVATE_DIR,
    durable: bool = True, sync_directory: bool = True,
) -> Path:
    """Replace (or create) file ``path`` of the tree with ``data``, whole or not at all.

    A temporary file beside it is written, flushed to disk, renamed over the
    name and the directory flushed, so a crash or a full disk leaves the old
    content or the new one. A symlink at the name is replaced, never followed.
    ``durable=False`` leaves out the two flushes (about 5 ms each on a busy
    disk), for a scratch file that a crash makes worthless anyway (a run's
    metrics file, removed when the run ends): the rename is still atomic.
    ``sync_directory=False`` leaves out the directory's flush alone, for a
    file that exists already and whose old content stays valid: the new
    content is on disk before the rename, so a power cut leaves the old
    content or the new one, whole; it may give back the old one after the
    call returned (the audit trail's head, which may lag its trail).

    :returns: the file's path.
    """
    base, parents, name = _split(paths_or_base, path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    parts = (*parents, name)
    with directory(base, Path(*parents) if parents else ".", create=True, mode=dir_mode) as fd:
        temporary = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # unique even between threads
        try:
            out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=fd)
        except OSError as exc:
            raise _failed(base, parts, exc) from None
        try:
            try:
                os.fchmod(out, mode)
                _write_all(out, payload, durable)
            finally:
                os.close(out)
            os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            _quietly(os.unlink, temporary, dir_fd=fd)
            raise _failed(base, parts, exc) from None
        except BaseException:
            _quietly(os.unlink, temporary, dir_fd=fd)
            raise
        if durable and sync_directory:
            _quietly(os.fsync, fd)
    return Path(base, *parts)


def _write_all(fd: int, payload: bytes, durable: bool = True) -> None:
    """Write all of ``payload`` (``os.write`` may write less) and flush it to disk (unless not ``durable``)."""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]
    if durable:
        os.fsync(fd)


def _quietly(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except OSError:
        pass


def _open_regular(base: Path, parts: tuple[str, ...], fd: int, name: str, flags: int, mode: int) -> int:
    """Open ``name`` in directory ``fd`` without following a link; refuse anything but a regular file."""
    try:
        # O_NONBLOCK: opening a FIFO must not hang before the check below refuses it.
        handle = os.open(name, flags | _NOFOLLOW | os.O_NONBLOCK, mode, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _linked(base, parts) from None
        if exc.errno == errno.ENXIO:  # a FIFO or socket with nobody at the other end
            raise _failed(base, parts, OSError(errno.EINVAL, "not a regular file"), "open") from None
        raise _failed(base, parts, exc, "open") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise _failed(base, parts, OSError(errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL, "not a regular file"), "open")
        if info.st_nlink > 1 and flags & (os.O_WRONLY | os.O_RDWR):
            raise hard_linked(_shown(base, parts), info.st_nlink)
        os.set_blocking(handle, True)
        if stat.S_IMODE(info.st_mode) & ~mode and info.st_uid == os.geteuid():
            os.fchmod(handle, mode)  # tighten a file left too open (created under umask 000)
    except BaseException:
        os.close(handle)
        raise
    return handle


def create_new(
    paths_or_base: Any, path: str | os.PathLike[str], data: bytes | str, *, mode: int = PRIVATE_FILE, dir_mode: int = PRIVATE_DIR
) -> Path:
    """Create file ``path`` of the tree with ``data``; never replace one, never write through a link.

    For what must never be overwritten (a key): the name is taken with
    ``O_EXCL``, the data written and flushed to disk.

    :raises FileExistsError: something already has that name (a file, a link, a directory).
    """
    base, parents, name = _split(paths_or_base, path)
    parts = (*parents, name)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with directory(base, Path(*parents) if parents else ".", create=True, mode=dir_mode) as fd:
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=fd)
        except FileExistsError:
            raise
        except OSError as exc:
            raise _failed(base, parts, exc) from None
        try:
            os.fchmod(out, mode)
            _write_all(out, payload)
        except OSError as exc:
            os.close(out)
            _quietly(os.unlink, name, dir_fd=fd)
            raise _failed(base, parts, exc) from None
        os.close(out)
        _quietly(os.fsync, fd)
    return Path(base, *parts)


def open_read(paths_or_base: Any, path: str | os.PathLike[str]) -> int | None:
    """A read-only descriptor of regular file ``path`` of the tree, reached through no link; None when it is missing.

    The caller closes it (and may ``fstat`` it to check its mode).

    :raises SafetyError: the file or a directory on the way is a symlink.
    :raises FileWriteError: it is not a regular file (a FIFO, a directory), or cannot be opened.
    """
    base, parents, name = _split(paths_or_base, path)
    parts = (*parents, name)
    try:
        fd = _walk(base, parents, False, PRIVATE_DIR)
    except FileNotFoundError:
        return None
    try:
        try:
            os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return None
        return _open_regular(base, parts, fd, name, os.O_RDONLY, 0o7777)  # 0o7777: a mode is checked, never changed
    finally:
        os.close(fd)


def _open_in_tree(paths_or_base: Any, path: str | os.PathLike[str], flags: int, mode: int, dir_mode: int) -> int:
    base, parents, name = _split(paths_or_base, path)
    with directory(base, Path(*parents) if parents else ".", create=True, mode=dir_mode) as fd:
        return _open_regular(base, (*parents, name), fd, name, flags, mode)


def open_append(
    paths_or_base: Any, path: str | os.PathLike[str], *, mode: int = PRIVATE_FILE, dir_mode: int = PRIVATE_DIR, binary: bool = False
) -> IO[Any]:
    """Open file ``path`` of the tree for appending (created with ``mode``), never through a link.

    :returns: a file object (text in UTF-8, or ``binary``) the caller closes.
    """
    handle = _open_in_tree(paths_or_base, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode, dir_mode)
    return os.fdopen(handle, "ab" if binary else "a", **({} if binary else {"encoding": "utf-8"}))


def open_lock(paths: Any, name: str, *, mode: int = PRIVATE_FILE, dir_mode: int = PRIVATE_DIR) -> IO[str]:
    """Open (creating) the lock file ``locks/<name>.lock`` of the tree for reading and writing.

    ``name`` is reduced to letters, digits, ``-``, ``_`` and ``.``. The caller
    takes the ``flock`` on the returned file and closes it to release.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"
    handle = _open_in_tree(paths, Path("locks", f"{safe}.lock"), os.O_RDWR | os.O_CREAT, mode, dir_mode)
    return os.fdopen(handle, "r+", encoding="utf-8")


def lock_file(paths: Any, name: str) -> Path:
    """Where :func:`open_lock` keeps the lock ``name``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"
    return _base(paths) / "locks" / f"{safe}.lock"


def ensure_file(paths_or_base: Any, path: str | os.PathLike[str], *, mode: int = PRIVATE_FILE, dir_mode: int = PRIVATE_DIR) -> Path:
    """Make sure ``path`` is a regular file of the tree (created empty with ``mode``), reached through no link.

    For files another library opens by name (SQLite): checked and created
    here, so that the library finds a real file where it looks.
    """
    os.close(_open_in_tree(paths_or_base, path, os.O_RDWR | os.O_CREAT, mode, dir_mode))
    return Path(_base(paths_or_base), *tree_parts(_base(paths_or_base), path))


def check_file(paths_or_base: Any, path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` of the tree cannot be written safely, or None; creates nothing.

    ``"symlink"`` (the path or a directory on the way is a link),
    ``"outside"`` (it leaves the tree), ``"not a file"`` (a directory or a
    FIFO stands there), ``"hard link"`` (the file has other names, which a
    write would change too); a missing file or directory is fine.
    """
    base = _base(paths_or_base)
    try:
        parts = tree_parts(base, path)
    except SafetyError:
        return "outside"
    current = base
    for i, part in enumerate(parts):
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return None
        except OSError:
            return "not a file"
        if stat.S_ISLNK(info.st_mode):
            return "symlink"
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(info.st_mode) or last and not stat.S_ISREG(info.st_mode):
            return "not a file"
        if last and info.st_nlink > 1:
            return "hard link"
    return None


def _renameat2(src_fd: int, src: str, dst_fd: int, dst: str) -> bool:
    """``renameat2(..., RENAME_NOREPLACE)``; False where the C library or the file system lacks it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if call(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code))


def move_no_replace(paths_or_base: Any, source: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> Path:
    """Move file ``source`` of the tree into directory ``target_dir`` of the tree, keeping its name; never overwrite.

    :returns: the file's new path.
    :raises FileExistsError: (as :class:`FileWriteError`) a file of that name is already in ``target_dir``.
    """
    base = _base(paths_or_base)
    src_parts = tree_parts(base, source)
    dst_parts = tree_parts(base, target_dir)
    name = src_parts[-1]
    target = (*dst_parts, name)
    with directory(base, Path(*src_parts[:-1]) if src_parts[:-1] else ".") as src_fd, directory(base, Path(*dst_parts)) as dst_fd:
        try:
            info = os.lstat(name, dir_fd=src_fd)
        except FileNotFoundError:
            raise FileWriteError(f"cannot move {_shown(base, src_parts)}: no such file", "check the file's name and stage") from None
        if not stat.S_ISREG(info.st_mode):
            raise SafetyError(
                f"refusing to move {_shown(base, src_parts)}: it is not a regular file (a symlink or a directory)",
                "only real files are moved between stages",
            )
        try:
            if not _renameat2(src_fd, name, dst_fd, name):
                os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
                os.unlink(name, dir_fd=src_fd)
        except FileExistsError:
            raise FileWriteError(
                f"cannot move {_shown(base, src_parts)} to {_shown(base, dst_parts)}: a file of that name is already there",
                "rename one of them; envfence never overwrites a staged file",
            ) from None
        except OSError as exc:
            raise _failed(base, target, exc, "move to") from None
        _quietly(os.fsync, dst_fd)
    return Path(base, *target)


def remove(paths_or_base: Any, path: str | os.PathLike[str], *, recursive: bool = False) -> bool:
    """Unlink file ``path`` of the tree, reached through no link; False when it was already gone.

    With ``recursive``, ``path`` is a directory removed with everything in it;
    a link inside is removed, never what it points to.
    """
    base, parents, name = _split(paths_or_base, path)
    try:
        with directory(base, Path(*parents) if parents else ".") as fd:
            if recursive:
                _empty(fd, name)
                os.rmdir(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        return False
    except FileWriteError:
        return False  # its directory is gone
    except OSError as exc:
        raise _failed(base, (*parents, name), exc, "remove") from None
    return True


def _empty(parent_fd: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            if stat.S_ISDIR(os.lstat(entry, dir_fd=fd).st_mode):
                _empty(fd, entry)
                os.rmdir(entry, dir_fd=fd)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)


def make_stage(paths_or_base: Any, prefix: str, *, dir_mode: int = 0o755) -> Path:
    """Create a new, empty, owner-only directory ``<prefix><random>`` in the base, to write a whole tree beside its place.

    The base (the directory that holds the tree) is created with ``dir_mode``
    when missing. Finish with :func:`put_in_place`, or :func:`remove` it (``recursive``).

    :returns: the new directory's path.
    """
    base = _base(paths_or_base)
    with directory(base, ".", create=True, mode=dir_mode) as fd:
        for _ in range(100):
            name = f"{prefix}{os.urandom(6).hex()}"
            try:
                os.mkdir(name, PRIVATE_DIR, dir_fd=fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _failed(base, (name,), exc, "create") from None
            return base / name
    raise FileWriteError(f"cannot make a directory {prefix}… in {base}: too many of that name", f"remove old {prefix}* directories there")


def put_in_place(paths_or_base: Any, stage: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """Rename directory ``stage`` of the base to ``name`` of the base, in one step.

    Empty directories standing at ``name`` give way; a file anywhere under it
    stops the move (``FileWriteError``), and so does a link at ``name``
    (``SafetyError``): what is there is never removed or followed.

    :returns: the new path.
    """
    base = _base(paths_or_base)
    source, target = tree_parts(base, stage), tree_parts(base, name)
    if len(source) != 1 or len(target) != 1:
        raise ValueError("put_in_place moves a directory of the base to another name in the base")
    with directory(base) as fd:
        try:
            info = os.lstat(target[0], dir_fd=fd)
        except FileNotFoundError:
            info = None
        try:
            if info is not None and stat.S_ISLNK(info.st_mode):
                raise _linked(base, target)
            if info is not None:
                _remove_empty_dirs(fd, target[0])  # only empty directories: a file that appeared stops here
            os.rename(source[0], target[0], src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            raise _failed(base, target, exc, "put in place") from None
        _quietly(os.fsync, fd)
    return Path(base, *target)


def _remove_empty_dirs(parent_fd: int, name: str) -> None:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            if not stat.S_ISDIR(os.lstat(entry, dir_fd=fd).st_mode):
                raise OSError(errno.ENOTEMPTY, f"{entry} is in the way")
            _remove_empty_dirs(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A new owner-only directory in the system's temporary directory, for a throwaway tree; removed on exit.

    Removed with all it holds through :func:`remove`: a link inside is removed, never followed.
    """
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        remove(path.parent, path.name, recursive=True)


def move_aside(paths_or_base: Any, path: str | os.PathLike[str], suffix: str) -> Path:
    """Rename ``path`` of the tree (a file or a directory) to ``<name>.<suffix>`` beside it, never replacing anything.

    :returns: the new path.
    """
    base, parents, name = _split(paths_or_base, path)
    with directory(base, Path(*parents) if parents else ".") as fd:
        for attempt in range(100):
            aside = f"{name}.{suffix}" + (f".{attempt}" if attempt else "")
            try:
                if not _renameat2(fd, name, fd, aside):
                    if os.path.lexists(Path(base, *parents, aside)):
                        continue
                    os.rename(name, aside, src_dir_fd=fd, dst_dir_fd=fd)
                return Path(base, *parents, aside)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _failed(base, (*parents, name), exc, "move aside") from None
    raise FileWriteError(f"cannot move {_shown(base, (*parents, name))} aside: too many copies", "remove old copies beside it")


__all__ = [
    "FileWriteError", "PRIVATE_DIR", "PRIVATE_FILE", "check_file", "create_new", "directory", "ensure_file", "file_mode", "inside",
    "lock_file", "make_dirs", "make_stage", "move_aside", "move_no_replace", "open_append", "open_lock", "open_read", "profile_modes",
    "put_in_place", "remove", "scratch", "tree_parts", "write_atomic",
]


def _open_files() -> set[tuple[str, int, int]] | None:
    """``(descriptor, device, inode)`` of each file this process holds open (Linux ``/proc/self/fd``); None where unknown."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found = set()
    for name in names:
        try:
            opened = os.stat(f"/proc/self/fd/{name}")  # the file the descriptor holds, whatever its name now
        except OSError:
            continue
        if stat.S_ISREG(opened.st_mode):
            found.add((name, opened.st_dev, opened.st_ino))
    return found


def _opened_what_was_checked(identity: tuple[int, int], before: set, after: set) -> bool:
    new = after - before
    if any((dev, ino) == identity for _, dev, ino in new):
        return True  # the library opened the checked file
    # SQLite reuses a descriptor it kept open on the same file (closing it would drop another
    # connection's locks): nothing new was opened, and the process holds the checked file.
    return not new and any((dev, ino) == identity for _, dev, ino in after)


@contextmanager
def opened_by_name(paths_or_base: Any, path: str | os.PathLike[str]) -> Iterator[Path]:
    """Around a library opening file ``path`` of the tree by name (SQLite, a loguru file sink): check what it opened.

    :func:`ensure_file` checks the path, but a link swapped in before the
    library opens it would be followed. This notes the file's identity
    (reached through no link) before the block, and after it requires that
    what the block opened is that very file; otherwise :class:`SafetyError`,
    and the caller closes what it opened (:func:`open_by_name` does). Where
    the system lists no descriptors (not Linux) only the path is checked.

    :yields: the file's path, for the library.
    """
    base = _base(paths_or_base)
    parts = tree_parts(base, path)
    fd = _open_in_tree(paths_or_base, path, os.O_RDONLY, PRIVATE_FILE, PRIVATE_DIR)
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    before = _open_files()
    yield Path(base, *parts)
    after = _open_files()
    if before is None or after is None or _opened_what_was_checked((info.st_dev, info.st_ino), before, after):
        return
    shown = _shown(base, parts)
    raise SafetyError(
        f"refusing to use {shown}: what was opened there is not the file checked a moment before "
        "(a link or another file was swapped in)",
        f"look at what stands at {shown} and who can write its directory; remove anything that is not envfence's own file",
    )


def open_by_name(paths_or_base: Any, path: str | os.PathLike[str], opener: Any, closer: Any) -> Any:
    """``opener(path)`` inside :func:`opened_by_name`; what it opened is closed with ``closer`` when refused.

    A refusal is tried once more: another thread opening a file at the same
    moment can make a reused descriptor look like a swap; a link that is
    really there is refused again.
    """
    tries = 2
    while True:
        tries -= 1
        handle = None
        try:
            with opened_by_name(paths_or_base, path) as full:
                handle = opener(full)
            return handle
        except SafetyError:
            if handle is not None:
                closer(handle)
            if not tries:
                raise
