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

This module holds the plugin's hooks; the layout is
:mod:`~envfence_builtins.runs.directories_layout`, the check of the tree on
disk :mod:`~envfence_builtins.runs.directories_checks`, ``envfence clean``
``directories_cli``.
"""

from __future__ import annotations

import os
import stat

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import EnvPaths, Finding

from envfence_builtins.runs.directories_layout import DEFAULT_DIRS, PRIVATE_DIRS, RUNTIME_DIRS, TABLE, clean_settings, relative_dirs, tree_for

# The checks (directories_checks) and the writes (envfence.files) are imported by the hooks that inspect or make
# the tree: every session asks this plugin where its tree is, and most never look inside it.


@hookimpl
def declare_tables():
    """The ``[directories]`` table."""
    return [TABLE]


@hookimpl
def environment_paths(session) -> EnvPaths:
    """The tree of the session's environment (nothing is created here)."""
    dirs = relative_dirs(session.settings, "dirs", DEFAULT_DIRS)
    dirs += [d for d in (*PRIVATE_DIRS, *RUNTIME_DIRS) if d not in dirs]
    env = session.environment.name
    root = session.root.path
    base = tree_for(session.settings, root, env)
    others = {name: tree_for(session.settings, root, name) for name in session.settings.environments if name != env}
    return EnvPaths(environment=env, base=base, dirs={d: base / d for d in dirs}, others=others)


@hookimpl
def validate(session) -> list[Finding]:
    """The tree's isolation problems, wrong permissions and a ``clean`` list that names what is never cleaned."""
    from envfence_builtins.runs.directories_checks import inspect_tree

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
    from envfence_builtins.runs.directories_checks import inspect_tree

    return [f for f in inspect_tree(session, paths) if f.severity == "error" and f.code != "DIR_PERMISSIONS"]


@hookimpl
def prepare_environment(session, paths: EnvPaths) -> list[Finding]:
    """Create the tree with the profile's mode, fix wrong modes; refuse an unsafe tree.

    Idempotent. Returns ``DIR_CREATED`` and ``DIR_MODE_FIXED`` findings (info)
    saying what changed, or the refusals (errors) with nothing changed.
    """
    from envfence import files
    from envfence_builtins.runs.directories_checks import mode_for, shown, tree_dirs

    refused = tree_refusals(session, paths)
    if refused:
        return refused
    root = session.root.path
    done: list[Finding] = []
    for path in tree_dirs(paths):
        where = shown(path, root)
        mode = mode_for(path, paths, session.profile.dir_mode)
        existed = os.path.lexists(path)
        relative = "." if path == paths.base else path.relative_to(paths.base)
        with files.directory(paths, relative, create=True, mode=mode) as fd:
            old = stat.S_IMODE(os.fstat(fd).st_mode)
            if old != mode:
                os.fchmod(fd, mode)  # the descriptor, never a link's target
        if not existed:
            done.append(Finding("DIR_CREATED", "info", f"created {where} ({mode:04o})", key=where, plugin="directories"))
        elif old != mode:
            done.append(
                Finding("DIR_MODE_FIXED", "info", f"{where}: mode {old:04o} -> {mode:04o}", key=where, plugin="directories")
            )
    return done


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence clean``."""
    from envfence_builtins.runs.directories_cli import clean

    cli.add_command(clean)
