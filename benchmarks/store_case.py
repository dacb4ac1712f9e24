"""Runs recorded through the shared PostgreSQL store against the local SQLite history.

Two copies of one project, one with ``[store]`` and one without, run the same
empty automation through :class:`envfence.runner.Runner`, in 1 and in 8
writer processes at once, in alternating rounds. A run's cost through the
store is everything a run does there: the advisory lock on its own
connection, the run's row and its audit events in the hash chain. The local
SQLite history and file trail are written in both copies, so the difference
is what the store adds.

The server is a throwaway cluster from the machine's own ``initdb`` and
``pg_ctl`` (see ``envfence_builtins.store.postgres_cluster``), on loopback. Without
them the case is reported as skipped.
"""

from __future__ import annotations

import multiprocessing
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .cases import Plan, Row, Table, Target
from .timing import BenchmarkError, alternate

WRITERS = (1, 8)
#: The issue's goal: what the store may add to one run on loopback.
TARGET_EXTRA_MS = 20.0

_JOBS = "def noop(ctx):\n    return 0\n"


def _settings(url: str | None) -> str:
    store = f'[store]\nurl = "{url}"\n\n' if url else ""
    return store + "".join(f'[automations.job{i}]\nrun = "jobs:noop"\n\n' for i in range(max(WRITERS)))


def _make_project(directory: Path, url: str | None) -> Path:
    directory.mkdir(parents=True)
    (directory / "envfence.toml").write_text(_settings(url))
    (directory / "jobs.py").write_text(_JOBS)
    return directory


def _writer(root: str, automation: str, runs: int, start, results) -> None:
    """One writer process: open a session, wait for the start, run ``runs`` times."""
    import os

    os.environ["ENVFENCE_HOSTNAME"] = "bench-dev-01"
    import envfence
    from envfence.models import RunRequest
    from envfence.runner import Runner, find_automation

    session = envfence.open_session(root=root)
    request = RunRequest(automation=find_automation(session, automation))
    runner = Runner(session, echo=lambda _line: None)
    runner.run(request)  # warm: imports, the tree, the pooled connection
    start.wait()
    failed = sum(runner.run(request).exit_code != 0 for _ in range(runs))
    results.put(failed)


def _measure(root: Path, writers: int, runs: int):
    """A measure of ``writers`` processes each recording ``runs`` runs: seconds per run, over all writers."""
    context = multiprocessing.get_context("fork")

    def measure() -> float:
        start, results = context.Event(), context.Queue()
        procs = [
            context.Process(target=_writer, args=(str(root), f"job{i}", runs, start, results)) for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(0.5)  # every writer has opened its session and run once
        began = time.perf_counter()
        start.set()
        failed = sum(results.get(timeout=300) for _ in procs)
        took = time.perf_counter() - began
        for proc in procs:
            proc.join(timeout=60)
        if failed:
            raise BenchmarkError(f"{failed} run(s) failed in {root}")
        return took / (writers * runs)

    return measure


def store_case(workdir: Path, plan: Plan) -> tuple[Table, list[Target]]:
    """The store against SQLite, with 1 and 8 writers: time per recorded run, runs per second, ratios."""
    title = "Shared store: runs recorded through PostgreSQL against SQLite"
    # The smoke run only shows that concurrent writers work: two of them stand for eight.
    writer_counts = WRITERS if plan.warmup else (1, 2)
    what = (
        f"An empty automation run through `Runner.run` by {' and by '.join(map(str, writer_counts))} writer processes at once, each on its own "
        "automation; time per recorded run over all writers (lower is better), runs per second in the note. "
        "PostgreSQL on loopback, started for the benchmark."
    )
    from envfence_builtins.store.postgres_cluster import PostgresUnavailable, TemporaryPostgres

    try:
        import psycopg  # noqa: F401

        server = TemporaryPostgres()
    except (ImportError, PostgresUnavailable) as exc:
        rows = tuple(Row(f"{w} writer(s)", name, None, note=f"skipped: {exc}") for w in writer_counts for name in ("SQLite", "PostgreSQL"))
        return Table(title, what, "SQLite", "skipped", rows), []
    runs = 1 if not plan.warmup else 40
    rounds = max(1, plan.rounds // 5) if plan.warmup else 1
    with server:
        url = server.create_database("envfence_bench", "envfence_bench", "bench-password")
        local = _make_project(workdir / "store-sqlite", None)
        shared = _make_project(workdir / "store-postgres", url)
        done = subprocess.run([sys.executable, "-m", "envfence", "store", "init"], cwd=shared, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchmarkError(f"envfence store init failed: {done.stderr}")
        rows: list[Row] = []
        targets: list[Target] = []
        for writers in writer_counts:
            times = alternate(
                {"SQLite": _measure(local, writers, runs), "PostgreSQL": _measure(shared, writers, runs)},
                rounds,
                warmup=False,
            )
            reference = statistics.median(times["SQLite"])
            for name, samples in times.items():
                per_run = statistics.median(samples)
                spread = f"{min(samples) * 1000:.1f}-{max(samples) * 1000:.1f} ms" if len(samples) > 1 else "one round"
                rows.append(Row(f"{writers} writer(s)", name, per_run * 1000, per_run / reference,
                                f"{1 / per_run:.0f} runs/s; spread {spread}"))
            if writers == 1:
                extra = (statistics.median(times["PostgreSQL"]) - reference) * 1000
                targets.append(Target(f"the store adds under {TARGET_EXTRA_MS:.0f} ms per run (1 writer, loopback)",
                                      f"{extra:+.1f} ms", extra < TARGET_EXTRA_MS))
    return Table(title, what, "SQLite", f"{rounds} of {runs} runs per writer", tuple(rows)), targets
