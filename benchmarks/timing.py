"""Timing: contenders measured in alternation, summarised by their median.

Each round runs every contender once, and the order rotates from round to
round, so a slow spell of the machine (another process, a CPU frequency step)
falls on all contenders alike instead of on whichever ran during it.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import time
from typing import Any, Callable, Mapping, Sequence

Measure = Callable[[], float]  #: one measurement, in seconds


class BenchmarkError(RuntimeError):
    """A contender failed, or contenders disagree on what they loaded."""


def alternate(measures: Mapping[str, Measure], rounds: int, warmup: bool = True) -> dict[str, list[float]]:
    """Run each measure ``rounds`` times, rotating the order every round.

    With ``warmup`` each measure runs once, untimed, first (it fills the file
    cache and writes bytecode), so the first round is not a cold outlier.
    """
    names = list(measures)
    if warmup:
        for name in names:
            measures[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(measures[name]())
    return times


def median_ms(times: Sequence[float]) -> float:
    """The median of ``times`` (seconds) in milliseconds."""
    return statistics.median(times) * 1000


def in_process(load: Callable[[], Any], batch: int, reset: Callable[[], None] | None = None) -> Measure:
    """A measure of ``load`` called ``batch`` times in this process, per call.

    The garbage collector is off while ``load`` runs (as ``timeit`` does) and
    ``reset`` runs untimed after each call.
    """

    def measure() -> float:
        total = 0.0
        for _ in range(batch):
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                load()
                total += time.perf_counter() - started
            finally:
                gc.enable()
            if reset is not None:
                reset()
        return total / batch

    return measure


def command(*argvs: Sequence[str], cwd: str | os.PathLike, env: Mapping[str, str]) -> Measure:
    """A measure of running the command lines one after the other, from start to exit.

    A command that exits non-zero stops the benchmark with its error output:
    a failing command is fast, and timing it would flatter it.
    """

    def measure() -> float:
        started = time.perf_counter()
        for argv in argvs:
            done = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if done.returncode != 0:
                raise BenchmarkError(
                    f"`{' '.join(map(str, argv))}` exited {done.returncode}: {done.stderr.decode(errors='replace').strip()}"
                )
        return time.perf_counter() - started

    return measure
