"""Small JSON state files in an environment's tree (pauses, alert state), written through :mod:`envfence.files`.

Not a plugin: the operations plugins keep their state through these
functions, so a crash leaves the old file or the new one, and a link planted
in the tree is never written through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from envfence.errors import EnvfenceError


def state_dir(paths) -> Path:
    """``<tree>/state``: where the operations plugins keep their files."""
    return paths.base / "state"


def read_json(path: Path, default: Any) -> Any:
    """The JSON in ``path``, ``default`` when it does not exist; a damaged file is an error naming it."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EnvfenceError(f"{path} is damaged ({exc})", f"move it aside (mv {path} {path}.damaged); envfence starts a new one") from None


def write_json(paths, path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` of the environment's tree, atomically."""
    from envfence import files

    files.write_atomic(paths, path, json.dumps(data, indent=2, sort_keys=True, default=str))


def write_outside(path: Path, data: bytes | str, mode: int = 0o644, session: Any = None) -> Path:
    """Write a file the user named outside any tree (a report, unit files, an off-site archive), atomically.

    With ``session``, a place inside another environment's tree
    (``session.paths.others``) is refused: one environment's data never lands
    where another's commands (``clean``, ``restore``, retention) act.
    """
    from envfence import files
    from envfence.errors import SafetyError

    paths = session.paths if session is not None else None
    if paths is not None:
        target = Path(os.path.realpath(path.parent))
        for env, base in sorted(paths.others.items()):
            tree = Path(os.path.realpath(base))
            if target == tree or tree in target.parents:
                raise SafetyError(f"{path} is inside the {env} tree ({tree}); {session.environment.name}'s data never goes there",
                                  f"write it outside every environment's tree, or into {session.environment.name}'s own")

    try:
        return files.write_atomic(path.parent, path.name, data, mode=mode, dir_mode=0o755)
    except OSError as exc:  # the named place itself cannot be opened (a file where its directory belongs, no access)
        raise EnvfenceError(f"cannot write {path}: {exc.strerror or exc}",
                            "name a file in a directory you may write to; nothing was written") from None
