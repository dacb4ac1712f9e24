"""Each environment's directory tree: where its CSV files, logs and backups live.

The tree is ``var/<environment>/`` under the project root unless the
``[directories]`` settings table says otherwise::

    [directories]
    base = "var/{environment}"
    dirs = ["csv/incoming", "csv/processing", "csv/processed", "csv/failed", "logs", "backups", "archive"]
    clean = ["csv/processed", "csv/failed", "logs", "archive"]

    [directories.paths]            # optional: one environment's tree elsewhere
    production = "/srv/acme/production"

Permissions come from the profile's ``dir_mode`` (production ``0o700``,
development ``0o755``; set ``dir_mode`` in ``[environments.NAME.profile]``).
A tree is refused when it, or a directory in it, is a symlink leading outside
the project or into another environment's tree, is owned by another user, or
overlaps another environment's tree, or when a directory below the base is a
symlink at all (envfence writes through :mod:`envfence.files`, which never
follows one). ``envfence check`` reports those and wrong permissions;
``envfence init`` creates the tree and fixes permissions; ``envfence clean
--older-than AGE`` removes old files from this tree only, and only from what
ages out by design: history, the audit trail, locks, configuration snapshots
and CSV files still on their way are never cleaned, and naming one of them in
``clean`` is an error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from envfence import files, hookimpl
from envfence.errors import ConfigurationError
from envfence.files import inside, tree_parts
from envfence.models import EnvPaths, Finding

DEFAULT_BASE = "var/{environment}"
DEFAULT_DIRS = ("csv/incoming", "csv/processing", "csv/processed", "csv/failed", "logs", "backups", "archive")
#: Owner-only (0700) whatever the profile: the audit trail.
PRIVATE_DIRS = ("audit",)
#: Part of every tree, with the profile's mode: the runs' lock files.
RUNTIME_DIRS = ("locks",)
#: What ages out by design: processed and failed CSVs, logs, the archive.
DEFAULT_CLEAN = ("csv/processed", "csv/failed", "logs", "archive")
#: Never cleaned, whatever ``clean`` says: the audit trail, locks,
#: configuration snapshots and CSV files still on their way. The history
#: file (``[history] file``) is added to these.
NEVER_CLEANED = ("audit", "locks", "backups/config", "csv/incoming", "csv/processing", "queue")  # queue: accepted webhooks
DEFAULT_HISTORY_FILE = "history.sqlite3"


def _directories_table():
    from envfence.settings_kinds import mapping, text, texts
    from envfence.settings_tables import Table

    table = Table("directories", "each environment's tree of directories")
    table.add("base", text(example=DEFAULT_BASE), DEFAULT_BASE,
              "where each tree lives, relative to the project; it must hold {environment}")
    table.add("paths", mapping(text(), example={"production": "/srv/acme/production"}), {},
              "an environment's tree at a path of its own, by environment name")
    table.add("dirs", texts(example="csv/incoming"), list(DEFAULT_DIRS), "the directories of each tree, relative to it")
    table.add("clean", texts(example="logs"), list(DEFAULT_CLEAN), "what envfence clean empties, relative to the tree")
    return table


#: ``[directories]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _directories_table()


@hookimpl
def declare_tables():
    """The ``[directories]`` table."""
    return [TABLE]


def _where(settings) -> str:
    return f"{settings.source}: directories"


def tree_for(settings, root: Path, environment: str) -> Path:
    """The (unresolved) base of ``environment``'s tree under the project ``root``."""
    section = TABLE.read(settings)
    where = _where(settings)
    explicit = section["paths"]
    # Normalised, so that "var/{environment}/../production" is seen to be production's tree.
    if environment in explicit:
        return Path(os.path.normpath(Path(root, os.path.expanduser(explicit[environment]))))
    base = section["base"]
    if "{environment}" not in base:
        raise ConfigurationError(
            f"{where}.base must be a string holding {{environment}}, not {base!r}",
            'keep environments apart, e.g. base = "var/{environment}"',
        )
    return Path(os.path.normpath(root / base.format(environment=environment)))


def _relative_dirs(settings, key: str, default: tuple[str, ...]) -> list[str]:
    value = TABLE.read(settings)[key]
    if not all(inside(Path("/tree"), d) for d in value):
        raise ConfigurationError(
            f"{_where(settings)}.{key} must be a list of relative paths inside the tree, not {value!r}",
            'e.g. dirs = ["csv/incoming", "logs"] (no absolute path, no "..")',
        )
    return value


def protected(settings) -> list[PurePosixPath]:
    """What ``clean`` never touches, relative to the tree: :data:`NEVER_CLEANED` and the history file."""
    history = settings.section("history").get("file", DEFAULT_HISTORY_FILE)
    extra = [history] if isinstance(history, str) and inside(Path("/tree"), history) else []
    return [PurePosixPath(*tree_parts(Path("/tree"), p)) for p in (*NEVER_CLEANED, *extra)]


