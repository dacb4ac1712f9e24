"""The installed distributions' entry points of one group, found without ``importlib.metadata``.

Every envfence command starts by finding its plugins. ``importlib.metadata``
answers that by importing ``email``, ``zipfile`` and ``csv`` (about 10 ms, a
fifth of ``envfence detect``) and parsing each plugin's METADATA with the
email parser, twice (name, then version). The question needs much less: the
``*.dist-info`` and ``*.egg-info`` directories on ``sys.path``, their
``entry_points.txt``, and two header lines of their metadata. This module
reads exactly those, in ``importlib.metadata``'s order: ``sys.path`` order,
directory listing order within an entry, the first distribution of a name
winning.

Where distributions may live somewhere it does not look (a zip file or an egg
on ``sys.path``, an import hook that provides distributions),
:func:`entry_points` hands the question to ``importlib.metadata`` instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys
from typing import Any

#: The same pattern ``importlib.metadata.EntryPoint`` loads with.
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


class Distribution:
    """The name and version of an installed distribution, read on first use."""

    __slots__ = ("path", "_headers")

    def __init__(self, path: str) -> None:
        self.path = path
        self._headers: dict[str, str] | None = None

    def _header(self, field: str) -> str:
        if self._headers is None:
            self._headers = {}
            for filename in ("METADATA", "PKG-INFO"):
                try:
                    with open(os.path.join(self.path, filename), encoding="utf-8", errors="replace") as handle:
                        for line in handle:
                            if not line.strip():
                                break  # the headers end at the first blank line
                            key, sep, value = line.partition(":")
                            if sep and key in ("Name", "Version"):
                                self._headers.setdefault(key, value.strip())
                    break
                except OSError:
                    continue
        return self._headers.get(field, "")

    @property
    def name(self) -> str:
        """The distribution's name as its metadata spells it (``envfence-slack``)."""
        return self._header("Name")

    @property
    def version(self) -> str:
        """The distribution's version."""
        return self._header("Version")


class EntryPoint:
    """One entry point: ``name = module[:attr]`` of a distribution."""

    __slots__ = ("name", "value", "group", "dist")

    def __init__(self, name: str, value: str, group: str, dist: Distribution) -> None:
        self.name, self.value, self.group, self.dist = name, value, group, dist

    def load(self) -> Any:
        """Import the module and return the object the entry point names."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"entry point {self.name!r} has a malformed value {self.value!r}")
        # The import statement's machinery, which ``python -X importtime`` reports; importlib.import_module's
        # is not timed, and plugin modules would be missing from the profile of a start-up.
        __import__(match.group("module"))
        found = sys.modules[match.group("module")]
        for attr in filter(None, (match.group("attr") or "").split(".")):
            found = getattr(found, attr)
        return found

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _plain_search_path() -> bool:
    """True when every distribution is a directory on ``sys.path`` (no zip, egg or metadata hook)."""
    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is not None and finder is not importlib.machinery.PathFinder:
            return False
    for entry in sys.path:
        if not isinstance(entry, str):
            continue  # the import system skips such entries too
        if entry.lower().endswith(".egg") or os.path.isfile(entry or "."):
            return False
    return True


def _group_entries(path: str, group: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of ``group`` in a metadata directory's ``entry_points.txt``."""
    try:
        with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    pairs: list[tuple[str, str]] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group:
            name, sep, value = line.partition("=")
            if sep:
                pairs.append((name.strip(), value.strip()))
    return pairs


def scan(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` from the metadata directories on ``sys.path``."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        try:
            children = os.listdir(entry or ".")
        except OSError:
            continue
        # Grouped by distribution name in first-seen order, as importlib.metadata does.
        infos: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                infos.setdefault(_normalize(low.rpartition(".")[0].partition("-")[0]), []).append(child)
        for normalized, names in infos.items():
            for child in names:
                if normalized in seen:
                    continue
                seen.add(normalized)
                path = os.path.join(entry or ".", child)
                dist = Distribution(path)
                found += [EntryPoint(name, value, group, dist) for name, value in _group_entries(path, group)]
    return found


def entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` of every installed distribution, first of a name winning."""
    if _plain_search_path():
        return scan(group)
    from importlib.metadata import entry_points as metadata_entry_points

    return list(metadata_entry_points(group=group))
