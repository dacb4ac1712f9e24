"""``envfence config migrate``: apply the project's migrations to one environment's files, step by step.

For each migration this environment has not had (its tree's
``state/config-migrations.json`` lists those it had):

1. the environment's files are snapshotted (:mod:`envfence.snapshots`);
2. the step is written down as in progress, with that snapshot;
3. the migration runs on the files in memory (:class:`~envfence.migration_step.Step`),
   then each changed file is replaced whole (:func:`envfence.files.write_atomic`);
4. the step is recorded as applied, with the configuration version it
   produced (:mod:`envfence.config_versions`), and audited as ``config.migrated``.

A step that fails is rolled back to its snapshot and audited as
``config.migration_failed``; the later migrations wait. A process killed
between 2 and 4 leaves the step in progress: the next ``config migrate``
rolls it back to its snapshot first (``config.migration_recovered``), then
applies it again. A dry run does 3 in memory only and reports the changes.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from . import slotted
from . import files
from .errors import EnvfenceError
from .migration_files import Change, Document, Migration, MigrationError, SettingsDocument, discover
from .migration_step import Step
from .models import Finding

STATE = "config-migrations.json"
#: The lock one ``config migrate`` holds per environment (a name no automation can take).
LOCK = "_config-migrate"


@slotted.frozen
class Applied:
    """What one migration did to one environment."""

    migration: str
    changes: list[Change]
    version: str | None = None  #: the configuration version it produced (None in a dry run)
    snapshot: str | None = None


def _state_path(session: Any) -> Path:
    paths = session.paths
    return paths.dirs.get("state", paths.base / "state") / STATE


def load_state(session: Any) -> dict[str, Any]:
    """``{"applied": [{"migration", "version", "at", "snapshot"}], "in_progress": {...} or None}``; reads only."""
    empty: dict[str, Any] = {"applied": [], "in_progress": None}
    if session.paths is None:
        return empty
    path = _state_path(session)
    if files.check_file(session.paths, path) is not None or not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnvfenceError(f"{path}: the record of applied migrations cannot be read ({exc})",
                            "restore it from a backup, or remove it to apply every migration again (they are idempotent)")
    return {**empty, **data} if isinstance(data, dict) else empty


def _save(session: Any, state: dict[str, Any]) -> None:
    files.write_atomic(session.paths, _state_path(session), json.dumps(state, indent=2))


def pending(session: Any, migrations: list[Migration] | None = None, run_code: bool = True) -> list[Migration]:
    """The migrations this environment has not had, in order (``run_code``: see :func:`~envfence.migration_files.discover`)."""
    migrations = discover(session.root.path, run_code) if migrations is None else migrations
    done = {entry.get("migration") for entry in load_state(session)["applied"]}
    return [m for m in migrations if m.name not in done]


def documents(session: Any) -> dict[str, Document]:
    """The environment's ``.env`` files, lowest precedence first, each read whole; a link is refused."""
    from .config_versions import file_layers

    docs = {}
    for source, path in file_layers(session).items():
        if path.is_symlink():
            raise MigrationError(f"{path} is a symbolic link; envfence writes no file through a link, so no migration ran",
                                 f"replace the link with the file it leads to (cp --remove-destination \"$(readlink -f {path})\" {path})")
        try:
            text = path.read_text(encoding="utf-8-sig") if path.exists() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise MigrationError(f"{path}: cannot be read ({exc})", "make it a readable UTF-8 file") from None
        docs[source] = Document(source, text)
    return docs


def settings_document(session: Any) -> SettingsDocument | None:
    """The project's settings file, read whole (None when the project has none)."""
    path = session.settings.path
    return SettingsDocument(path) if path is not None and path.is_file() else None


def run_step(session: Any, migration: Migration, docs: dict[str, Document], settings: SettingsDocument | None) -> Step:
    """Apply ``migration`` to ``docs`` and ``settings`` in memory; an error in the project's code names its file and line."""
    from .migration_files import _line_in

    step = Step(session.environment.name, session.settings.naming, docs, migration.name, settings)
    try:
        migration.apply(step)
    except MigrationError:
        raise
    except Exception as exc:
        raise MigrationError(f"{migration.name}: {_shown(migration)}:{_line_in(exc, migration.path)}: "
                             f"{type(exc).__name__}: {exc} (in {session.environment.name})", "fix the migration") from None
    return step


def _shown(migration: Migration) -> str:
    return f"migrations/{migration.path.name}"


def dry_run(session: Any) -> list[Applied]:
    """What ``migrate`` would change, migration by migration, each seeing the ones before; writes nothing."""
    docs, settings = documents(session), settings_document(session)
    return [Applied(m.name, run_step(session, m, docs, settings).changes) for m in pending(session)]


def migrate(session: Any) -> list[Applied]:
    """Apply the pending migrations to the session's environment; see the module's docstring.

    One ``config migrate`` at a time per environment: a second one is refused while the first holds the lock.
    """
    import fcntl

    migrations = pending(session)  # a malformed file stops everything before any write
    session.prepare()
    with files.open_lock(session.paths, LOCK) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EnvfenceError(f"another `config migrate` is applying migrations to {session.environment.name}",
                                "wait for it to finish, then run it again") from None
        recover(session)
        return [_apply(session, migration) for migration in pending(session, migrations)]


