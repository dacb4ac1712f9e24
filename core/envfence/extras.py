"""Which optional extra brings a missing module: read from envfence's own metadata.

The extras are declared once, in pyproject.toml; an installed envfence carries
them as ``Requires-Dist: NAME; extra == "EXTRA"`` lines, so the hint a user
gets for a missing module cannot disagree with what ``pip install`` offers.
"""

from __future__ import annotations

import re

#: Extras that only the project's own development needs: never the hint for a user.
DEVELOPMENT_EXTRAS = frozenset({"test", "docs", "bench"})

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def extra_for(module: str | None) -> str | None:
    """The user-facing extra whose requirements bring top-level ``module``, or None.

    ``module`` may be dotted (``cryptography.hazmat``); only its top level counts.
    """
    if not module:
        return None
    import importlib.metadata

    wanted = _normalise(module.split(".", 1)[0])
    try:
        requirements = importlib.metadata.metadata("envfence").get_all("Requires-Dist") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for line in requirements:
        match = _REQUIREMENT.match(line)
        if match and match.group(2) not in DEVELOPMENT_EXTRAS and _normalise(match.group(1)) == wanted:
            return match.group(2)
    return None


def install_hint(extra: str) -> str:
    """The line that installs ``extra``."""
    return f"install it: pip install 'envfence[{extra}]'"
