"""The layout of an environment's tree: the ``[directories]`` table, where each environment's tree lies, its directories, and what ``clean`` may empty.

Read by the ``directories`` plugin's hooks (:mod:`envfence_builtins.runs.directories`),
by its check of the tree on disk (:mod:`envfence_builtins.runs.directories_checks`)
and by ``envfence clean`` (``directories_cli``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from envfence.errors import ConfigurationError
from envfence.files import inside, tree_parts
from envfence.models import EnvPaths
from envfence.recent import per_settings


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


def table_where(settings) -> str:
    return f"{settings.source}: directories"


@per_settings
def tree_for(settings, root: Path, environment: str) -> Path:
    """The (unresolved) base of ``environment``'s tree under the project ``root``."""
    section = TABLE.read(settings)
    where = table_where(settings)
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


def relative_dirs(settings, key: str, default: tuple[str, ...]) -> list[str]:
    """``[directories] <key>``, checked: relative paths inside the tree (a list of the caller's own)."""
    return list(_relative_dirs(settings, key))


@per_settings
def _relative_dirs(settings, key: str) -> tuple[str, ...]:
    value = TABLE.read(settings)[key]
    if not all(inside(Path("/tree"), d) for d in value):
        raise ConfigurationError(
            f"{table_where(settings)}.{key} must be a list of relative paths inside the tree, not {value!r}",
            'e.g. dirs = ["csv/incoming", "logs"] (no absolute path, no "..")',
        )
    return tuple(value)


def protected(settings) -> list[PurePosixPath]:
    """What ``clean`` never touches, relative to the tree: :data:`NEVER_CLEANED` and the history file."""
    return list(_protected(settings))


@per_settings
def _protected(settings) -> tuple[PurePosixPath, ...]:
    history = settings.section("history").get("file", DEFAULT_HISTORY_FILE)
    extra = [history] if isinstance(history, str) and inside(Path("/tree"), history) else []
    return tuple(PurePosixPath(*tree_parts(Path("/tree"), p)) for p in (*NEVER_CLEANED, *extra))


def clean_settings(settings) -> list[str]:
    """The ``clean`` list, checked: refused when an entry is, holds or lies in something never cleaned."""
    return list(_clean_settings(settings))


@per_settings
def _clean_settings(settings) -> tuple[str, ...]:
    # The tree itself ("." or "") names everything in it.
    everything = [n for n in TABLE.read(settings)["clean"] if not n.strip("./")]
    if everything:
        raise _never_cleaned(settings, everything[0], protected(settings)[0])
    names = relative_dirs(settings, "clean", DEFAULT_CLEAN)
    never = protected(settings)
    for name in names:
        entry = PurePosixPath(*tree_parts(Path("/tree"), name))
        hit = next((p for p in never if entry == p or entry.is_relative_to(p) or p.is_relative_to(entry)), None)
        if hit is not None:
            raise _never_cleaned(settings, name, hit)
    return tuple(names)


def _never_cleaned(settings, name: str, hit: PurePosixPath) -> ConfigurationError:
    return ConfigurationError(
        f"{table_where(settings)}.clean: {name!r} would clean {hit}, which envfence never cleans",
        "clean names only what ages out (csv/processed, csv/failed, logs, archive); "
        "snapshots keep their own number ([snapshots] keep)",
    )


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