def _apply(session: Any, migration: Migration) -> Applied:
    """One step: snapshot, in progress, the files changed, recorded; rolled back to the snapshot on any failure."""
    from . import snapshots

    taken = snapshots.take(session, note=f"automatic, before migration {migration.name}")
    state = load_state(session)
    state["in_progress"] = {"migration": migration.name, "snapshot": taken.id, "started": _now()}
    _save(session, state)
    try:
        step = run_step(session, migration, documents(session), settings_document(session))
        written = _write(session, step, state)
        _loads(session, migration)
    except BaseException as exc:
        _failed(session, migration, taken, exc)
        raise
    return _applied(session, migration, step.changes, written, taken.id)


def _loads(session: Any, migration: Migration) -> None:
    """The configuration a step leaves must load, or the step failed."""
    try:
        session.reload()
    except EnvfenceError as exc:
        raise MigrationError(f"{migration.name}: the configuration it leaves does not load: {exc.message}", exc.hint) from None


def _write(session: Any, step: Step, state: dict[str, Any]) -> list[str]:
    """Replace each changed file whole, keeping its mode (a new one is owner-only), the settings file last;
    returns what was written. The settings file's old text is kept with the step in progress first: the
    snapshot holds the ``.env`` files only."""
    from .config_versions import file_layers

    paths = file_layers(session)
    written = []
    settings = step.settings if step.settings is not None and step.settings.changed else None
    if settings is not None:
        if settings.path.is_symlink():
            raise MigrationError(f"{settings.path} is a symbolic link; envfence writes no file through a link",
                                 "replace the link with the file it leads to")
        state["in_progress"]["settings"] = {"path": str(settings.path), "text": settings.original}
        _save(session, state)
    for source, doc in step.docs.items():
        if not doc.changed:
            continue
        path = paths[source]
        mode = path.stat().st_mode & 0o777 if path.exists() else files.PRIVATE_FILE
        files.write_atomic(path.parent, path.name, doc.text(), mode=mode)
        written.append(source)
    if settings is not None:
        files.write_atomic(settings.path.parent, settings.path.name, settings.text(),
                           mode=settings.path.stat().st_mode & 0o777)
        written.append(settings.name)
    return written


def _restore_settings(left: dict[str, Any]) -> None:
    """Put back the settings file a step in progress had changed (its old text was kept with the step)."""
    saved = left.get("settings")
    if saved:
        path = Path(saved["path"])
        files.write_atomic(path.parent, path.name, saved["text"], mode=path.stat().st_mode & 0o777 if path.exists() else 0o644)


def _applied(session: Any, migration: Migration, changes: list[Change], written: list[str], snapshot: str) -> Applied:
    from . import config_versions

    digests = config_versions.file_digests(session)
    version = config_versions.version_of(digests)
    state = load_state(session)
    state["applied"].append({"migration": migration.name, "version": version, "at": _now(), "snapshot": snapshot})
    state["in_progress"] = None
    _save(session, state)
    config_versions.record(session, version, "migration", migration.name, digests, snapshot=snapshot, changed=sorted(written))
    session.audit("config.migrated", migration=migration.name, version=version, snapshot=snapshot, files=sorted(written),
                  changes=[{"file": c.file, "action": c.action, "key": c.key, "to": c.to} for c in changes])
    return Applied(migration.name, changes, version, snapshot)


def _failed(session: Any, migration: Migration, taken: Any, exc: BaseException) -> None:
    """Put the step's snapshot back and record the failure; the exception goes on."""
    from . import snapshots

    snapshots.rollback(session, taken, reason=f"migration {migration.name} failed")
    state = load_state(session)
    _restore_settings(state["in_progress"] or {})
    state["in_progress"] = None
    _save(session, state)
    message = exc.message if isinstance(exc, EnvfenceError) else f"{type(exc).__name__}: {exc}"
    session.audit("config.migration_failed", migration=migration.name, snapshot=taken.id, error=message)


def recover(session: Any) -> str | None:
    """Roll back a step a killed process left in progress; returns the snapshot put back, or None."""
    from . import snapshots

    left = load_state(session)["in_progress"]
    if not left:
        return None
    target = snapshots.find(session, left["snapshot"])
    snapshots.rollback(session, target, reason=f"migration {left['migration']} was interrupted")
    _restore_settings(left)
    state = load_state(session)
    state["in_progress"] = None
    _save(session, state)
    session.audit("config.migration_recovered", migration=left["migration"], snapshot=target.id)
    return target.id


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def findings(session: Any) -> list[Finding]:
    """For ``check``: ``CONFIG_MIGRATION_PENDING`` when the environment is behind, ``MIGRATION_INVALID`` for a bad file."""
    env = session.environment.name
    try:
        behind = pending(session, run_code=False)  # check reads only: a Python migration is compiled, not run
        left = load_state(session)["in_progress"]
    except EnvfenceError as exc:
        return [Finding("MIGRATION_INVALID", "error", exc.message, exc.hint, plugin="migrations")]
    found = []
    if left:
        found.append(Finding("CONFIG_MIGRATION_INTERRUPTED", "error",
                             f"migration {left['migration']} was interrupted in {env}; its files may be half changed",
                             f"envfence --env {env} config migrate (puts snapshot {left['snapshot']} back, then applies it again)",
                             plugin="migrations"))
    if behind:
        found.append(Finding("CONFIG_MIGRATION_PENDING", "warning",
                             f"{env} is behind the latest migration: {len(behind)} pending ({', '.join(m.name for m in behind)})",
                             f"envfence --env {env} config migrate --dry-run, then envfence --env {env} config migrate",
                             plugin="migrations"))
    return found
