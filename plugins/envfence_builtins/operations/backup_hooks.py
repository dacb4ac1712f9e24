"""The hooks the ``backup`` plugin offers: what each plugin keeps in the tree, and the check of a restored trail.

Declared by the ``backup`` plugin (``register_hookspecs``), so with
``-p no:backup`` they do not exist; an implementation in another plugin is
marked ``optionalhook=True``.

- ``backup_files``: each plugin that keeps state in the environment's tree
  names its files and how to read each one consistently (the ``history``
  plugin its SQLite history through SQLite's backup API, the ``audit`` plugin
  its trail and head under the trail's lock, the ``webhook_receiver`` plugin
  its queue). A plugin that is disabled names nothing, so its files are not
  archived.
- ``verify_restored_trail``: the plugin keeping the audit trail checks the
  trail of a restored tree (``backup verify``, ``restore``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from envfence.hookcalls import HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec

if TYPE_CHECKING:  # pragma: no cover
    from envfence.models import EnvPaths
    from envfence.pipeline import Session


class BackupHookspecs:
    """The hookspecs: the docstrings are their reference."""

    @failure_policy(OnError.CONFIGURATION)
    @hookspec
    def backup_files(self, session: Session) -> list[tuple[Path, Callable[[], bytes]]] | None:
        """Name the files of the environment's state you keep in its tree, for ``envfence backup``.

        :param session: the open session.
        :returns: ``(path, read)`` for each file that exists now: ``path`` inside
            ``session.paths.base``; ``read()`` returns its content, read
            consistently (a database through its backup API, a file under the
            lock its writers take). None when you keep nothing there.

        All results are collected. A plugin that raises stops the backup: an
        archive silently missing a part is worse than none.
        """

    @failure_policy(OnError.FINDING)
    @hookspec(firstresult=True)
    def verify_restored_trail(self, session: Session, paths: EnvPaths, key: bytes | None) -> Mapping[str, Any] | None:
        """Check the audit trail of a restored tree (``backup verify``, ``restore``).

        :param session: the open session of the environment restored.
        :param paths: the restored tree (a temporary directory for ``backup verify``).
        :param key: the environment's audit key, or None: with a key the head's signature is checked.
        :returns: ``{"records": n, "problem": {"line": n, "seq": n, "reason": text} | None}``,
            or None when you keep no trail.

        Stops at first non-None result. A plugin that raises is reported as a damaged trail naming it.
        """


class BackupHooks(OfferedHooks):
    """Typed calls to the ``backup`` plugin's hooks: ``BackupHooks(session.plugins).backup_files(...)``."""

    declared_by = "backup"
    specs = BackupHookspecs

    def backup_files(self, *, session: Session) -> HookResult[list[tuple[Path, Callable[[], bytes]]]]:
        """``backup_files``: each plugin's files (CONFIGURATION: a plugin that raises stops the backup)."""
        return self._call("backup_files", session=session)

    def verify_restored_trail(self, *, session: Session, paths: EnvPaths, key: bytes | None) -> HookResult[Mapping[str, Any]]:
        """``verify_restored_trail``: the restored trail's check (FINDING: the caller reports a failure as a damaged trail)."""
        return self._call("verify_restored_trail", session=session, paths=paths, key=key)
