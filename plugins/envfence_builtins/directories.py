"""Each environment's directory tree: where its CSV files, logs and backups live.

The tree is ``var/<environment>/`` under the project root unless the
``[directories]`` settings table says otherwise::

    [directories]
    base = "var/{environment}"
    dirs = ["csv/incoming", "csv/processing", "csv/processed", "csv/failed", "logs", "backups", "archive"]
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import EnvPaths

DEFAULT_BASE = "var/{environment}"
DEFAULT_DIRS = ("csv/incoming", "csv/processing", "csv/processed", "csv/failed", "logs", "backups", "archive")


@hookimpl
def environment_paths(session) -> EnvPaths:
    """The tree of the session's environment (nothing is created here)."""
    section = session.settings.section("directories")
    where = f"{session.settings.source}: directories"
    base = section.get("base", DEFAULT_BASE)
    dirs = section.get("dirs", list(DEFAULT_DIRS))
    if not isinstance(base, str) or "{environment}" not in base:
        raise ConfigurationError(
            f"{where}.base must be a string holding {{environment}}, not {base!r}",
            'keep environments apart, e.g. base = "var/{environment}"',
        )
    if not isinstance(dirs, list) or not all(isinstance(d, str) and d and not d.startswith("/") and ".." not in d for d in dirs):
        raise ConfigurationError(f"{where}.dirs must be a list of relative paths inside the tree", 'e.g. dirs = ["csv/incoming", "logs"]')
    env = session.environment.name
    root = (session.root.path / base.format(environment=env)).resolve()
    return EnvPaths(environment=env, base=root, dirs={d: root / d for d in dirs})
