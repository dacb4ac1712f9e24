"""Scaling: how the cost grows with the keys, the environments and the history, with peak memory.

Each case is a curve: the same commands at growing sizes, every size measured
in the same alternating rounds (so the ratio of two sizes is a round-by-round
ratio), the growth over the smallest size, and the peak resident memory of
one run of each command at each size.

- **Keys**: ``envfence check``, ``config show`` and ``--json config show``
  against python-dotenv's listing of the same two files (``dotenv_values``,
  ``interpolate=False``, printed as ``json.dumps(indent=2)`` as its CLI does).
- **Environments**: a project of N environments, each with its own
  ``.env.<name>`` (overrides, a prefixed credential, its own port) and one
  automation scheduled in every one: ``Session.validate()`` in process and
  ``envfence check`` cold.
- **History**: ``envfence status``, ``list``, ``health``, ``advise``, ``report`` and ``metrics`` with N recorded runs.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .projects import Project, generate_project, job_project
from .timing import BenchmarkError, alternate, command, median_ms, paired_ratio, peak_mib, ratio_text, spread

PYTHON = sys.executable
BIN = Path(PYTHON).parent

#: python-dotenv's listing of both files, as its CLI prints one (``dotenv list --format json``).
DOTENV_LISTING = (
    "import json, sys\n"
    "from dotenv import dotenv_values\n"
    "merged = {**dotenv_values('.env', interpolate=False), **dotenv_values('.env.production', interpolate=False)}\n"
    "sys.stdout.write(json.dumps(merged, indent=2, sort_keys=True) + '\\n')\n"
)


def _label(size: int, unit: str) -> str:
    return f"{size:,} {unit}"


def curve(title: str, unit: str, sizes: Sequence[int], medians: dict[int, float]) -> list[str]:
    """A text chart of ``medians`` (ms) over ``sizes``: one bar per size, with the time per unit."""
    top = max(medians.values()) or 1.0
    width = max(len(_label(s, unit)) for s in sizes)
    lines = [title]
    for size in sizes:
        value = medians[size]
        bar = "#" * max(1, round(40 * value / top))
        lines.append(f"{_label(size, unit):>{width}} | {bar} {value:.1f} ms ({1000 * value / size:.1f} us per {unit.rstrip('s')})")
    return lines


def _growth_rows(group_of: Callable[[int], str], sizes: Sequence[int], times: dict[str, list[float]],
                 names: Sequence[str], peaks: dict[str, float], notes: dict[str, str] | None = None):
    """Rows for every (size, name): the ratio is to the same name at the smallest size."""
    from .cases import Row

    rows = []
    for size in sizes:
        for name in names:
            key = f"{name} @ {size}"
            base = f"{name} @ {sizes[0]}"
            rows.append(Row(group_of(size), name, median_ms(times[key]), median_ms(times[key]) / median_ms(times[base]),
                            (notes or {}).get(name, ""), spread(times[key]), peaks.get(key)))
    return rows


def _linear_target(what: str, unit: str, sizes: Sequence[int], times: dict[str, list[float]], name: str,
                   slack: float = 1.2, per: float | None = None):
    """Growth from the smallest to the largest size within ``slack`` times the growth of the work."""
    from .cases import Target

    small, large = sizes[0], sizes[-1]
    work = per if per is not None else large / small
    ratio = paired_ratio(times, f"{name} @ {large}", f"{name} @ {small}")
    limit = slack * work
    return Target(f"{what}: from {small:,} to {large:,} {unit} grows at most {limit:.0f}x",
                  ratio_text(ratio), ratio[0] <= limit)


# --- keys ----------------------------------------------------------------------------


def keys_case(workdir: Path, plan, environ: dict[str, str]):
    """Cold commands at growing key counts, with peak memory, against python-dotenv's listing."""
    from .cases import Table, Target

    sizes = plan.key_sizes
    measures, peaks = {}, {}
    commands = {
        "envfence check": [str(BIN / "envfence"), "check"],
        "envfence config show": [str(BIN / "envfence"), "config", "show"],
        "envfence --json config show": [str(BIN / "envfence"), "--json", "config", "show"],
        "python-dotenv listing": [PYTHON, "-c", DOTENV_LISTING],
    }
    for size in sizes:
        project = generate_project(workdir / f"keys-{size}", size)
        for name, argv in commands.items():
            key = f"{name} @ {size}"
            ok = (0, 1) if name == "envfence check" else (0,)  # check exits 1 on findings; the projects have some
            measures[key] = command(argv, cwd=project.root, env=environ, ok=ok)
            if plan.warmup or size == sizes[-1]:  # the smoke run reads the peaks its target needs, at the largest size
                peaks[key] = peak_mib(argv, cwd=project.root, env=environ)
    rounds = plan.curve_rounds(max(sizes) >= 100_000)
    times = alternate(measures, rounds, plan.warmup)
    rows = _growth_rows(lambda s: _label(s, "keys"), sizes, times, list(commands), peaks,
                        {"python-dotenv listing": "both files, interpolate=False, json.dumps(indent=2)"})
    targets = [_linear_target(f"`{name}`", "keys", sizes, times, name) for name in list(commands)[:2]]
    largest = sizes[-1]
    memory = peaks[f"envfence --json config show @ {largest}"] / peaks[f"python-dotenv listing @ {largest}"]
    targets.append(Target(f"`config show --json` at {largest:,} keys: peak memory within 1.5x of python-dotenv's listing",
                          f"{memory:.2f}x ({peaks[f'envfence --json config show @ {largest}']:.0f} and "
                          f"{peaks[f'python-dotenv listing @ {largest}']:.0f} MiB)", memory <= 1.5))
    chart = curve("envfence check, median per size", "keys", sizes,
                  {s: median_ms(times[f"envfence check @ {s}"]) for s in sizes})
    table = Table(
        "Scaling with keys: cold commands and peak memory",
        "Each command in a new process at each size, every size in the same rounds; the ratio is to the same "
        "command at the smallest size, the peak memory that of one run.",
        f"the same at {sizes[0]:,} keys", f"{rounds}", tuple(rows), tuple(chart),
    )
    return table, targets


