"""The cases, each a table of medians and ratios, and the targets they are held to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

import attrs

from . import redaction, scaling
from .contenders import CONTENDERS, NOTES
from .plugin_dists import PREFIX, write_plugins
from .profiles import call_profile, import_profile
from .projects import Project, generate_project, job_project
from .timing import BenchmarkError, alternate, command, in_process, median_ms, paired_ratio, ratio_text, spread

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
    spread: str = ""  #: how far the rounds lay apart (interquartile range, min to max)
    peak_mib: float | None = None  #: peak resident memory of one run, where measured


@attrs.frozen
class Table:
    """A case's results."""

    title: str
    what: str  #: one sentence on what is measured
    reference: str  #: the contender the ratios divide by
    rounds: str  #: how many alternating rounds each median is of
    rows: tuple[Row, ...]
    curve: tuple[str, ...] = ()  #: a text chart of a scaling case, one line per size


@attrs.frozen
class Target:
    """A goal from the project's targets and whether this run met it."""

    goal: str
    measured: str
    met: bool
    why: str = ""  #: for a missed target, the profile that explains it (:mod:`benchmarks.profiles`)


@attrs.frozen
class Plan:
    """How much to run: the default is ``make bench``; :meth:`quick` and :meth:`large` are the others."""

    sizes: tuple[int, ...] = (10, 1_000, 10_000)
    plugin_counts: tuple[int, ...] = (0, 10, 50)
    rounds: int = 21  #: rounds of the cold cases; the in-process case scales it by size
    audit_sizes: tuple[int, ...] = (1_000, 100_000)  #: audit trail lengths, in records (1,000,000 with --large)
    audit_rounds: int = 3
    warmup: bool = True
    key_sizes: tuple[int, ...] = (1_000, 10_000)  #: the keys curve
    environment_counts: tuple[int, ...] = (2, 10, 50)  #: the environments curve ...
    environment_keys: int = 1_000  #: ... at this many keys
    history_rows: tuple[int, ...] = (10, 10_000, 100_000)  #: the history curve (1,000,000 with --large)
    history_peaks: bool = True  #: measure the history commands' peak memory too

    @classmethod
    def quick(cls, plugin_counts: tuple[int, ...] = (0, 10, 50)) -> "Plan":
        """The smallest sizes, one round, no warm-up: does every case still run (the smoke test)?

        One history size: every history command (the analyses and metrics
        included) runs once on it, which costs less than two sizes of two.
        """
        return cls(sizes=(10,), plugin_counts=plugin_counts, rounds=1, warmup=False, key_sizes=(10, 100),
                   environment_counts=(2, 3), environment_keys=10, history_rows=(100,), history_peaks=False,
                   audit_sizes=(100, 1_000), audit_rounds=1)

    @classmethod
    def large(cls, rounds: int = 21) -> "Plan":
        """The long sizes: 100,000 keys in process and cold, 50 environments at 10,000 keys, 1,000,000 audit records
        and recorded runs."""
        return cls(sizes=(10, 1_000, 10_000, 100_000), rounds=rounds, key_sizes=(1_000, 10_000, 100_000),
                   environment_keys=10_000, audit_sizes=(1_000, 100_000, 1_000_000),
                   history_rows=(10, 10_000, 100_000, 1_000_000))

    def curve_rounds(self, large: bool) -> int:
        """Rounds of a scaling case: half the cold rounds, a third of those with its largest sizes."""
        return max(1, self.rounds // 2 if not large else self.rounds // 6)

    def in_process_rounds(self, size: int) -> tuple[int, int]:
        """(rounds, calls per measurement) for ``size`` keys: more of both where a call is short.

        At 10,000 keys pydantic-settings and python-dotenv's default take
        over a second a call, so three rounds keep the run within minutes;
        their spread there (interquartile ranges within 5% of the median in
        runs of five) allows it, as does the 10-key case's at 21 rounds.
        """
        if size <= 100:
            return self.rounds, 20
        if size <= 1_000:
            return max(1, min(self.rounds, 7)), 3
        return max(1, min(self.rounds, 3)), 1

    def cold_rounds(self, size: int) -> int:
        """Rounds of the cold command at ``size`` keys (python-dotenv's CLI takes seconds at 10,000)."""
        return self.rounds if size <= 1_000 else min(self.rounds, 5)


def _rows(group: str, times: dict[str, list[float]], reference: str, notes: dict[str, str] | None = None) -> list[Row]:
    ref = median_ms(times[reference])
    rows = []
    for name, samples in times.items():
        value = median_ms(samples)
        rows.append(Row(group, name, value, value / ref, (notes or {}).get(name, ""), spread(samples)))
    return rows


def base_environ() -> dict[str, str]:
    """The environment of the cold commands: this one, without anything that steers envfence or Python's path."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "PYTHON"))}
    environ["ENVIRONMENT"] = "production"
    return environ


# --- 1. in process ------------------------------------------------------------------


def loaded_values(project: Project, contenders=CONTENDERS) -> dict[str, dict[str, str]]:
    """Each available contender's production configuration of ``project``, as strings."""
    found = {}
    for contender in contenders:
        if contender.available:
            found[contender.name] = contender.values(contender.prepare(project)(), project)
            if contender.reset:
                contender.reset()
    return found


def check_agreement(project: Project, contenders=CONTENDERS) -> None:
    """Stop unless every contender loaded exactly the project's configuration."""
    for name, values in loaded_values(project, contenders).items():
        generated = {k: values.get(k) for k in project.expected}
        if generated != project.expected:
            wrong = sorted(k for k in project.expected if generated[k] != project.expected[k])
            raise BenchmarkError(f"{name} loaded {len(wrong)} of {project.keys} keys wrongly, e.g. {wrong[:3]}")


#: Contenders left out above a size: they grow with the square of the keys (Dynaconf takes 13 s a call at
#: 10,000 keys, the others minutes at 100,000), and their ratio is settled well before.
LARGEST = {"dynaconf": 1_000, "python-dotenv": 10_000, "pydantic-settings": 10_000}
#: The reference of the in-process targets: python-dotenv's parse of the same files, without expansion.
FLOOR = "python-dotenv, interpolate=False"


#: The issue's "open and read at 10 keys" target, judged on both ways a process opens: again, and first.
OPEN_AND_READ = (
    ("envfence, load only", "open and read again (a long-running tool: every file read and compared, unchanged ones not parsed again)"),
    ("envfence, first open", "open and read, a process's first opening (every file parsed)"),
)


def _open_and_read(times, contenders, project: Project, name: str, what: str) -> Target:
    """``name`` within 2x of the floor at 10 keys, with the call's profile when it is not."""
    ratio = paired_ratio(times, name, FLOOR)
    target = Target(f"in process, 10 keys: {what} within 2x of `dotenv_values(interpolate=False)`",
                    ratio_text(ratio), ratio[0] <= 2.0)
    if target.met:
        return target
    contender = next(c for c in contenders if c.name == name)
    load, reset = contender.prepare(project), contender.reset or (lambda: None)

    def call():
        reset()
        return load()

    from envfence.opening import STEPS

    return attrs.evolve(target, why=call_profile(call, steps=STEPS))


def in_process_case(projects: dict[int, Project], plan: Plan) -> tuple[Table, list[Target]]:
    """Case 1: load the production configuration, inside one process."""
    rows: list[Row] = []
    targets: list[Target] = []
    counts = []
    per_key: dict[str, dict[int, float]] = {"envfence, load only": {}, "envfence": {}}
    for size, project in projects.items():
        contenders = [c for c in CONTENDERS if c.available and size <= LARGEST.get(c.name, size)]
        check_agreement(project, contenders)
        rounds, batch = plan.in_process_rounds(size)
        counts.append(f"{rounds} of {batch} call{'s' if batch > 1 else ''} at {size:,} keys")
        measures = {c.name: in_process(c.prepare(project), batch, c.reset, c.warm) for c in contenders}
        group = f"{size:,} keys"
        # No warm-up: check_agreement has just run every contender once.
        times = alternate(measures, rounds, warmup=False)
        rows += _rows(group, times, FLOOR, NOTES)
        rows += [Row(group, c.name, None, note="not installed") for c in CONTENDERS if not c.available]
        rows += [Row(group, c.name, None, note=f"left out above {LARGEST[c.name]:,} keys: quadratic")
                 for c in CONTENDERS if c.available and c not in contenders]
        for name, limit in (("envfence, load only", 1.2), ("envfence", 2.0)):
            ratio = paired_ratio(times, name, FLOOR)
            what = "load" if name == "envfence, load only" else "load with validation"
            targets.append(Target(f"in process, {group}: {what} within {limit}x of `dotenv_values(interpolate=False)`",
                                  ratio_text(ratio), ratio[0] <= limit))
            per_key[name][size] = median_ms(times[name]) / size
        if size == 10:
            targets += [_open_and_read(times, contenders, project, name, what) for name, what in OPEN_AND_READ]
        for other in ("dynaconf", "pydantic-settings"):
            if other in times:
                ratio = paired_ratio(times, "envfence", other)
                targets.append(Target(f"in process, {group}: envfence faster than {other}", ratio_text(ratio), ratio[0] < 1))
    large = [size for size in projects if size >= 1_000]
    if len(large) > 1:
        small, big = min(large), max(large)
        for name, what in (("envfence, load only", "load"), ("envfence", "load with validation")):
            growth = per_key[name][big] * big / (per_key[name][small] * small)
            limit = 1.2 * big / small
            targets.append(Target(f"in process, {what}: from {small:,} to {big:,} keys grows at most {limit:.0f}x",
                                  f"{growth:.1f}x (medians)", growth <= limit))
    table = Table(
        "In process: load the production configuration",
        "envfence `open_session(env=\"production\")` (detection, four file layers, process environment, "
        "provenance, secrets), with and without reading its validation report, and once more without it after "
        "forgetting the files it parsed before (its first opening in a process), against python-dotenv's "
        "`dotenv_values` of both files merged (without expansion, the reference, and with its default "
        "interpolation), Dynaconf over both files and a pydantic-settings model of every key; the plugin manager "
        "and the model class are built once, as a long-running tool would. Targets use the median of each "
        "round's ratio.",
        FLOOR,
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


def dotenv_printer(interpolate: bool, secrets: tuple[str, ...]) -> str:
    """A python-dotenv program printing what ``envfence config show`` prints: ``KEY=value``, sorted, secrets masked."""
    return (
        "import sys\n"
        "from dotenv import dotenv_values\n"
        f"merged = {{**dotenv_values('.env', interpolate={interpolate}), **dotenv_values('.env.production', interpolate={interpolate})}}\n"
        f"secret = {secrets!r}\n"
        "sys.stdout.write(''.join(f'{k}={\"********\" if k.endswith(secret) else v}\\n' for k, v in sorted(merged.items())))\n"
    )


def _output(argv: list[str], cwd: Path, environ: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return done.stdout


def cold_command_case(projects: dict[int, Project], plan: Plan) -> tuple[Table, list[Target]]:
    """Case 2: a fresh process that prints the merged production configuration, the same text on every side."""
    from .projects import _SECRET_ENDINGS

    rows: list[Row] = []
    counts = []
    environ = base_environ()
    for size, project in projects.items():
        cwd = project.root
        commands = {
            "envfence config show": [str(BIN / "envfence"), "config", "show"],
            "python-dotenv, interpolate=False": [PYTHON, "-c", dotenv_printer(False, _SECRET_ENDINGS)],
            "python-dotenv": [PYTHON, "-c", dotenv_printer(True, _SECRET_ENDINGS)],
            "python -c pass": [PYTHON, "-c", "pass"],
        }
        if size > 10_000:
            del commands["python-dotenv"]  # quadratic: minutes a run
        expected = _output(commands["envfence config show"], cwd, environ)
        for name, argv in commands.items():
            if name != "python -c pass" and _output(argv, cwd, environ) != expected:
                raise BenchmarkError(f"{name} printed another configuration than `envfence config show` at {size:,} keys")
        counts.append(f"{plan.cold_rounds(size)} at {size:,} keys")
        measures = {name: command(argv, cwd=cwd, env=environ) for name, argv in commands.items()}
        notes = {"python -c pass": "the interpreter's floor", "python-dotenv": "default interpolation (quadratic)"}
        times = alternate(measures, plan.cold_rounds(size), plan.warmup)
        rows += _rows(f"{size:,} keys", times, "python-dotenv, interpolate=False", notes)
    table = Table(
        "Cold command: print the production configuration",
        "A new process from start to exit, as cron runs it. Every side prints the same text (checked before "
        "timing): the two files merged, `KEY=value` sorted, secrets masked; python-dotenv by a three-line "
        "program over `dotenv_values`.",
        "python-dotenv, interpolate=False",
        ", ".join(counts),
        tuple(rows),
    )
    return table, []


def run_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """Case 2b: the fixed cost of a guarded run: ``envfence run`` of a no-op against the bare job.

    Production runs a function in a child process by default (``isolation = "process"``); the
    same no-op opted out (``in-process``) gives the guard's own cost, and the difference the
    isolation's.
    """
    root = job_project(workdir / "run-10", 10)
    with (root / "envfence.toml").open("a", encoding="utf-8") as settings:
        settings.write('\n[automations.noop-in-process]\nrun = "jobs:noop"\nisolation = "in-process"\n'
                       'isolation_reason = "measures the run without the child process"\n')
    environ = base_environ()
    measures = {
        "envfence run noop (child process)": command([str(BIN / "envfence"), "run", "noop"], cwd=root, env=environ),
        "envfence run noop (in-process)": command([str(BIN / "envfence"), "run", "noop-in-process"], cwd=root, env=environ),
        "bare job": command([PYTHON, "-c", "import jobs; jobs.noop(None)"], cwd=root, env=environ),
        "python -c pass": command([PYTHON, "-c", "pass"], cwd=root, env=environ),
    }
    times = alternate(measures, plan.rounds, plan.warmup)
    rows = _rows("", times, "bare job")
    added = [(a - b) * 1000 for a, b in zip(times["envfence run noop (in-process)"], times["bare job"])]
    middle, low, high = _quartiles(added)
    target = Target("`envfence run` of a no-op (in-process) within 100 ms of the bare job, 10 keys",
                    f"+{middle:.0f} ms (IQR {low:+.0f} to {high:+.0f} ms)", middle <= 100)
    if not target.met:
        target = attrs.evolve(target, why=import_profile([str(BIN / "envfence"), "run", "noop-in-process"], root, environ))
    isolation = [(a - b) * 1000 for a, b in zip(times["envfence run noop (child process)"], times["envfence run noop (in-process)"])]
    middle, low, high = _quartiles(isolation)
    cost = Target("`isolation = \"process\"` adds under 1 s to a run (a child Python process opening the session)",
                  f"+{middle:.0f} ms (IQR {low:+.0f} to {high:+.0f} ms)", middle <= 1000)
    table = Table(
        "Run: the fixed cost of a guarded run",
        "`envfence run noop` (detection, configuration, validation, safety checks, lock, history and audit "
        "records, the production log strategy) against `python -c \"import jobs; jobs.noop(None)\"`, at 10 keys; "
        "in production a function runs in a child process by default, and the same no-op opted out runs in-process.",
        "bare job", str(plan.rounds), tuple(rows),
    )
    return table, [target, cost]


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    import statistics

    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[0], q[2]


# --- 3. import ------------------------------------------------------------------------


def import_case(cwd: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """Case 3: the cost of importing each library in a fresh interpreter."""
    environ = base_environ()
    modules = {"envfence": "envfence", "python-dotenv": "dotenv", "dynaconf": "dynaconf", "pydantic-settings": "pydantic_settings"}
    available = {c.name for c in CONTENDERS if c.available}
    measures = {f"import {m}": command([PYTHON, "-c", f"import {m}"], cwd=cwd, env=environ) for n, m in modules.items() if n in available}
    # `import envfence` loads nothing on purpose; this is what a tool pays before it can open a session.
    ready = "from envfence.plugins import PluginManager; PluginManager.from_entry_points()"
    measures["import envfence, plugins loaded"] = command([PYTHON, "-c", ready], cwd=cwd, env=environ)
    measures["python -c pass"] = command([PYTHON, "-c", "pass"], cwd=cwd, env=environ)
    rows = _rows("", alternate(measures, plan.rounds, plan.warmup), "import dotenv")
    rows += [Row("", f"import {m}", None, note="not installed") for n, m in modules.items() if n not in available]
    table = Table(
        "Import",
        "`python -c \"import X\"` from start to exit; `import envfence` loads nothing until a session opens, so "
        "the row with its plugins loaded is what an embedding tool pays before its first session.",
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
    none, most = min(plan.plugin_counts), max(plan.plugin_counts)
    bare = f"envfence detect, {none} plugins"
    ratio = paired_ratio(times, bare, floor)
    targets = [Target(f"`envfence detect` cold within 1.3x of `{floor}`", ratio_text(ratio), ratio[0] <= 1.3)]
    if not targets[0].met:
        why = import_profile([str(BIN / "envfence"), "detect"], project.root,
                             {**base_environ(), "PYTHONPATH": str(workdir / f"site-{none}")})  # as the row was timed
        targets[0] = attrs.evolve(targets[0], why=why)
    if most != none:
        added = [(a - b) * 1000 for a, b in zip(times[f"envfence detect, {most} plugins"], times[bare])]
        middle, low, high = _quartiles(added)
        targets.append(Target(f"{most} installed plugins add at most 30 ms to `envfence detect`",
                              f"{middle:+.1f} ms (IQR {low:+.1f} to {high:+.1f} ms)", middle <= 30))
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


def _watching_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    from .watching import watching_case  # starts servers: imported only when this case runs

    return watching_case(workdir, plan)


def run_all(workdir: Path, plan: Plan) -> tuple[list[Table], list[Target]]:
    """Generate the projects under ``workdir`` and run every case."""
    from .limits_case import limits_case
    from .startup import startup_case
    from .store_case import store_case

    projects = {size: generate_project(workdir / f"project-{size}", size) for size in plan.sizes}
    tables: list[Table] = []
    targets: list[Target] = []
    environ = base_environ()
    cases: Iterable = (
        lambda: in_process_case(projects, plan),
        lambda: interpolated_case(workdir, plan),
        lambda: cold_command_case(projects, plan),
        lambda: run_case(workdir, plan),
        lambda: limits_case(workdir, plan),
        lambda: startup_case(workdir, plan, environ),
        lambda: import_case(workdir, plan),
        lambda: plugin_case(projects[min(plan.sizes)], workdir, plan),
        lambda: scaling.keys_case(workdir, plan, environ),
        lambda: scaling.environments_case(workdir, plan, environ),
        lambda: scaling.history_case(workdir, plan, environ),
        lambda: redaction.engine_case(plan),
        lambda: redaction.validation_case(projects, plan, environ, BIN),
        lambda: audit_case(workdir, plan.audit_sizes, plan.audit_rounds, peaks_apart=plan.warmup),
        lambda: _webhook_case(workdir, plan),
        lambda: _watching_case(workdir, plan),
        lambda: store_case(workdir, plan),
    )
    from .audit_case import audit_case

    for case in cases:
        started = time.monotonic()
        table, met = case()
        print(f"benchmarks: {table.title}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        tables.append(table)
        targets += met
    return tables, targets
