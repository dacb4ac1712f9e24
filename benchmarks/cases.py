"""The cases, each a table of medians and ratios, and the targets they are held to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import attrs

from . import redaction
from .contenders import CONTENDERS, NOTES
from .plugin_dists import PREFIX, write_plugins
from .projects import Project, generate_project
from .timing import BenchmarkError, alternate, command, in_process, median_ms

BIN = Path(sys.executable).parent
PYTHON = sys.executable
#: What ``envfence detect`` is held to: the libraries it cannot start without.
DEPENDENCY_FLOOR = "import click, pluggy, dotenv, attrs"


@attrs.frozen
class Row:
    """One contender's median in one group of a case."""

    group: str
    contender: str
    median_ms: float | None  #: None when the contender was skipped
    ratio: float | None = None  #: median over the group's reference median
    note: str = ""


@attrs.frozen
class Table:
    """A case's results."""

    title: str
    what: str  #: one sentence on what is measured
    reference: str  #: the contender the ratios divide by
    rounds: str  #: how many alternating rounds each median is of
    rows: tuple[Row, ...]


@attrs.frozen
class Target:
    """A goal from the project's targets and whether this run met it."""

    goal: str
    measured: str
    met: bool


@attrs.frozen
class Plan:
    """How much to run."""

    sizes: tuple[int, ...] = (10, 1_000, 10_000)
    plugin_counts: tuple[int, ...] = (0, 10, 50)
    rounds: int = 15  #: rounds of the cold cases; the in-process case scales it by size
    audit_sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000)  #: audit trail lengths, in records
    audit_rounds: int = 3
    warmup: bool = True

    def in_process_rounds(self, size: int) -> tuple[int, int]:
        """(rounds, calls per measurement) for ``size`` keys: more of both where a call is short.

        At 10,000 keys Dynaconf takes seconds a call, and python-dotenv over
        a second, so three rounds keep the run within minutes.
        """
        if size <= 100:
            return self.rounds * 2, 20
        if size <= 1_000:
            return self.rounds, 3
        return min(self.rounds, 3), 1

    def cold_rounds(self, size: int) -> int:
        """Rounds of the cold command at ``size`` keys (python-dotenv's CLI takes seconds at 10,000)."""
        return self.rounds if size <= 1_000 else min(self.rounds, 5)


def _rows(group: str, times: dict[str, list[float]], reference: str, notes: dict[str, str] | None = None) -> list[Row]:
    ref = median_ms(times[reference])
    rows = []
    for name, samples in times.items():
        value = median_ms(samples)
        rows.append(Row(group, name, value, value / ref, (notes or {}).get(name, "")))
    return rows


def base_environ() -> dict[str, str]:
    """The environment of the cold commands: this one, without anything that steers envfence or Python's path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "PYTHON"))}
    environ["ENVIRONMENT"] = "production"
    return environ


# --- 1. in process ------------------------------------------------------------------


def loaded_values(project: Project) -> dict[str, dict[str, str]]:
    """Each available contender's production configuration of ``project``, as strings."""
    found = {}
    for contender in CONTENDERS:
        if contender.available:
            found[contender.name] = contender.values(contender.prepare(project)(), project)
            if contender.reset:
                contender.reset()
    return found


def check_agreement(project: Project) -> None:
    """Stop unless every contender loaded exactly the project's configuration."""
    for name, values in loaded_values(project).items():
        generated = {k: values.get(k) for k in project.expected}
        if generated != project.expected:
            wrong = sorted(k for k in project.expected if generated[k] != project.expected[k])
            raise BenchmarkError(f"{name} loaded {len(wrong)} of {project.keys} keys wrongly, e.g. {wrong[:3]}")