# --- environments --------------------------------------------------------------------


def generate_environments(directory: Path, environments: int, keys: int) -> Project:
    """A project of ``keys`` keys and ``environments`` environments (production and development among them).

    Each environment has a ``.env.<name>`` overriding a tenth of the keys,
    with its own prefixed credential and its own port, and one automation is
    scheduled at the same time in every environment, all on one machine.
    """
    project = generate_project(directory, keys)
    names = ["development", "production"] + [f"env{i:02d}" for i in range(environments - 2)]
    settings = ['[automations.sync]', 'run = "jobs:sync"', 'schedule = "0 2 * * *"', ""]
    for index, name in enumerate(names):
        prefix = {"development": "DEV", "production": "PROD"}.get(name, name.upper())
        # All on one machine ("box" in every name pattern), so their schedules compete and are compared.
        settings += [f"[environments.{name}]", f'prefix = "{prefix}"', f'hostname_patterns = ["{name}", "box"]']
        settings += [] if name in ("development", "production") else ['based_on = "development"']
        settings.append("")
        if name == "production":
            continue  # .env.production is the generated project's
        lines = [f"SETTING_{i:05d}={name}-{i}" for i in range(0, keys, 10)]
        lines += [f"{prefix}_API_TOKEN=token-{name}-4f1e9a7c3b5d8e2f{index:04d}", f"WEBHOOK_PORT={8000 + index}"]
        (directory / f".env.{name}").write_text("\n".join(lines) + "\n")
    with (directory / ".env.production").open("a") as production:
        production.write("PROD_API_TOKEN=token-production-9a7c3b5d8e2f6a0c\nWEBHOOK_PORT=7999\n")
    (directory / "envfence.toml").write_text("\n".join(settings))
    (directory / "jobs.py").write_text("def sync(ctx):\n    pass\n")
    return project


