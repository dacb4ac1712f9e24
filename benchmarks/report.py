"""The results as markdown: a header naming the machine, a table per case, the targets."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
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


def commit(repo: Path = Path(__file__).resolve().parents[1]) -> str:
    """The commit measured, with a word when the work tree differed from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD")
    if not head:
        return "an unknown commit (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "core", "plugins", "contrib", "benchmarks", "pyproject.toml")
    return f"commit {head}" + (" with uncommitted changes" if dirty else "")


def header(now: _dt.datetime | None = None) -> list[str]:
    """The date, the commit, the machine and the versions compared."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    versions = ", ".join(f"{d} {v}" for d in _VERSIONED if (v := _version(d)))
    try:
        load = f", load average {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    return [f"Run {now:%Y-%m-%d %H:%M} UTC of {commit()} on {machine()}{load}.", "", f"Versions: {versions}."]


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def table(t: Table) -> list[str]:
    """A case as a markdown table; the ratio divides by the reference's median."""
    lines = [f"### {t.title}", "", t.what, "", f"Medians of alternating rounds: {t.rounds}.", ""]
    grouped = any(r.group for r in t.rows)
    memory = any(r.peak_mib is not None for r in t.rows)
    head = (["size"] if grouped else []) + ["contender", "median", "spread", f"ratio to {t.reference}"]
    head += (["peak memory"] if memory else []) + ["note"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        cells = ([r.group] if grouped else []) + [r.contender, _ms(r.median_ms), r.spread, ratio]
        cells += ([_mib(r.peak_mib)] if memory else []) + [r.note]
        lines.append("| " + " | ".join(cells) + " |")
    if t.curve:
        lines += ["", "```", *t.curve, "```"]
    return lines + [""]


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def targets(items: Iterable[Target]) -> list[str]:
    """The targets as a table: the goal, this run's measurement, met or missed, and for a miss the profile that explains it."""
    lines = ["### Against the targets", "", "| target | measured | | what the profile shows |", "|---|---|---|---|"]
    for t in items:
        why = "" if t.met else t.why
        lines.append(f"| {t.goal} | {t.measured} | {'met' if t.met else '**missed**'} | {why} |")
    return lines + [""]


def render(tables: Iterable[Table], items: Iterable[Target], head: list[str] | None = None) -> str:
    """The whole report, under ``head`` (default :func:`header`)."""
    lines = (head or header()) + [""]
    for t in tables:
        lines += table(t)
    lines += targets(items)
    return "\n".join(lines)


#: The markers around the part of a page that ``--write`` replaces.
BEGIN, END = "<!-- benchmark results: written by make bench -->", "<!-- end of benchmark results -->"


def write_section(page: Path, text: str) -> None:
    """Put ``text`` between the markers of ``page`` (appended with them when the page has none)."""
    old = page.read_text()
    block = f"{BEGIN}\n\n{text.strip()}\n\n{END}"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(new)
