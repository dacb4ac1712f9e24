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


def _cron_problem(value: Any) -> str | None:
    from envfence.cron import CronError, parse

    try:
        parse(value)
    except CronError:
        return "is no cron expression"
    return None


def _keys(table: Any) -> None:
    from envfence.settings_kinds import text, texts, whole

    table.add("keep", whole(minimum=1, example=DEFAULT_KEEP), DEFAULT_KEEP, "archives of this project and environment kept")
    table.add("include", texts(choices=PARTS), [], "what the archive holds beside the state: the CSV stages, the log files")
    table.add("schedule", text(example="0 2 * * *"), None, "when `envfence schedule` runs `envfence backup` (a cron expression)",
              check=_cron_problem)
    table.add("directory", text(example="/srv/backups/app"), None,
              "where archives are written (default <tree>/backups/archives; relative to the project)")


def _backup_table() -> Any:
    from envfence.settings_tables import Table

    table = Table(SECTION, "archives of the environment's state, for every environment; [backup.<environment>] overlays it")
    _keys(table)
    _keys(table.add_each("", "one environment's backup settings, over [backup]", noun="environment name",
                         names_hint="a declared environment's name"))
    return table


#: ``[backup]``, declared once: loading, ``check``, ``config schema`` and the docs read it.
TABLE = _backup_table()


@slotted.frozen
class BackupSettings:
    """One environment's backup settings, overlaid."""

    keep: int = DEFAULT_KEEP
    include: tuple[str, ...] = ()
    schedule: str | None = None
    directory: Path | None = None


def backup_settings(settings: Any, environment: str) -> BackupSettings:
    """``environment``'s backup settings, ``[backup.<environment>]`` over ``[backup]``.

    :raises ConfigurationError: naming the file and the key: a value the declaration refuses, or a
        ``[backup.NAME]`` table whose name is no declared environment.
    """
    found = {key: value for key, (value, _) in TABLE.overlaid(settings, environment).items()}
    if "include" in found:
        found["include"] = tuple(dict.fromkeys(found["include"]))
    if found.get("directory") is not None:
        path = Path(found["directory"]).expanduser()
        found["directory"] = path if path.is_absolute() or settings.path is None else settings.path.parent / path
    return BackupSettings(**found)