def environments_case(workdir: Path, plan, environ: dict[str, str]):
    """``Session.validate()`` and ``envfence check`` at growing environment counts."""
    import envfence
    from envfence.plugins import PluginManager

    from .cases import Table

    counts, keys = plan.environment_counts, plan.environment_keys
    plugins = PluginManager.from_entry_points()
    measures, peaks = {}, {}
    for count in counts:
        project = generate_environments(workdir / f"environments-{count}", count, keys)

        def validate(project=project) -> float:
            session = envfence.open_session(root=project.root, env="production", environ=environ, plugins=plugins)
            started = time.perf_counter()  # only the validation is timed
            session.validate()
            return time.perf_counter() - started

        measures[f"Session.validate() @ {count}"] = validate
        argv = [str(BIN / "envfence"), "check"]
        measures[f"envfence check @ {count}"] = command(argv, cwd=project.root, env=environ, ok=(0, 1))
        if plan.warmup or count == counts[-1]:  # the smoke run: one peak shows the path works
            peaks[f"envfence check @ {count}"] = peak_mib(argv, cwd=project.root, env=environ)
    rounds = plan.curve_rounds(keys >= 10_000)
    times = alternate(measures, rounds, plan.warmup)
    names = ["Session.validate()", "envfence check"]
    rows = _growth_rows(lambda c: _label(c, "environments"), counts, times, names, peaks)
    work = counts[-1] / counts[0]
    targets = [_linear_target(f"`{name}` at {keys:,} keys", "environments", counts, times, name, slack=1.0, per=work)
               for name in names]
    chart = curve(f"Session.validate() at {keys:,} keys, median per count", "environments", counts,
                  {c: median_ms(times[f"Session.validate() @ {c}"]) for c in counts})
    table = Table(
        f"Scaling with environments: validation and check at {keys:,} keys",
        "Every environment has its own file of overrides, a prefixed credential and a port, and one automation "
        "fires at the same minute in all of them (credential isolation, port and schedule collisions are "
        "cross-environment checks). The ratio is to the same measure at the fewest environments.",
        f"the same at {counts[0]} environments", f"{rounds}", tuple(rows), tuple(chart),
    )
    return table, targets


# --- history -------------------------------------------------------------------------

_AUTOMATIONS = ("noop", "sync", "report", "backup", "import-jobs")