def in_process_case(projects: dict[int, Project], plan: Plan) -> tuple[Table, list[Target]]:
    """Case 1: load the production configuration, inside one process."""
    rows: list[Row] = []
    targets: list[Target] = []
    counts = []
    for size, project in projects.items():
        check_agreement(project)
        rounds, batch = plan.in_process_rounds(size)
        counts.append(f"{rounds} of {batch} call{'s' if batch > 1 else ''} at {size:,} keys")
        measures = {}
        for c in CONTENDERS:
            if c.available:
                measures[c.name] = in_process(c.prepare(project), batch, c.reset)
        group = f"{size:,} keys"
        # No warm-up: check_agreement has just run every contender once.
        times = alternate(measures, rounds, warmup=False)
        rows += _rows(group, times, "python-dotenv", NOTES)
        rows += [Row(group, c.name, None, note="not installed") for c in CONTENDERS if not c.available]
        medians = {name: median_ms(t) for name, t in times.items()}
        ratio = medians["envfence"] / medians["python-dotenv"]
        targets.append(Target(f"in process, {group}: envfence within 1.2x of python-dotenv", f"{ratio:.2f}x", ratio <= 1.2))
        for other in ("dynaconf", "pydantic-settings"):
            if other in medians:
                r = medians["envfence"] / medians[other]
                targets.append(Target(f"in process, {group}: envfence faster than {other}", f"{r:.2f}x", r < 1))
    table = Table(
        "In process: load the production configuration",
        "envfence `open_session(env=\"production\")` (detection, four file layers, process environment, "
        "provenance, secrets, validation) against `dotenv_values` of both files merged, Dynaconf over both "
        "files and a pydantic-settings model of every key; the plugin manager and the model class are built once, "
        "as a long-running tool would.",
        "python-dotenv",
        ", ".join(counts),
        tuple(rows),
    )
    return table, targets


def interpolated_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """Case 1b: the same load with a tenth of the values referring to another key."""
    import envfence

    from .contenders import _dotenv, _envfence_values

    rows: list[Row] = []
    per_key: dict[int, float] = {}
    counts = []
    for size in plan.sizes:
        project = generate_project(workdir / f"interpolated-{size}", size, interpolated=True)
        def load(project=project):  # loading only: validation is the same work with or without references
            return envfence.open_session(root=project.root, env="production")

        if _envfence_values(load(), project) != project.expected:
            raise BenchmarkError(f"envfence expanded the interpolated project of {size:,} keys wrongly")
        rounds, batch = plan.in_process_rounds(size)
        counts.append(f"{rounds} of {batch} at {size:,} keys")
        times = alternate({"envfence": in_process(load, batch), "python-dotenv": in_process(_dotenv(project), batch)},
                          rounds, warmup=False)
        rows += _rows(f"{size:,} keys", times, "python-dotenv",
                      {"python-dotenv": "interpolating, each file on its own: not the same values"})
        per_key[size] = median_ms(times["envfence"]) / size
    targets = []
    large = [size for size in per_key if size >= 1_000]
    if len(large) > 1:
        growth = per_key[max(large)] / per_key[min(large)]
        targets.append(Target(
            f"interpolated load grows linearly: time per key at {max(large):,} keys within 1.5x of {min(large):,}",
            f"{growth:.2f}x", growth <= 1.5))
    table = Table(
        "In process, interpolated: a tenth of the values are ${KEY}/sub",
        "envfence `open_session(env=\"production\")` without validation, of a project whose every tenth `.env` "
        "value refers to the key before it, against `dotenv_values` (interpolating) of both files merged.",
        "python-dotenv",
        ", ".join(counts),
        tuple(rows),
    )
    return table, targets


# --- 2. cold command ------------------------------------------------------------------


def cold_command_case(projects: dict[int, Project], plan: Plan) -> tuple[Table, list[Target]]:
    """Case 2: a fresh process that prints the configuration."""
    rows: list[Row] = []
    counts = []
    environ = base_environ()
    dotenv = str(BIN / "dotenv")
    for size, project in projects.items():
        counts.append(f"{plan.cold_rounds(size)} at {size:,} keys")
        cwd = project.root
        measures = {
            "envfence --json config show": command([str(BIN / "envfence"), "--json", "config", "show"], cwd=cwd, env=environ),
            "dotenv list (.env only)": command([dotenv, "-f", ".env", "list", "--format", "json"], cwd=cwd, env=environ),
            "dotenv list (both files)": command(
                [dotenv, "-f", ".env", "list", "--format", "json"],
                [dotenv, "-f", ".env.production", "list", "--format", "json"],
                cwd=cwd,
                env=environ,
            ),
            "python -c pass": command([PYTHON, "-c", "pass"], cwd=cwd, env=environ),
        }
        notes = {"dotenv list (both files)": "two processes: its CLI lists one file per call"}
        times = alternate(measures, plan.cold_rounds(size), plan.warmup)
        rows += _rows(f"{size:,} keys", times, "dotenv list (.env only)", notes)
    table = Table(
        "Cold command: print the production configuration",
        "A new process from start to exit, as cron runs it; `python -c pass` is the interpreter's floor.",
        "dotenv list (.env only)",
        ", ".join(counts),
        tuple(rows),
    )
    return table, []


# --- 3. import ------------------------------------------------------------------------