def clean_settings(settings) -> list[str]:
    """The ``clean`` list, checked: refused when an entry is, holds or lies in something never cleaned."""
    # The tree itself ("." or "") names everything in it.
    everything = [n for n in TABLE.read(settings)["clean"] if not n.strip("./")]
    if everything:
        raise _never_cleaned(settings, everything[0], protected(settings)[0])
    names = _relative_dirs(settings, "clean", DEFAULT_CLEAN)
    never = protected(settings)
    for name in names:
        entry = PurePosixPath(*tree_parts(Path("/tree"), name))
        hit = next((p for p in never if entry == p or entry.is_relative_to(p) or p.is_relative_to(entry)), None)
        if hit is not None:
            raise _never_cleaned(settings, name, hit)
    return names


def _never_cleaned(settings, name: str, hit: PurePosixPath) -> ConfigurationError:
    return ConfigurationError(
        f"{_where(settings)}.clean: {name!r} would clean {hit}, which envfence never cleans",
        "clean names only what ages out (csv/processed, csv/failed, logs, archive); "
        "snapshots keep their own number ([snapshots] keep)",
    )


@hookimpl
def environment_paths(session) -> EnvPaths:
    """The tree of the session's environment (nothing is created here)."""
    dirs = _relative_dirs(session.settings, "dirs", DEFAULT_DIRS)
    dirs += [d for d in (*PRIVATE_DIRS, *RUNTIME_DIRS) if d not in dirs]
    env = session.environment.name
    root = session.root.path
    base = tree_for(session.settings, root, env)
    others = {name: tree_for(session.settings, root, name) for name in session.settings.environments if name != env}
    return EnvPaths(environment=env, base=base, dirs={d: base / d for d in dirs}, others=others)


def _tree_dirs(paths: EnvPaths) -> list[Path]:
    """The base and every directory of the tree, parents before children."""
    found = {paths.base}
    for path in paths.dirs.values():
        for parent in [path, *path.parents]:
            if parent == paths.base:
                break
            found.add(parent)
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def _mode_for(path: Path, paths: EnvPaths, profile_mode: int) -> int:
    private = [paths.base / d for d in PRIVATE_DIRS]
    return 0o700 if any(path == p or path.is_relative_to(p) for p in private) else profile_mode


