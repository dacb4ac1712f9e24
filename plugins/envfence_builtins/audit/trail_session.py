"""What the trail needs to know of the session: the environment's audit key, and whether its run history shows runs."""

from __future__ import annotations

import os
import stat

from envfence.errors import EnvfenceError


def audit_key(session) -> bytes | None:
    """The environment's audit key from the key ring: the variable, else the owner-only key file, else None.

    :raises EnvfenceError: the key file is a link, readable by others, or is not a file.
    """
    from envfence import keyring

    name = session.environment.name
    key = keyring.find(session.root.path, name, session.settings.naming.prefix(name), session.environ, "audit")
    return None if key is None else key.material


def has_runs(session) -> bool:
    """Whether the environment's run history shows any run; False when there is none or it cannot be read.

    The database is opened read-only and only queried: reading it through the
    ``run_history`` hook would mark abandoned runs, which audits, which appends.
    """
    import sqlite3

    from envfence_builtins.runs.history import history_file

    try:
        path = history_file(session)
        if path is None or not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            row = db.execute("SELECT 1 FROM runs WHERE environment = ? LIMIT 1", (session.environment.name,)).fetchone()
        finally:
            db.close()
    except (OSError, sqlite3.Error, EnvfenceError):  # no file, or a damaged one: its own plugin reports that
        return False
    return row is not None