def history_project(directory: Path, rows: int, environ: dict[str, str], template: Path | None = None) -> Path:
    """A 10-key project with five automations and ``rows`` recorded runs in production.

    The first is made by a real ``envfence run noop`` (the history's schema is
    envfence's own); ``template``, such a project before it was filled, is
    copied instead of running envfence again for each size.
    """
    import shutil

    if template is not None:
        shutil.copytree(template, directory, symlinks=True)  # holds its one run, as a new project would
    else:
        job_project(directory, 10, _AUTOMATIONS)
        done = subprocess.run([str(BIN / "envfence"), "run", "noop"], cwd=directory, env=environ, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchmarkError(f"`envfence run noop` exited {done.returncode}: {done.stderr.strip()[-400:]}")
    found = list(directory.rglob("history.sqlite3"))
    if len(found) != 1:
        raise BenchmarkError(f"expected one history file after a run, found {found}")
    fill_history(found[0], rows - 1)
    return directory


def fill_history(path: Path, count: int) -> None:
    """Add ``count`` finished runs, a minute apart, to the history at ``path``, the newest a minute ago.

    They end now, so that the analyses' window (the last 30 days) holds the
    same 43,200 runs whenever the benchmark runs.
    """
    minute = _dt.timedelta(minutes=1)
    start = _dt.datetime.now(_dt.timezone.utc).replace(second=0, microsecond=0) - (count + 1) * minute

    def rows():
        for i in range(count):
            began = start + i * minute
            failed = i % 17 == 0
            yield (f"run-{i:08d}", _AUTOMATIONS[i % len(_AUTOMATIONS)], "production", "bench-host", began.isoformat(),
                   (began + _dt.timedelta(seconds=2)).isoformat(), "failed" if failed else "succeeded", int(failed),
                   2.0, 0.5, 40_000, 0, 12345)

    db = sqlite3.connect(path)
    try:
        with db:
            db.executemany(
                "INSERT INTO runs (run_id, automation, environment, host, started_at, finished_at, status, exit_code,"
                " duration, cpu_seconds, peak_memory_kb, forced, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
        db.execute("ANALYZE")
    finally:
        db.close()


#: Bounds, in milliseconds, of the commands that analyse or sum the history, at the largest history size.
HISTORY_BOUNDS = {"envfence health": 3000, "envfence advise": 3000, "envfence report": 6000, "envfence metrics": 6000}
#: The most memory, in MiB, ``metrics`` may take at the largest size: it sums in SQL, it never holds the runs.
METRICS_PEAK_MIB = 100
#: The largest history size from which the bounds are judged (the smoke run's small histories say nothing of them).
ANALYSED_FROM = 100_000


def history_case(workdir: Path, plan, environ: dict[str, str]):
    """``status``, ``list``, ``health``, ``advise``, ``report --json`` and ``metrics`` at growing history sizes.

    Every size runs every command, so the smoke run takes the analyses' code
    paths too; their bounds are judged only from :data:`ANALYSED_FROM` runs on,
    and peak memory only when the plan measures it (not in the smoke run).
    """
    from .cases import Table, Target

    sizes = plan.history_rows
    measures, peaks = {}, {}
    commands = {"envfence status": ["status"], "envfence list": ["list"], "envfence health": ["health"],
                "envfence advise": ["advise"], "envfence report": ["--json", "report", "--since", "30d"],
                "envfence metrics": ["metrics"]}
    analysed = sizes[-1] >= ANALYSED_FROM
    template = history_project(workdir / "history-template", 1, environ)
    for size in sizes:
        root = history_project(workdir / f"history-{size}", size, environ, template)
        for name, args in commands.items():
            argv = [str(BIN / "envfence"), *args]
            # health is a monitoring plugin: WARNING (1) and CRITICAL (2) are answers; UNKNOWN (3) is not.
            ok = (0, 1, 2) if name == "envfence health" else (0,)
            measures[f"{name} @ {size}"] = command(argv, cwd=root, env=environ, ok=ok)
            if plan.history_peaks:
                peaks[f"{name} @ {size}"] = peak_mib(argv, cwd=root, env=environ)
    # Half the cold rounds, as the other curves: 18 commands a round, the analyses taking up to seconds each.
    rounds = plan.curve_rounds(sizes[-1] >= 1_000_000)
    times = alternate(measures, rounds, plan.warmup)
    rows = _growth_rows(lambda s: _label(s, "runs"), sizes, times, list(commands), peaks)
    targets = []
    for name in ("envfence status", "envfence list"):
        ratio = paired_ratio(times, f"{name} @ {sizes[-1]}", f"{name} @ {sizes[0]}")
        targets.append(Target(f"`{name.removeprefix('envfence ')}` with {sizes[-1]:,} recorded runs within 1.2x of {sizes[0]:,}",
                              ratio_text(ratio), ratio[0] <= 1.2))
    # The analyses sum their window in SQL and read a bounded sample of runs; metrics sums the whole history in SQL.
    for name, bound in HISTORY_BOUNDS.items() if analysed else ():
        took = median_ms(times[f"{name} @ {sizes[-1]}"])
        targets.append(Target(f"`{name.removeprefix('envfence ')}` with {sizes[-1]:,} recorded runs under {bound / 1000:g} s",
                              f"{took:,.0f} ms", took <= bound))
    if analysed and plan.history_peaks:
        peak = peaks[f"envfence metrics @ {sizes[-1]}"]
        targets.append(Target(f"`metrics` with {sizes[-1]:,} recorded runs: peak memory under {METRICS_PEAK_MIB} MiB",
                              f"{peak:.0f} MiB", peak <= METRICS_PEAK_MIB))
    chart = curve("envfence status, median per history size", "runs", sizes,
                  {s: median_ms(times[f"envfence status @ {s}"]) for s in sizes})
    table = Table(
        "Scaling with history: status, list, the analyses and metrics",
        "The production history holds N finished runs of five automations, a minute apart, the newest a minute ago "
        "(the last 30 days hold 43,200 of them); each command in a new process. The ratio is to the same command "
        "with the smallest history.",
        f"the same with {sizes[0]:,} runs", f"{rounds}", tuple(rows), tuple(chart),
    )
    return table, targets
