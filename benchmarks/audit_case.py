"""The audit scaling case: `audit show`, `show --json`, `show --last 10` and `verify` as the trail grows.

Each command runs in a fresh process, timed from start to exit, with its peak
resident memory read from the kernel (``wait4``). The trail is generated
directly (records chained and hashed as envfence writes them), because a
million appends, each fsynced, would take hours.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import attrs

from .cases import BIN, Row, Table, Target, base_environ
from .timing import BenchmarkError, alternate, median_ms, peak_mib, spread

#: Trail lengths of the full run; the smoke run uses the smallest two.
SIZES = (1_000, 100_000, 1_000_000)
COMMANDS = {
    "audit verify": ("audit", "verify"),
    "audit show": ("audit", "show"),
    "audit show --json": ("audit", "show", "--json"),
    "audit show --last 10": ("audit", "show", "--last", "10"),
}
MEMORY_LIMIT_MIB = 50


def write_trail(root: Path, count: int) -> None:
    """A project whose development trail holds ``count`` chained records, with its head."""
    from envfence.audit_chain import FORMAT, genesis

    root.mkdir(parents=True)
    (root / "envfence.toml").write_text("")
    audit = root / "var" / "development" / "audit"
    audit.mkdir(parents=True, mode=0o700)
    trail = audit / "audit_development.jsonl"
    prev = genesis("development", trail.name)
    dumps, sha = json.dumps, hashlib.sha256
    with open(trail, "wb", buffering=1 << 20) as out:
        for seq in range(1, count + 1):
            record = {
                "at": "2026-01-01T00:00:00+00:00", "data": {"automation": "sync", "run_id": f"r{seq}", "status": "succeeded"},
                "environment": "development", "event": "run.finished", "host": "bench-box", "pid": 4242,
                "prev": prev, "seq": seq, "user": "bench", "v": FORMAT,
            }
            prev = sha(dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            record["hash"] = prev
            out.write(dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    os.chmod(trail, 0o600)
    head = {"v": FORMAT, "environment": "development", "file": trail.name, "seq": count, "hash": prev}
    (audit / "audit_development.head").write_text(json.dumps(head, sort_keys=True) + "\n")


def _environ() -> dict[str, str]:
    return {**base_environ(), "ENVIRONMENT": "development", "ENVFENCE_HOSTNAME": "bench-box"}


def run_once(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one command, which must exit 0."""
    environ = _environ()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    error = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.returncode != 0:
        raise BenchmarkError(f"`{' '.join(argv)}` exited {proc.returncode}: {error}")
    peak = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 1024 / 1024
    return elapsed, peak


def audit_case(workdir: Path, sizes: tuple[int, ...], rounds: int, peaks_apart: bool = True) -> tuple[Table, list[Target]]:
    """Time and peak memory of each audit command at each trail length.

    ``peaks_apart=False`` (the smoke run) reads the peaks from the timed runs
    themselves, which carry the benchmark's own high-water mark: a number that
    only shows the code path works.
    """
    rows: list[Row] = []
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    for size in sizes:
        root = workdir / f"audit-{size}"
        write_trail(root, size)
        peaks: dict[str, float] = {}

        def measure(name: str, args: tuple[str, ...]):
            def once() -> float:
                took, peaks[name] = run_once([str(BIN / "envfence"), *args], root)
                return took

            return once

        times = alternate({name: measure(name, args) for name, args in COMMANDS.items()}, rounds, warmup=False)
        for name, args in COMMANDS.items() if peaks_apart else ():
            # Through a small starter process: one spawned from the benchmark inherits its high-water mark.
            peaks[name] = peak_mib([str(BIN / "envfence"), *args], root, _environ())
        for name, samples in times.items():
            ms = median_ms(samples)
            medians[(name, size)] = (ms, peaks[name])
            rows.append(Row(f"{size:,} records", name, ms, spread=spread(samples), peak_mib=peaks[name]))
    smallest, largest = min(sizes), max(sizes)
    for row_index, row in enumerate(rows):
        base = medians[(row.contender, smallest)][0]
        rows[row_index] = attrs.evolve(row, ratio=row.median_ms / base)
    targets = []
    for name in ("audit verify", "audit show", "audit show --json"):
        peak = medians[(name, largest)][1]
        targets.append(Target(f"`envfence {name}` at {largest:,} records: peak memory at most {MEMORY_LIMIT_MIB} MiB", f"{peak:.1f} MiB", peak <= MEMORY_LIMIT_MIB))
    last = medians[("audit show --last 10", largest)][0] / medians[("audit show --last 10", smallest)][0]
    targets.append(Target(f"`envfence audit show --last 10`: time independent of the trail's length ({smallest:,} to {largest:,} records, within 1.2x)", f"{last:.2f}x", last <= 1.2))
    table = Table(
        "Audit trail scaling",
        "A fresh `envfence` process per call on a generated trail, with its peak resident memory.",
        f"the same command at {smallest:,} records",
        f"{rounds} at each length",
        tuple(rows),
    )
    return table, targets
