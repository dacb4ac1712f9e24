"""Installed plugin distributions, generated for the plugin-scaling case.

Each plugin is a module plus a ``.dist-info`` directory holding its metadata
and an ``[envfence]`` entry point, written side by side into one directory.
Putting that directory on ``PYTHONPATH`` makes them installed for
``importlib.metadata`` exactly as ``pip install`` would, without touching the
project's virtual environment.
"""

from __future__ import annotations

from pathlib import Path

PREFIX = "envfence-bench-plugin-"

_MODULE = '''\
"""Benchmark plugin {index}: implements hooks the way a small real plugin does."""

from envfence import hookimpl


@hookimpl
def declare_settings(settings):
    return []


@hookimpl
def detect_environment(settings, environ):
    return None


@hookimpl
def validate(session, live):
    return []
'''


def write_plugins(directory: Path, count: int) -> list[str]:
    """Write ``count`` plugin distributions into ``directory``; return their names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        dist = f"{PREFIX}{index}"
        module = dist.replace("-", "_")
        (directory / f"{module}.py").write_text(_MODULE.format(index=index))
        info = directory / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[envfence]\nbench_plugin_{index} = {module}\n")
        (info / "top_level.txt").write_text(f"{module}\n")
        (info / "RECORD").write_text("")
        names.append(dist)
    return names
