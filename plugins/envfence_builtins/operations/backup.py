"""``envfence backup`` and ``envfence restore``: a consistent, checksummed archive of an environment's state.

The archive (``.tar.gz``) holds, by their paths inside the environment's
tree: the run history and the webhook queue (copied through SQLite's backup
API, so a run or a delivery writing at the same time is never half-copied), the audit trail and its head (read
under the trail's shared lock), the configuration snapshots and the
operations state (pauses, alerts), each configuration snapshot whole (its
``.env`` copies included, so ``config rollback`` works after a restore), and
with ``[backup] include`` the CSV stages and the log files. The
environment's encryption key is added only with ``--include-key``, as
``key/<environment>.key``. ``manifest.json`` names the project, the
environment and the sha256 of every file; with the environment's audit key
``manifest.mac`` signs it. Settings (per environment with ``[backup.<env>]``,
see :mod:`envfence_builtins.operations.backup_settings`)::

    [backup]
    include = ["csv", "logs"]
    keep = 7          # archives of this project and environment kept in the directory written to
    schedule = "0 2 * * *"   # run by the host scheduler, written by `envfence schedule`

``backup verify ARCHIVE`` restores into a temporary directory and checks the
result (:func:`~envfence_builtins.operations.backup_restore.verify_archive`).

The files of the history, the audit trail and the webhook queue are named by
the plugins that keep them, through the ``backup_files`` hook this plugin
declares (:mod:`envfence_builtins.operations.backup_hooks`); a restored trail
is checked by the plugin keeping it (``verify_restored_trail``). Making an
archive is :mod:`~envfence_builtins.operations.backup_create`, restoring one
:mod:`~envfence_builtins.operations.backup_restore`, the commands
``backup_cli``.

``restore`` verifies every checksum, the MAC and every member's own
environment first (:mod:`envfence_builtins.operations.backup_archive`),
refuses an archive of another environment (exit 3), and writes only into an
empty tree: the tree is written beside its place and renamed into it, so a
restore that fails leaves nothing half-written. Retention (``--keep``)
counts and removes only archives whose manifest names this project and
environment (and, with an audit key, that this key signed); the archive
just written always stays.
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError

SECTION = "backup"


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``backup_files`` and ``verify_restored_trail``."""
    from envfence_builtins.operations.backup_hooks import BackupHookspecs

    register(BackupHookspecs)


@hookimpl(optionalhook=True)  # declared by the schedule plugin; absent without it
def scheduled_commands(session, environment: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``envfence backup`` at ``[backup] schedule`` (``[backup.<environment>] schedule``), when one is set."""
    from envfence_builtins.operations.backup_create import settings_of

    when = settings_of(session, environment).schedule
    return [("envfence-backup", when, ("backup",))] if when else []


@hookimpl
def validate(session) -> list:
    """A ``[backup]`` table that stops ``backup`` (``BACKUP_INVALID``), found before a scheduled backup fails on it at night.

    A value of the wrong kind is ``check``'s own finding (``SETTINGS_INVALID``, from the declaration):
    one cause, one error. What the declaration alone cannot see is said here: a ``[backup.NAME]`` for
    no declared environment, and an unknown key (a warning for ``check``, but ``backup`` refuses it).
    """
    from envfence.models import Finding

    from envfence_builtins.operations.backup_settings import TABLE, backup_settings

    try:  # the settings alone: the archive's code loads only to make or restore one
        backup_settings(session.settings, session.environment.name)
    except ConfigurationError as exc:
        if any(not p.unknown for p in TABLE.problems_here(session.settings.raw.get(SECTION), session.environment.name)):
            return []
        return [Finding("BACKUP_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    return []


@hookimpl
def declare_tables():
    """The ``[backup]`` table (:mod:`.backup_settings`)."""
    from envfence_builtins.operations.backup_settings import TABLE

    return [TABLE]


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence backup`` and ``envfence restore``."""
    from envfence_builtins.operations.backup_cli import backup, restore_cmd

    cli.add_command(backup)
    cli.add_command(restore_cmd)
