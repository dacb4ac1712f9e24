"""Case 2c: the cost of ``[resources]`` limits on a run, paired against the same run without them.

The job is a command automation (``python -c pass``) and a function run in a
child process (``isolation = "process"``), in production, in two projects
alike but for a ``[resources.production]`` table: with limits the job starts
under the ``/bin/sh`` wrapper that sets them and then becomes the job (``exec``). ``nice`` is
left out: on a busy machine it slows the job, which is what it is for.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from envfence.resources import Limits, wrapped

from .cases import BIN, PYTHON, Plan, Table, Target, _rows, base_environ
from .projects import job_project
from .timing import alternate, command, paired_ratio, ratio_text

#: Rounds at most: four runs of a second or so each per round, and the pairing steadies the ratio.
ROUNDS = 11
LIMITS = '\n[resources.production]\nmemory = "2GB"\ncpu_seconds = 600\nopen_files = 1024\n'


def _limits() -> Limits:
    return Limits(memory=2 << 30, cpu_seconds=600, open_files=1024)


def _project(directory: Path, limited: bool) -> Path:
    root = job_project(directory, 10)
    with (root / "envfence.toml").open("a", encoding="utf-8") as settings:
        settings.write(f"\n[automations.noop-cmd]\nrun = [{json.dumps(PYTHON)}, \"-c\", \"pass\"]\n" + (LIMITS if limited else ""))
    return root


def limits_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """``envfence run`` of a no-op command and a no-op child-process function, with and without limits."""
    plain, limited = _project(workdir / "run-plain", False), _project(workdir / "run-limits", True)
    environ = base_environ()
    run = str(BIN / "envfence")
    measures = {
        "command, no limits": command([run, "run", "noop-cmd"], cwd=plain, env=environ),
        "command, limits": command([run, "run", "noop-cmd"], cwd=limited, env=environ),
        "child function, no limits": command([run, "run", "noop"], cwd=plain, env=environ),
        "child function, limits": command([run, "run", "noop"], cwd=limited, env=environ),
        "python -c pass": command([PYTHON, "-c", "pass"], cwd=plain, env=environ),
        "python -c pass, under the limits' wrapper": command(wrapped([PYTHON, "-c", "pass"], _limits()), cwd=plain, env=environ),
    }
    rounds = min(plan.rounds, ROUNDS)
    times = alternate(measures, rounds, plan.warmup)
    rows = _rows("", times, "command, no limits")
    targets = []
    for job in ("command", "child function"):
        ratio = paired_ratio(times, f"{job}, limits", f"{job}, no limits")
        targets.append(Target(f"`[resources]` limits add under 5% to a {job} run (paired ratio with limits / without)",
                              ratio_text(ratio), ratio[0] <= 1.05))
    wrapper = [(a - b) * 1000 for a, b in zip(times["python -c pass, under the limits' wrapper"], times["python -c pass"])]
    middle = statistics.median(wrapper)
    targets.append(Target("the limits' wrapper (`/bin/sh`, `ulimit`, `exec`) adds under 10 ms to starting a job",
                          f"{middle:+.1f} ms (range {min(wrapper):+.1f} to {max(wrapper):+.1f} ms)", middle <= 10))
    table = Table(
        "Run: limits",
        "`envfence run` in production of a no-op command (`python -c pass`) and of a no-op function in a child process, "
        "in a project with `[resources.production]` (memory, cpu_seconds, open_files; not nice, which slows a job on a busy "
        "machine by design) and in the same project "
        "without; paired round by round; and `python -c pass` started bare and under the wrapper that sets the limits.",
        "command, no limits", str(rounds), tuple(rows),
    )
    return table, targets
