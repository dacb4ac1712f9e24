"""The profile beside a missed target: where a command's or a call's time goes, in one line.

A start-up target is missed by imports or by work; :func:`import_profile`
runs the command once under ``PYTHONPROFILEIMPORTTIME`` (the interpreter's own
``-X importtime``) and splits the import time by who asked for it (envfence's
core, its built-in plugins, other installed plugins, each third-party
library, the standard library), naming the costliest modules; what the
imports do not explain is the command's own work. :func:`call_profile` does
the same for an in-process call with :mod:`cProfile`, by the function's
package. Both are measured under a profiler, which slows what it watches:
they explain a verdict, they are not the verdict.
"""

from __future__ import annotations

import cProfile
import pstats
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Mapping


def owner(module: str) -> str:
    """Who a module belongs to: ``envfence core``, ``built-in plugins``, ``plugins``, ``stdlib`` or its distribution's package."""
    top = module.split(".", 1)[0]
    if top == "envfence":
        return "envfence core"
    if top == "envfence_builtins":
        return "built-in plugins"
    if top.startswith("envfence_"):
        return "plugins"
    if top in sys.stdlib_module_names or top.startswith("_") or top in ("encodings", "site"):
        return "stdlib"
    return top


def parse_importtime(stderr: str) -> list[tuple[str, int]]:
    """``(module, self microseconds)`` of each ``import time:`` line, in order."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, _cumulative, name = line.removeprefix("import time:").split("|", 2)
        found.append((name.strip(), int(own)))
    return found


def summarise(costs: Iterable[tuple[str, str, float]], total_ms: float, what: str, unit_of_rest: str) -> str:
    """``costs`` (module, label, ms) grouped by the module's :func:`owner`, largest first, the two largest labels named."""
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for module, label, ms in costs:
        groups[owner(module)][label] += ms
    spent = sum(ms for items in groups.values() for ms in items.values())
    parts = []
    for group, items in sorted(groups.items(), key=lambda g: -sum(g[1].values())):
        ms = sum(items.values())
        if ms < total_ms / 100:
            continue
        top = sorted(items.items(), key=lambda item: -item[1])[:2]
        named = ", ".join(f"{_short(label)} {_ms(cost)}" for label, cost in top if cost >= total_ms / 100)
        parts.append(f"{group} {_ms(ms)} ms ({len(items)}{': ' + named if named else ''})")
    rest = max(total_ms - spent, 0.0)
    return f"{what} {_ms(spent)} of {_ms(total_ms)} ms: " + "; ".join(parts) + f"; {unit_of_rest} {_ms(rest)} ms"


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _short(label: str) -> str:
    for prefix in ("envfence_builtins.", "envfence."):
        if label.startswith(prefix):
            return label[len(prefix):]
    return label


def import_profile(argv: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    """One run of ``argv`` under ``PYTHONPROFILEIMPORTTIME``: its imports by owner, and the rest (its work)."""
    environ = dict(env, PYTHONPROFILEIMPORTTIME="1")
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    total_ms = (time.perf_counter() - start) * 1000
    imports = parse_importtime(done.stderr)
    costs = [(name, name, us / 1000) for name, us in imports]
    return summarise(costs, total_ms, f"under -X importtime, {len(imports)} modules imported in", "the command's work")


def call_profile(call: Callable[[], object], calls: int = 200, steps: Iterable[Callable[..., object]] = ()) -> str:
    """``calls`` calls of ``call`` under :mod:`cProfile`: the time of each of ``steps`` (functions it calls,
    cumulative), then its own time by the package of each function."""
    profiler = cProfile.Profile()
    profiler.enable()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    total_ms = (time.perf_counter() - start) * 1000 / calls
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    costs = []
    for (filename, _line, name), (_cc, _nc, own, _cum, _callers) in stats.items():
        module = _module_of(filename)
        label = name.removeprefix("<built-in method ").removeprefix("<method ").rstrip(">") if module == "_builtins" else f"{module}.{name}"
        costs.append((module, label, own * 1000 / calls))
    line = summarise(costs, total_ms, "under cProfile, a call's own time", "unattributed")
    timed = []
    for step in steps:
        code = step.__code__
        found = stats.get((code.co_filename, code.co_firstlineno, code.co_name))
        if found is not None:
            timed.append(f"{code.co_name} {_ms(found[3] * 1000 / calls)}")
    return (f"steps (cumulative, ms): {', '.join(timed)}. " if timed else "") + line


def _module_of(filename: str) -> str:
    """A dotted module name for a profiled function's file (``~`` for built-ins)."""
    if filename.startswith("~"):
        return "_builtins"
    if filename.startswith("<record "):  # envfence.slotted's generated __init__: the model's module
        return filename.removeprefix("<record ").rsplit(".", 2)[0]
    if filename.startswith("<"):
        return "_generated"
    path = Path(filename)
    for root in sorted((p for p in sys.path if p), key=len, reverse=True):
        try:
            relative = path.relative_to(root)
        except ValueError:
            continue
        parts = list(relative.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) or path.stem
    return path.stem


