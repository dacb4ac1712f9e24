"""The results as markdown: a header naming the machine, a table per case, the targets."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata
from typing import Iterable

from .cases import Table, Target

_VERSIONED = ("envfence", "python-dotenv", "dynaconf", "pydantic-settings", "pluggy", "click", "attrs")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> str:
    """One line naming the machine and interpreter."""
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} cores, Python {platform.python_version()}"


def header(now: _dt.datetime | None = None) -> list[str]:
    """The date, the machine and the versions compared."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    versions = ", ".join(f"{d} {v}" for d in _VERSIONED if (v := _version(d)))
    return [f"Run {now:%Y-%m-%d %H:%M} UTC on {machine()}.", "", f"Versions: {versions}."]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def table(t: Table) -> list[str]:
    """A case as a markdown table; the ratio divides by the reference's median."""
    lines = [f"### {t.title}", "", t.what, "", f"Medians of alternating rounds: {t.rounds}.", ""]
    grouped = any(r.group for r in t.rows)
    head = (["size"] if grouped else []) + ["contender", "median", f"ratio to {t.reference}", "note"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        cells = ([r.group] if grouped else []) + [r.contender, _ms(r.median_ms), ratio, r.note]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def targets(items: Iterable[Target]) -> list[str]:
    """The targets as a table: the goal, this run's measurement, met or missed."""
    lines = ["### Against the targets", "", "| target | measured | |", "|---|---|---|"]
    for t in items:
        lines.append(f"| {t.goal} | {t.measured} | {'met' if t.met else '**missed**'} |")
    return lines + [""]


def render(tables: Iterable[Table], items: Iterable[Target]) -> str:
    """The whole report."""
    lines = header() + [""]
    for t in tables:
        lines += table(t)
    lines += targets(items)
    return "\n".join(lines)
