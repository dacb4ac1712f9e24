"""The ``[backup]`` table: what an environment's archive holds, where it goes, how many are kept, when it runs.

Not a plugin: :mod:`envfence_builtins.operations.backup` reads its settings
here. ``[backup]`` applies to every environment, ``[backup.<environment>]``
overlays it key by key::

    [backup]
    include = ["csv", "logs"]   # beside the state: the CSV stages and the log files
    keep = 7                    # archives of this project and environment kept where they are written

    [backup.production]
    schedule = "0 2 * * *"      # `envfence schedule` runs `envfence backup` then, beside the automations
    keep = 30
    directory = "/srv/backups/app"   # default: <tree>/backups/archives
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envfence import slotted
from envfence.errors import ConfigurationError

SECTION = "backup"
DEFAULT_KEEP = 7
#: What ``include`` may add: the CSV stages, the log files.
PARTS = ("csv", "logs")
KEYS = ("keep", "include", "schedule", "directory")


@slotted.frozen
class BackupSettings:
    """One environment's backup settings, overlaid."""

    keep: int = DEFAULT_KEEP
    include: tuple[str, ...] = ()
    schedule: str | None = None
    directory: Path | None = None


def _overlaid(settings: Any, environment: str) -> dict[str, tuple[Any, str]]:
    section = settings.section(SECTION)
    own = section.get(environment, {})
    if not isinstance(own, dict):
        raise ConfigurationError(f"{settings.source}: {SECTION}.{environment}: must be a table", f"write [{SECTION}.{environment}]")
    common = {k: (v, f"{SECTION}.{k}") for k, v in section.items() if k not in settings.environments}
    return {**common, **{k: (v, f"{SECTION}.{environment}.{k}") for k, v in own.items()}}


def backup_settings(settings: Any, environment: str) -> BackupSettings:
    """``environment``'s backup settings; :class:`ConfigurationError` naming the file and the key for a bad one."""
    found: dict[str, Any] = {}
    for key, (value, name) in _overlaid(settings, environment).items():
        where = f"{settings.source}: {name}"
        if key not in KEYS:
            raise ConfigurationError(f"{where}: unknown key (not a backup setting, nor a declared environment)", f"use {', '.join(KEYS)}")
        found[key] = _checked(key, value, where, settings)
    return BackupSettings(**found)


def _checked(key: str, value: Any, where: str, settings: Any) -> Any:
    if key == "keep":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{where}: {value!r} is not a number of archives", "write keep = 7")
        return value
    if key == "include":
        if not isinstance(value, list) or not all(isinstance(v, str) and v in PARTS for v in value):
            raise ConfigurationError(f"{where}: {value!r} is not a list of {', '.join(PARTS)}", 'write include = ["csv", "logs"]')
        return tuple(dict.fromkeys(value))
    if key == "schedule":
        from envfence.cron import CronError, parse

        try:
            parse(value if isinstance(value, str) else "")
        except CronError:
            raise ConfigurationError(f"{where}: {value!r} is no cron expression", 'write schedule = "0 2 * * *"') from None
        return value
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where}: {value!r} is not a directory", 'write directory = "/srv/backups/app"')
    path = Path(value).expanduser()
    return path if path.is_absolute() else settings.path.parent / path if settings.path else path