def _show(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _nested(a: Path, b: Path) -> bool:
    # Case-insensitively: on macOS and Windows var/Production is var/production.
    a, b = Path(str(a).casefold()), Path(str(b).casefold())
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def inspect_tree(session, paths: EnvPaths) -> list[Finding]:
    """Every isolation problem of the tree as it is on disk; creates nothing.

    Errors (``DIR_SYMLINK_OUTSIDE``, ``DIR_SYMLINK_OTHER_ENV``, ``DIR_OVERLAP``,
    ``DIR_OWNER``, ``DIR_NOT_A_DIRECTORY``) refuse the tree; ``DIR_PERMISSIONS``
    is a warning (an error under a strict profile) that ``envfence init`` fixes.
    """
    root = session.root.path
    env = session.environment.name
    base_real = paths.base.resolve()
    linked = base_real != paths.base  # the base, or a parent of it, is a symlink
    logical = {n: tree_for(session.settings, root, n) for n in session.settings.environments if n != env}
    others = {n: p.resolve() for n, p in logical.items()}
    explicit = env in TABLE.read(session.settings)["paths"]
    findings: list[Finding] = []

    def finding(code: str, severity: str, path: Path, message: str, remediation: str) -> None:
        findings.append(
            Finding(code, severity, message, remediation, key=_show(path, root), plugin="directories")
        )

    for name, other in logical.items():
        if _nested(paths.base, other) or (not linked and _nested(base_real, others[name])):
            finding(
                "DIR_OVERLAP", "error", paths.base,
                f"the {env} tree {_show(paths.base, root)} overlaps the {name} tree {_show(other, root)}",
                "give every environment its own tree ([directories] base or [directories.paths])",
            )
    if not os.path.lexists(paths.base):
        return findings  # nothing of the tree exists yet, so nothing in it can be wrong
    uid = os.geteuid()
    for path in _tree_dirs(paths):
        if not os.path.lexists(path):
            continue
        real = path.resolve()
        shown = _show(path, root)
        if path == paths.base and os.path.islink(path) and (explicit or real.is_relative_to(root)) and not any(
            real.is_relative_to(o) for o in others.values()
        ):
            # The trail is never written through a link, so a linked base would fail half-way through a run.
            finding(
                "DIR_SYMLINK", "error", path,
                f"{shown} is a symlink (to {real}); envfence writes only through the tree's real directory",
                f"remove the link ({shown}), or set the tree's real place in [directories.paths]",
            )
            continue
        if path != paths.base and real.is_relative_to(base_real) and os.path.islink(path):
            finding(
                "DIR_SYMLINK", "error", path,
                f"{shown} is a symlink; envfence writes only through real directories of the {env} tree",
                f"remove the link ({shown}) and run `envfence init` to create a real directory",
            )
            continue
        into = next((n for n, other in others.items() if real.is_relative_to(other)), None)
        if into is not None and real != path:
            finding(
                "DIR_SYMLINK_OTHER_ENV", "error", path,
                f"{shown} leads into the {into} tree ({real}); the {env} environment would use {into}'s files",
                f"remove the link ({shown}) and run `envfence init` to create a real directory",
            )
            continue
        if path == paths.base:
            inside, what = explicit or real.is_relative_to(root), "the project"
        else:
            inside, what = real.is_relative_to(base_real), f"the {env} tree"
        if not inside:
            finding(
                "DIR_SYMLINK_OUTSIDE", "error", path,
                f"{shown} leads outside {what}, to {real}",
                f"remove the link ({shown}), or set the tree's real place in [directories.paths]",
            )
            continue
        try:
            info = os.stat(path)
        except OSError as exc:
            finding("DIR_UNREADABLE", "error", path, f"{shown}: cannot be inspected ({exc.strerror})", "check the path and its permissions")
            continue
        if not stat.S_ISDIR(info.st_mode):
            finding("DIR_NOT_A_DIRECTORY", "error", path, f"{shown} is not a directory", f"move it away; the {env} tree needs a directory there")
            continue
        if info.st_uid != uid:
            finding(
                "DIR_OWNER", "error", path,
                f"{shown} is owned by uid {info.st_uid}, not by this user (uid {uid})",
                f"run as the tree's owner, or chown it to this user ({shown})",
            )
            continue
        actual = stat.S_IMODE(info.st_mode)
        mode = _mode_for(path, paths, session.profile.dir_mode)
        if actual != mode:
            looser = bool(actual & ~mode)
            finding(
                "DIR_PERMISSIONS",
                session.profile.escalate("warning") if looser else "info",
                path,
                f"{shown} has mode {actual:04o}, the {session.profile.name} profile wants {mode:04o}"
                + (" (more open than that)" if looser else ""),
                f"run `envfence --env {env} init` (or chmod {mode:04o} {shown})",
            )
    return findings


@hookimpl
def validate(session) -> list[Finding]:
    """The tree's isolation problems, wrong permissions and a ``clean`` list that names what is never cleaned."""
    findings = []
    try:
        clean_settings(session.settings)
    except ConfigurationError as exc:
        findings.append(Finding("DIR_CLEAN_PROTECTED", "error", exc.message, exc.hint, key="directories.clean", plugin="directories"))
    paths = session.paths
    return findings + (inspect_tree(session, paths) if paths is not None else [])


@hookimpl
def tree_refusals(session, paths: EnvPaths) -> list[Finding]:
    """The tree's problems that refuse it (links, overlaps, owners, files for directories); a mode is fixed, not refused."""
    return [f for f in inspect_tree(session, paths) if f.severity == "error" and f.code != "DIR_PERMISSIONS"]


@hookimpl
def prepare_environment(session, paths: EnvPaths) -> list[Finding]:
    """Create the tree with the profile's mode, fix wrong modes; refuse an unsafe tree.

    Idempotent. Returns ``DIR_CREATED`` and ``DIR_MODE_FIXED`` findings (info)
    saying what changed, or the refusals (errors) with nothing changed.
    """
    refused = tree_refusals(session, paths)
    if refused:
        return refused
    root = session.root.path
    done: list[Finding] = []
    for path in _tree_dirs(paths):
        shown = _show(path, root)
        mode = _mode_for(path, paths, session.profile.dir_mode)
        existed = os.path.lexists(path)
        relative = "." if path == paths.base else path.relative_to(paths.base)
        with files.directory(paths, relative, create=True, mode=mode) as fd:
            old = stat.S_IMODE(os.fstat(fd).st_mode)
            if old != mode:
                os.fchmod(fd, mode)  # the descriptor, never a link's target
        if not existed:
            done.append(Finding("DIR_CREATED", "info", f"created {shown} ({mode:04o})", key=shown, plugin="directories"))
        elif old != mode:
            done.append(
                Finding("DIR_MODE_FIXED", "info", f"{shown}: mode {old:04o} -> {mode:04o}", key=shown, plugin="directories")
            )
    return done


def cleanable(session, paths: EnvPaths) -> list[Path]:
    """The directories ``envfence clean`` may remove files from.

    :raises ConfigurationError: ``clean`` names something never cleaned.
    """
    names = clean_settings(session.settings)
    return [paths.dirs[n] if n in paths.dirs else paths.base / n for n in names]


def old_files(session, paths: EnvPaths, cutoff: float) -> list[Path]:
    """Regular files last modified before ``cutoff`` (a timestamp) in the cleanable directories.

    Symlinks are never followed nor listed, and nothing outside the
    environment's resolved tree is ever returned.
    """
    tree = paths.base.resolve()
    never = [paths.base.joinpath(*p.parts) for p in protected(session.settings)]
    found: list[Path] = []
    for directory in cleanable(session, paths):
        if not directory.is_dir() or directory.is_symlink() or not directory.resolve().is_relative_to(tree):
            continue
        for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
            for name in filenames:
                path = Path(dirpath, name)
                info = path.lstat()
                if any(path == p or path.is_relative_to(p) for p in never):
                    continue  # whatever the settings say
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff and path.resolve().is_relative_to(tree):
                    found.append(path)
    return sorted(found)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence clean``."""
    from envfence_builtins.runs.directories_cli import clean

    cli.add_command(clean)