def import_case(cwd: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """Case 3: the cost of importing each library in a fresh interpreter."""
    environ = base_environ()
    modules = {"envfence": "envfence", "python-dotenv": "dotenv", "dynaconf": "dynaconf", "pydantic-settings": "pydantic_settings"}
    available = {c.name for c in CONTENDERS if c.available}
    measures = {f"import {m}": command([PYTHON, "-c", f"import {m}"], cwd=cwd, env=environ) for n, m in modules.items() if n in available}
    measures["python -c pass"] = command([PYTHON, "-c", "pass"], cwd=cwd, env=environ)
    rows = _rows("", alternate(measures, plan.rounds, plan.warmup), "import dotenv")
    rows += [Row("", f"import {m}", None, note="not installed") for n, m in modules.items() if n not in available]
    table = Table(
        "Import",
        "`python -c \"import X\"` from start to exit.",
        "import dotenv",
        str(plan.rounds),
        tuple(rows),
    )
    return table, []


# --- 4. plugin scaling ----------------------------------------------------------------


def installed_bench_plugins(cwd: Path, environ: dict[str, str]) -> int:
    """How many generated plugins ``envfence plugins`` shows as loaded."""
    done = subprocess.run(
        [str(BIN / "envfence"), "--json", "plugins"], cwd=cwd, env=environ, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchmarkError(f"`envfence --json plugins` exited {done.returncode}: {done.stderr.strip()}")
    records = json.loads(done.stdout)
    return sum(1 for r in records if r["distribution"].startswith(PREFIX) and r["status"] == "loaded")


def plugin_case(project: Project, workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """Case 4: ``envfence detect`` with 0, 10 and 50 installed plugin distributions."""
    measures = {}
    for count in plan.plugin_counts:
        site = workdir / f"site-{count}"
        write_plugins(site, count)
        environ = {**base_environ(), "PYTHONPATH": str(site)}
        seen = installed_bench_plugins(project.root, environ)
        if seen != count:
            raise BenchmarkError(f"{count} plugin distributions were generated but envfence loaded {seen}")
        measures[f"envfence detect, {count} plugins"] = command([str(BIN / "envfence"), "detect"], cwd=project.root, env=environ)
    floor = f'python -c "{DEPENDENCY_FLOOR}"'
    measures[floor] = command([PYTHON, "-c", DEPENDENCY_FLOOR], cwd=project.root, env=base_environ())
    times = alternate(measures, plan.rounds, plan.warmup)
    rows = _rows("", times, floor)
    medians = {name: median_ms(t) for name, t in times.items()}
    none, most = min(plan.plugin_counts), max(plan.plugin_counts)
    bare = medians[f"envfence detect, {none} plugins"]
    targets = [
        Target(f"`envfence detect` cold within 1.5x of `{floor}`", f"{bare / medians[floor]:.2f}x", bare <= 1.5 * medians[floor]),
    ]
    if most != none:
        added = medians[f"envfence detect, {most} plugins"] - bare
        targets.append(Target(f"{most} installed plugins add at most 30 ms to `envfence detect`", f"{added:+.1f} ms", added <= 30))
    table = Table(
        "Plugin scaling: `envfence detect` with installed plugin distributions",
        f"Generated distributions, each with an `envfence` entry point and three hooks, on `PYTHONPATH`; "
        f"the project has {project.keys:,} keys. Ratios are to the import of envfence's own dependencies.",
        floor,
        str(plan.rounds),
        tuple(rows),
    )
    return table, targets


def _webhook_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    from .webhooks import webhook_case  # starts servers: imported only when this case runs

    return webhook_case(workdir, plan)


def run_all(workdir: Path, plan: Plan) -> tuple[list[Table], list[Target]]:
    """Generate the projects under ``workdir`` and run every case."""
    from .store_case import store_case

    projects = {size: generate_project(workdir / f"project-{size}", size) for size in plan.sizes}
    tables: list[Table] = []
    targets: list[Target] = []
    cases: Iterable = (
        lambda: in_process_case(projects, plan),
        lambda: interpolated_case(workdir, plan),
        lambda: cold_command_case(projects, plan),
        lambda: import_case(workdir, plan),
        lambda: plugin_case(projects[min(plan.sizes)], workdir, plan),
        lambda: redaction.engine_case(plan),
        lambda: redaction.validation_case(projects, plan, base_environ(), BIN),
        lambda: audit_case(workdir, plan.audit_sizes, plan.audit_rounds),
        lambda: _webhook_case(workdir, plan),
        lambda: store_case(workdir, plan),
    )
    from .audit_case import audit_case

    for case in cases:
        table, met = case()
        tables.append(table)
        targets += met
    return tables, targets
