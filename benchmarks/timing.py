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


def spread(samples: Sequence[float]) -> str:
    """The samples' spread, for the report: the interquartile range and min to max, in ms."""
    if len(samples) < 2:
        return "one round"
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return f"IQR {_ms(q[0])}-{_ms(q[2])}, range {_ms(min(samples))}-{_ms(max(samples))}"


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.0f}"


def paired_ratio(times: Mapping[str, Sequence[float]], name: str, reference: str) -> tuple[float, float, float]:
    """``name`` over ``reference`` round by round: (median, first quartile, third quartile) of the ratios.

    :func:`alternate` runs both in every round, so a round's ratio compares
    runs made a moment apart; its median moves less with the machine's drift
    than the ratio of two medians, and its quartiles say how sure a verdict is.
    """
    ratios = [a / b for a, b in zip(times[name], times[reference])]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), q[0], q[2]


def ratio_text(ratio: tuple[float, float, float]) -> str:
    """A :func:`paired_ratio` as text: ``1.12x (IQR 1.05-1.20x)``."""
    middle, low, high = ratio
    return f"{middle:.2f}x (IQR {low:.2f}-{high:.2f}x)"


#: Starts the command from a small process and prints its peak memory: Linux carries the high-water mark
#: of the process that spawned a command over into the command's own, and this one's is the benchmark's.
_PEAK = """\
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_mib(argv: Sequence[str], cwd: str | os.PathLike, env: Mapping[str, str]) -> float:
    """The peak resident memory of one run of ``argv``, in MiB (its largest process on Linux)."""
    import sys

    done = subprocess.run([sys.executable, "-c", _PEAK, *argv], cwd=cwd, env=dict(env), capture_output=True, text=True)
    kilobytes, _ = done.stdout.split()
    return int(kilobytes) / 1024


def in_process(load: Callable[[], Any], batch: int, reset: Callable[[], None] | None = None, warm: bool = False) -> Measure:
    """A measure of ``load`` called ``batch`` times in this process, per call.

    The garbage collector is off while ``load`` runs (as ``timeit`` does) and
    ``reset`` runs untimed before the first call and after each call, so that
    every call starts from it whatever ran before the measure. With ``warm``,
    ``load`` runs once untimed first: a contender that keeps what it parsed is
    timed as it runs again, whatever another contender forgot before it.
    """

    def measure() -> float:
        total = 0.0
        if reset is not None:
            reset()
        if warm:
            load()
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


def command(*argvs: Sequence[str], cwd: str | os.PathLike, env: Mapping[str, str], ok: tuple[int, ...] = (0,)) -> Measure:
    """A measure of running the command lines one after the other, from start to exit.

    A command that exits with a code not in ``ok`` stops the benchmark with
    its error output: a failing command is fast, and timing it would flatter it.
    """

    def measure() -> float:
        started = time.perf_counter()
        for argv in argvs:
            done = subprocess.run(list(argv), cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if done.returncode not in ok:
                raise BenchmarkError(
                    f"`{' '.join(map(str, argv))}` exited {done.returncode}: {done.stderr.decode(errors='replace').strip()}"
                )
        return time.perf_counter() - started

    return measure
