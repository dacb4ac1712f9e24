"""Find the project root: ``ENVFENCE_ROOT``, then a project with envfence
settings, then the seed's markers (``setup.py``, ``VERSION``, ``.git``),
searched upward from the working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import ProjectRoot
from envfence.settings import has_settings

#: The seed's markers, in the order they are tried.
MARKERS = ("setup.py", "VERSION", ".git")


@hookimpl
def find_project_root(start: Path, environ: Mapping[str, str]) -> ProjectRoot | None:
    """Find the root; the method that found it is recorded."""
    forced = environ.get("ENVFENCE_ROOT")
    if forced:
        path = Path(forced).expanduser().resolve()
        if not path.is_dir():
            raise ConfigurationError(
                f"ENVFENCE_ROOT={forced}: not a directory", "point ENVFENCE_ROOT at the project's directory, or unset it"
            )
        return ProjectRoot(path, "ENVFENCE_ROOT", forced)
    chain = [start, *start.parents]
    for directory in chain:
        found = has_settings(directory)
        if found:
            return ProjectRoot(directory, found, str(directory / found.split()[0]))
    # The seed's order is by marker first, then by distance: a setup.py higher
    # up beats a VERSION file nearer by.
    for marker in MARKERS:
        for directory in chain:
            if (directory / marker).exists():
                return ProjectRoot(directory, marker, str(directory / marker))
    return None
