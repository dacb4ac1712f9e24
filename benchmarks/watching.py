"""What watching the configuration files costs an idle ``envfence serve``: CPU time, side by side.

Receivers of the same project run at once on 127.0.0.1, with the same
options (workers off, as in the throughput case), one watching its configuration
files (the default) and one started with ``--no-watch`` (three of each, as
the kernel counts CPU time in 10 ms ticks). Nothing is sent to
them. Over the same windows of wall time each process's CPU time (user and
system, all threads, from ``/proc/PID/stat``) is read; both idle through the
same windows, so a busy machine weighs on both alike. A row gives the median
CPU milliseconds per second of wall time, and the watching one's ratio is the
median of the windows' ratios.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from .timing import BenchmarkError


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (every thread), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError as exc:
        raise BenchmarkError(f"cannot read the CPU time of process {pid}: {exc}") from None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def measure(workdir: Path, windows: int, seconds: float, copies: int) -> dict[str, list[float]]:
    """CPU ms per wall second of one idle receiver of each kind, per window (the mean of ``copies`` processes).

    The kernel counts CPU time in clock ticks (10 ms): an idle process gains
    a tick every second or so, so each kind runs as ``copies`` processes and
    their ticks are added up.
    """
    from .webhooks import start_envfence, stop

    servers: dict[str, list] = {"watching": [], "not watching": []}
    try:
        for i in range(copies):
            servers["watching"].append(start_envfence(workdir / f"watching-{i}")[0])
            servers["not watching"].append(start_envfence(workdir / f"not-watching-{i}", extra=("--no-watch",))[0])
        results: dict[str, list[float]] = {name: [] for name in servers}
        time.sleep(min(2.0, seconds))  # start-up is over: imports, the first prune, the watcher's set-up
        for _ in range(windows):
            began = time.monotonic()
            before = {name: sum(cpu_seconds(p.pid) for p in procs) for name, procs in servers.items()}
            time.sleep(seconds)
            elapsed = time.monotonic() - began
            for name, procs in servers.items():
                spent = sum(cpu_seconds(p.pid) for p in procs) - before[name]
                results[name].append(spent * 1000 / elapsed / len(procs))
    finally:
        for procs in servers.values():
            for proc in procs:
                stop(proc)
    return results


def watching_case(workdir: Path, plan) -> tuple:
    """The case for the report: idle CPU of ``serve`` watching its files, against ``serve --no-watch``."""
    from .cases import Row, Table, Target

    smoke = not plan.warmup
    windows, seconds, copies = (1, 0.5, 1) if smoke else (5, 10.0, 3)
    results = measure(workdir, windows, seconds, copies)
    ours, floor = results["watching"], results["not watching"]
    # A window where the idle process used no tick at all has no ratio; those windows are left out of it.
    ratios = [w / n for w, n in zip(ours, floor) if n > 0]
    ratio = statistics.median(ratios) if ratios else None
    spread = lambda xs: f"range {min(xs):.2f}-{max(xs):.2f} ms"  # noqa: E731
    rows = (
        Row("idle CPU per second", "envfence serve --no-watch", statistics.median(floor), 1.0,
            "SIGHUP still reloads", spread(floor)),
        Row("idle CPU per second", "envfence serve (watching)", statistics.median(ours), ratio,
            f"ratio by window {min(ratios):.2f}-{max(ratios):.2f}" if ratios else "no CPU tick in any window",
            spread(ours)),
    )
    table = Table(
        "Watching the configuration",
        "CPU milliseconds per second of wall time of an idle envfence serve (workers off, nothing sent), watching its "
        "configuration files with watchfiles and with --no-watch, both idle through the same windows.",
        "envfence serve --no-watch",
        f"{windows} windows of {seconds:g} s, {copies} processes of each kind",
        rows,
    )
    extra = statistics.median(ours) - statistics.median(floor)
    targets = [Target("watching the configuration costs an idle receiver under 1% of a core",
                      f"{extra / 10:.2f}% of a core ({statistics.median(ours):.2f} against {statistics.median(floor):.2f} ms/s)",
                      extra < 10)]
    return table, targets


if __name__ == "__main__":  # python -m benchmarks.watching: this case alone
    import tempfile

    from .cases import Plan
    from .report import table as render_table
    from .report import targets as render_targets

    with tempfile.TemporaryDirectory(prefix="envfence-bench-") as tmp:
        t, met = watching_case(Path(tmp), Plan())
    print("\n".join(render_table(t) + render_targets(met)))
