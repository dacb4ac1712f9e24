"""The check of an environment's tree as it stands on disk: links, overlaps, owners, files for directories, modes.

Creates nothing. Errors refuse the tree (``prepare_environment``,
``tree_refusals``); ``DIR_PERMISSIONS`` is a warning (an error under a strict
profile) that ``envfence init`` fixes. Used by the ``directories`` plugin's
hooks (:mod:`envfence_builtins.runs.directories`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from envfence import slotted
from envfence.models import EnvPaths, Finding

from envfence_builtins.runs.directories_layout import PRIVATE_DIRS, TABLE, tree_for


def under(path: Path, top: Path) -> bool:
    """``path.is_relative_to(top)``, from the paths' parts as parsed already (it was most of a tree's check)."""
    parts = top.parts
    return path.parts[: len(parts)] == parts


def tree_dirs(paths: EnvPaths) -> list[Path]:
    """The base and every directory of the tree, parents before children."""
    found = {paths.base}
    for path in paths.dirs.values():
        for parent in [path, *path.parents]:
            if parent == paths.base:
                break
            found.add(parent)
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def mode_for(path: Path, paths: EnvPaths, profile_mode: int) -> int:
    """The mode ``path`` of the tree must have: owner-only under :data:`PRIVATE_DIRS`, the profile's elsewhere."""
    private = [paths.base / d for d in PRIVATE_DIRS]
    return 0o700 if any(under(path, p) for p in private) else profile_mode


def shown(path: Path, root: Path) -> str:
    """``path`` as a user reads it: relative to the project where it lies inside it."""
    return str(path.relative_to(root)) if under(path, root) else str(path)


def _nested(a: Path, b: Path) -> bool:
    # Case-insensitively: on macOS and Windows var/Production is var/production.
    a, b = Path(str(a).casefold()), Path(str(b).casefold())
    return under(a, b) or under(b, a)


@slotted.frozen
class _Seen:
    """What the checks of one tree share: where it and the other environments' trees are, as configured and resolved."""

    session: object
    paths: EnvPaths
    root: Path
    env: str
    base_real: Path
    explicit: bool  #: the tree's place is set in [directories.paths]
    logical: dict[str, Path]  #: the other environments' trees, as configured
    others: dict[str, Path]  #: the same, resolved

    @classmethod
    def of(cls, session, paths: EnvPaths) -> "_Seen":
        root, env = session.root.path, session.environment.name
        logical = {n: tree_for(session.settings, root, n) for n in session.settings.environments if n != env}
        return cls(session, paths, root, env, paths.base.resolve(), env in TABLE.read(session.settings)["paths"],
                   logical, {n: p.resolve() for n, p in logical.items()})

    def finding(self, code: str, severity: str, path: Path, message: str, remediation: str) -> Finding:
        return Finding(code, severity, message, remediation, key=shown(path, self.root), plugin="directories")


def inspect_tree(session, paths: EnvPaths) -> list[Finding]:
    """Every isolation problem of the tree as it is on disk; creates nothing.

    Errors (``DIR_SYMLINK_OUTSIDE``, ``DIR_SYMLINK_OTHER_ENV``, ``DIR_OVERLAP``,
    ``DIR_OWNER``, ``DIR_NOT_A_DIRECTORY``) refuse the tree; ``DIR_PERMISSIONS``
    is a warning (an error under a strict profile) that ``envfence init`` fixes.
    """
    seen = _Seen.of(session, paths)
    findings = _overlaps(seen)
    if not os.path.lexists(paths.base):
        return findings  # nothing of the tree exists yet, so nothing in it can be wrong
    for path in tree_dirs(paths):
        if os.path.lexists(path):
            found = _link_problem(seen, path) or _directory_problem(seen, path)
            if found is not None:
                findings.append(found)
    return findings


def _overlaps(seen: _Seen) -> list[Finding]:
    """The tree and another environment's nested in each other, as configured or once resolved."""
    base = seen.paths.base
    linked = seen.base_real != base  # the base, or a parent of it, is a symlink
    return [
        seen.finding("DIR_OVERLAP", "error", base,
                     f"the {seen.env} tree {shown(base, seen.root)} overlaps the {name} tree {shown(other, seen.root)}",
                     "give every environment its own tree ([directories] base or [directories.paths])")
        for name, other in seen.logical.items()
        if _nested(base, other) or (not linked and _nested(seen.base_real, seen.others[name]))
    ]


def _link_problem(seen: _Seen, path: Path) -> Finding | None:
    """A link where a directory of the tree belongs, or a directory whose real place is outside the tree or in another's."""
    real, base, where = path.resolve(), seen.paths.base, shown(path, seen.root)
    if path == base and os.path.islink(path) and (seen.explicit or under(real, seen.root)) and not any(
        under(real, o) for o in seen.others.values()
    ):
        # The trail is never written through a link, so a linked base would fail half-way through a run.
        return seen.finding("DIR_SYMLINK", "error", path,
                            f"{where} is a symlink (to {real}); envfence writes only through the tree's real directory",
                            f"remove the link ({where}), or set the tree's real place in [directories.paths]")
    if path != base and under(real, seen.base_real) and os.path.islink(path):
        return seen.finding("DIR_SYMLINK", "error", path,
                            f"{where} is a symlink; envfence writes only through real directories of the {seen.env} tree",
                            f"remove the link ({where}) and run `envfence init` to create a real directory")
    into = next((n for n, other in seen.others.items() if under(real, other)), None)
    if into is not None and real != path:
        return seen.finding("DIR_SYMLINK_OTHER_ENV", "error", path,
                            f"{where} leads into the {into} tree ({real}); the {seen.env} environment would use {into}'s files",
                            f"remove the link ({where}) and run `envfence init` to create a real directory")
    if path == base:
        inside, what = seen.explicit or under(real, seen.root), "the project"
    else:
        inside, what = under(real, seen.base_real), f"the {seen.env} tree"
    if not inside:
        return seen.finding("DIR_SYMLINK_OUTSIDE", "error", path, f"{where} leads outside {what}, to {real}",
                            f"remove the link ({where}), or set the tree's real place in [directories.paths]")
    return None


def _directory_problem(seen: _Seen, path: Path) -> Finding | None:
    """A directory of the tree that cannot be read, is a file, belongs to someone else or has the wrong mode."""
    where, env, profile = shown(path, seen.root), seen.env, seen.session.profile
    try:
        info = os.stat(path)
    except OSError as exc:
        return seen.finding("DIR_UNREADABLE", "error", path, f"{where}: cannot be inspected ({exc.strerror})",
                            "check the path and its permissions")
    if not stat.S_ISDIR(info.st_mode):
        return seen.finding("DIR_NOT_A_DIRECTORY", "error", path, f"{where} is not a directory",
                            f"move it away; the {env} tree needs a directory there")
    uid = os.geteuid()
    if info.st_uid != uid:
        return seen.finding("DIR_OWNER", "error", path, f"{where} is owned by uid {info.st_uid}, not by this user (uid {uid})",
                            f"run as the tree's owner, or chown it to this user ({where})")
    actual, mode = stat.S_IMODE(info.st_mode), mode_for(path, seen.paths, profile.dir_mode)
    if actual == mode:
        return None
    looser = bool(actual & ~mode)
    return seen.finding("DIR_PERMISSIONS", profile.escalate("warning") if looser else "info", path,
                        f"{where} has mode {actual:04o}, the {profile.name} profile wants {mode:04o}"
                        + (" (more open than that)" if looser else ""),
                        f"run `envfence --env {env} init` (or chmod {mode:04o} {where})")
