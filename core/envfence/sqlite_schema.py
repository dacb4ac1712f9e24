"""The schema version of envfence's local SQLite stores, and their migration forward.

Each store (the run history, the webhook queue) keeps its version in SQLite's
own header field, ``PRAGMA user_version``, and lists its migrations in order:
migration ``n`` takes a store from version ``n - 1`` to ``n``. A store opened
for writing is brought to the latest version first, each migration in one
transaction with the new version number, so a crash leaves the old version or
the new one. Migration 1 is the baseline: it accepts any shape an earlier
release wrote (whose ``user_version`` is 0) and brings it to the schema of the
release that started counting. A store newer than this envfence knows is
refused, never written to or changed back::

    version = upgrade(db, HISTORY_MIGRATIONS, "var/production/history.sqlite3")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import EnvfenceError

#: One migration: SQL statements run in order, or a function given the connection (inside the transaction).
Migration = Sequence[str] | Callable[[Any], None]


class StoreTooNew(EnvfenceError):
    """A store written by a later envfence: this one refuses to write to it (and to guess what it holds)."""


def version(db: Any) -> int:
    """The store's schema version (0 for a store written before versions were kept, or a new file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(db: Any, migrations: Sequence[Migration], where: str) -> int:
    """The store's version; :class:`StoreTooNew` when a later envfence wrote it."""
    found = version(db)
    if found > len(migrations):
        raise StoreTooNew(
            f"{where} has schema version {found}, written by a newer envfence; this one knows versions up to {len(migrations)}",
            "run the newer envfence here too (every host of an environment runs one release), or restore the tree "
            "from a backup made by this release; the file was left as it is",
        )
    return found


def upgrade(db: Any, migrations: Sequence[Migration], where: str) -> int:
    """Bring the store to ``len(migrations)``; returns the version it had.

    The connection must be in autocommit or Python's default mode (no
    transaction open). Each migration runs inside ``BEGIN IMMEDIATE``, which
    waits for other writers; the version is read again once the lock is
    held, so two processes upgrading at once apply each migration once.
    """
    found = check_not_newer(db, migrations, where)
    if found == len(migrations):
        return found
    for number in range(found + 1, len(migrations) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if check_not_newer(db, migrations, where) >= number:  # another process did it meanwhile
                db.execute("ROLLBACK")
                continue
            step = migrations[number - 1]
            if callable(step):
                step(db)
            else:
                for statement in step:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {int(number)}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return found


def statements(script: str) -> tuple[str, ...]:
    """The statements of a schema script (no ``;`` inside a statement), to run one by one inside a migration."""
    return tuple(s.strip() for s in script.split(";") if s.strip())


def columns(db: Any, table: str) -> set[str]:
    """The column names of ``table`` (empty when there is no such table)."""
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def copy(path: Path) -> bytes:
    """A consistent copy of the store at ``path``, as bytes (for ``envfence backup``).

    Taken through SQLite's online backup API into memory: a writer at the same
    time is never half-copied, the store is opened read-only and nothing is
    written to disk.

    :raises sqlite3.DatabaseError: the file is not a database SQLite can read.
    """
    import sqlite3

    source = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(":memory:")
        try:
            source.backup(target)
            return target.serialize()
        finally:
            target.close()
    finally:
        source.close()
