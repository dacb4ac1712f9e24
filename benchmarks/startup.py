"""Start-up: what a command costs before it does its work, against what a user would run instead.

One alternating run holds every contender, so each target compares runs made
a moment apart on the same machine: `envfence -q detect` against importing
envfence's own dependencies, `envfence -q run` of a command automation
running `true` and `envfence -q exec -- true` against python-dotenv's own CLI
doing the same (`dotenv run -- true`: load `.env`, run a command), and
against the bare `true`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import attrs

from .profiles import import_profile
from .projects import job_project
from .timing import alternate, command, paired_ratio, ratio_text

BIN = Path(sys.executable).parent
PYTHON = sys.executable
#: What ``envfence detect`` is held to: the libraries it cannot start without.
DEPENDENCY_FLOOR = "import click, pluggy, dotenv, attrs"


def _added_ms(times: dict[str, list[float]], name: str, reference: str) -> tuple[float, float, float]:
    """``name`` minus ``reference`` round by round, in ms: (median, first quartile, third quartile)."""
    import statistics

    added = [(a - b) * 1000 for a, b in zip(times[name], times[reference])]
    if len(added) < 2:
        return added[0], added[0], added[0]
    q = statistics.quantiles(added, n=4, method="inclusive")
    return statistics.median(added), q[0], q[2]


def startup_case(workdir: Path, plan, environ: dict[str, str]):
    """Cold `detect`, a no-op command run and `exec -- true`, each with the ratio the issue holds it to."""
    from .cases import Table, Target, _rows

    root = job_project(workdir / "startup-10", 10)
    with (root / "envfence.toml").open("a", encoding="utf-8") as settings:
        settings.write('\n[automations.noop-command]\nrun = ["true"]\n')
    envfence, true = str(BIN / "envfence"), shutil.which("true") or "/bin/true"
    floor, dotenv = f'python -c "{DEPENDENCY_FLOOR}"', "dotenv run -- true"
    measures = {
        "envfence -q detect": command([envfence, "-q", "detect"], cwd=root, env=environ),
        floor: command([PYTHON, "-c", DEPENDENCY_FLOOR], cwd=root, env=environ),
        "envfence -q run noop-command": command([envfence, "-q", "run", "noop-command"], cwd=root, env=environ),
        "envfence -q exec -- true": command([envfence, "-q", "exec", "--", "true"], cwd=root, env=environ),
        dotenv: command([str(BIN / "dotenv"), "run", "--", "true"], cwd=root, env=environ),
        "true": command([true], cwd=root, env=environ),
        "python -c pass": command([PYTHON, "-c", "pass"], cwd=root, env=environ),
    }
    times = alternate(measures, plan.rounds, plan.warmup)
    detect = paired_ratio(times, "envfence -q detect", floor)
    run = paired_ratio(times, "envfence -q run noop-command", dotenv)
    above = _added_ms(times, "envfence -q run noop-command", "true")
    exec_ = paired_ratio(times, "envfence -q exec -- true", dotenv)
    targets = [
        Target(f"cold `envfence -q detect` within 1.3x of `{floor}`", ratio_text(detect), detect[0] <= 1.3),
        Target(f"`envfence -q run` of a no-op command automation within 2x of `{dotenv}`", ratio_text(run), run[0] <= 2.0),
        Target("`envfence -q run` of a no-op command automation within 100 ms of the bare `true`",
               f"+{above[0]:.0f} ms (IQR {above[1]:+.0f} to {above[2]:+.0f} ms)", above[0] <= 100),
        Target(f"`envfence -q exec -- true` within 2x of `{dotenv}`", ratio_text(exec_), exec_[0] <= 2.0),
    ]
    commands = (["detect"], ["run", "noop-command"], ["run", "noop-command"], ["exec", "--", "true"])
    profiles: dict[tuple[str, ...], str] = {}  # each command profiled once, however many targets it missed
    for i, (target, argv) in enumerate(zip(targets, commands)):
        if not target.met:
            if tuple(argv) not in profiles:
                profiles[tuple(argv)] = import_profile([envfence, "-q", *argv], root, environ)
            targets[i] = attrs.evolve(target, why=profiles[tuple(argv)])
    table = Table(
        "Start-up: detect, a no-op run and exec against the alternatives",
        "Each command from process start to exit, on a 10-key project in production on an enrolled host: "
        f"`envfence -q detect` against `{floor}`; `envfence -q run` of a command automation running `true` and "
        f"`envfence -q exec -- true` against python-dotenv's own CLI (`{dotenv}`: loads `.env`, runs the command) "
        "and the bare `true`. Targets use the median of each round's ratio (or difference).",
        dotenv,
        str(plan.rounds),
        tuple(_rows("", times, dotenv)),
    )
    return table, targets
