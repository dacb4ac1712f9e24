"""The webhook receiver under load, against a bare waitress app that answers 200 (the floor).

Both servers run as their own processes on 127.0.0.1, each with its default
waitress threads (4 for the floor, 16 for ``envfence serve``, whose threads
mostly wait for the queue's sync); the same client drives both, alternating
rounds:

- **throughput**: 16 keep-alive connections post signed HousecallPro
  deliveries as fast as the answers come, for a fixed count; every answer
  must be 202 (envfence) or 200 (floor), or the benchmark stops.
- **latency at 100 req/s**: an open loop sends one delivery every 10 ms from
  a pool of connections for a few seconds; the p99 of the answer times.

envfence runs with durability on (each event synced to the SQLite queue
before the 202) and its workers off (``--workers 0``), so the receiver is
measured, not the automations; bodies are signed before the clock starts.
Where the machine has PostgreSQL's ``initdb`` and ``pg_ctl``, a third server
runs beside them: ``envfence serve`` with ``[store]``, its queue in a
throwaway PostgreSQL on loopback (each event committed there before the 202).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from .timing import BenchmarkError

PYTHON = sys.executable
THREADS = 4  # waitress's default, for the floor
RECEIVER_THREADS = 16  # envfence serve's default: its threads mostly wait for the queue's sync
CONNECTIONS = 16
SECRET = "bench-secret-4f1e9a7c3b5d8e2f6a0c4e8b2d6f0a3c"

FLOOR = """
import sys
from waitress import serve

def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    body = b'{"status": "ok"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]), _quiet=True)
"""

SETTINGS = """
[automations]
noop = "hooks:noop"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "noop"

# The benchmark's production server runs on a machine of any name: the stand-in enrolls it.
[hostname]
allow_stand_in = true

[hostname.production]
hosts = ["bench-host"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchmarkError(f"a benchmark server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(f"no server on port {port} after {timeout} s") from None
            time.sleep(0.05)


def _environ() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
    return {**base, "ENVFENCE_HOSTNAME": "bench-host"}


def start_floor() -> tuple[subprocess.Popen, int]:
    """The bare waitress app answering 200."""
    port = _free_port()
    proc = subprocess.Popen([PYTHON, "-c", FLOOR, str(port), str(THREADS)], env=_environ(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_listening(port, proc)
    return proc, port


def start_envfence(workdir: Path, store_url: str | None = None, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    """``envfence serve`` on a fresh project, workers off, with ``extra`` options; its queue in the store at ``store_url`` when given."""
    port = _free_port()
    root = workdir / f"webhooks-{port}"
    root.mkdir(parents=True)
    (root / "envfence.toml").write_text(SETTINGS + ('\n[store]\nfallback = "refuse"\n' if store_url else ""))
    (root / ".env.production").write_text(f"WEBHOOK_PORT={port}\nPROD_HOUSECALLPRO_WEBHOOK_SECRET={SECRET}\n"
                                          + (f"PROD_STORE_URL={store_url}\n" if store_url else ""))
    if store_url:
        done = subprocess.run([PYTHON, "-m", "envfence", "--env", "production", "store", "init"], cwd=root,
                              env=_environ(), capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchmarkError(f"envfence store init failed: {done.stderr}")
    (root / "hooks.py").write_text("def noop(ctx):\n    pass\n")
    proc = subprocess.Popen(
        [PYTHON, "-m", "envfence", "--env", "production", "serve", "--workers", "0", "--threads", str(RECEIVER_THREADS), *extra],
        cwd=root, env=_environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait_listening(port, proc)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, and wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def signed_requests(count: int, start: int = 0) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` distinct signed HousecallPro deliveries (distinct bodies, so none is a replay)."""
    from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

    stamp = str(int(time.time()))
    out = []
    for i in range(start, start + count):
        body = json.dumps({"event": "job.created", "job": {"id": f"job_{i}", "total": i}}).encode()
        out.append((body, {"Content-Type": "application/json", "api-timestamp": stamp,
                           "api-signature": sign_housecallpro(SECRET, body, stamp)}))
    return out


def _post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> int:
    conn.request("POST", "/housecallpro", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def throughput(port: int, deliveries: list[tuple[bytes, dict[str, str]]], ok: int) -> float:
    """Requests per second over ``CONNECTIONS`` keep-alive connections, each answer checked."""
    work: queue.SimpleQueue = queue.SimpleQueue()
    for item in deliveries:
        work.put(item)
    bad: list[int] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            try:
                body, headers = work.get_nowait()
            except queue.Empty:
                break
            status = _post(conn, body, headers)
            if status != ok:
                bad.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if bad:
        raise BenchmarkError(f"{len(bad)} answers were not {ok} (first {bad[0]})")
    return len(deliveries) / elapsed


def latencies_at_rate(port: int, deliveries: list[tuple[bytes, dict[str, str]]], ok: int, rate: float = 100.0) -> list[float]:
    """Answer times in ms of an open loop sending ``rate`` requests a second."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    times: list[float] = []
    bad: list[int] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            item = pending.get()
            if item is None:
                break
            due, body, headers = item
            status = _post(conn, body, headers)
            times.append((time.perf_counter() - due) * 1000)  # from when it was due: queueing counts
            if status != ok:
                bad.append(status)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    for i, (body, headers) in enumerate(deliveries):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pending.put((due, body, headers))
    for _ in threads:
        pending.put(None)
    for t in threads:
        t.join()
    if bad:
        raise BenchmarkError(f"{len(bad)} answers were not {ok} (first {bad[0]})")
    return times


def p99(values: list[float]) -> float:
    """The 99th percentile."""
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def measure(workdir: Path, rounds: int, requests_per_round: int, rate_seconds: float,
            store_url: str | None = None, warmup: int = 50) -> dict[str, dict[str, list[float]]]:
    """Alternating rounds of the servers: throughput per round and latencies at 100 req/s, after ``warmup`` requests each."""
    servers = [("floor", *start_floor(), 200), ("envfence", *start_envfence(workdir), 202)]
    if store_url:
        servers.append(("envfence-pg", *start_envfence(workdir, store_url), 202))
    results = {name: {"rps": [], "lat": []} for name, *_ in servers}
    sent = 0
    try:
        for name, _proc, port, ok in servers if warmup else ():
            throughput(port, signed_requests(warmup, sent), ok)  # warm-up: connections, imports, the queue
            sent += warmup
        for round_no in range(rounds):
            order = servers[round_no % len(servers):] + servers[:round_no % len(servers)]
            for name, _proc, port, ok in order:
                results[name]["rps"].append(throughput(port, signed_requests(requests_per_round, sent), ok))
                sent += requests_per_round
        for name, _proc, port, ok in servers:
            count = max(2, int(100 * rate_seconds))
            results[name]["lat"] = latencies_at_rate(port, signed_requests(count, sent), ok)
            sent += count
    finally:
        for _name, proc, _port, _ok in servers:
            stop(proc)
    return results


def _range(latencies: list[float]) -> str:
    return f"{min(latencies):.2f}-{max(latencies):.1f} ms"


def webhook_case(workdir: Path, plan) -> tuple:
    """The case for the report: throughput (as ms per request) and p99 at 100 req/s, with the targets."""
    from .cases import Row, Table, Target

    smoke = not plan.warmup
    # The smoke run only shows that every server answers every kind of request: 20 of each, no warm-up.
    rounds, per_round, seconds = (1, 20, 0.2) if smoke else (max(3, plan.rounds * 2 // 3), 500, 5.0)
    with _postgres() as store_url:
        results = measure(workdir, rounds, per_round, seconds, store_url, warmup=0 if smoke else 50)
    floor_rps = statistics.median(results["floor"]["rps"])
    ours_rps = statistics.median(results["envfence"]["rps"])
    # Each round measures both servers back to back: the ratio within a round is what a busy
    # machine's drift changes least, so the share is the median of the rounds' ratios.
    shares = [ours / floor for ours, floor in zip(results["envfence"]["rps"], results["floor"]["rps"])]
    share = statistics.median(shares)
    spread = lambda xs: f"range {min(xs):.0f}-{max(xs):.0f} req/s"  # noqa: E731
    rows = (
        Row("throughput", "bare waitress (floor)", 1000 / floor_rps, 1.0, f"{floor_rps:.0f} req/s",
            spread(results["floor"]["rps"])),
        Row("throughput", "envfence serve", 1000 / ours_rps, floor_rps / ours_rps,
            f"{ours_rps:.0f} req/s; {share:.0%} of the floor", f"{spread(results['envfence']['rps'])}; "
            f"share by round {min(shares):.0%}-{max(shares):.0%}"),
        Row("p99 at 100 req/s", "bare waitress (floor)", p99(results["floor"]["lat"]), 1.0,
            f"median {statistics.median(results['floor']['lat']):.2f} ms", f"range {_range(results['floor']['lat'])}"),
        Row("p99 at 100 req/s", "envfence serve", p99(results["envfence"]["lat"]),
            p99(results["envfence"]["lat"]) / p99(results["floor"]["lat"]),
            f"median {statistics.median(results['envfence']['lat']):.2f} ms", f"range {_range(results['envfence']['lat'])}"),
        *_store_rows(results, floor_rps),
    )
    table = Table(
        "Webhook receiver",
        f"Signed HousecallPro deliveries over {CONNECTIONS} keep-alive connections on 127.0.0.1; the floor with "
        f"waitress's default {THREADS} threads, envfence serve with its default {RECEIVER_THREADS}. envfence verifies and syncs each event to its SQLite queue before the 202 (workers off). "
        "Throughput rows show milliseconds per request (1000 / req/s).",
        "bare waitress (floor)",
        f"{rounds} of {per_round} requests; latency from {int(100 * seconds)} requests at 100 req/s",
        rows,
    )
    ours_p99 = p99(results["envfence"]["lat"])
    targets = [
        Target("webhook throughput at least 50% of a bare waitress app",
               f"{share:.0%} (median of rounds, {min(shares):.0%}-{max(shares):.0%}; {ours_rps:.0f} and {floor_rps:.0f} req/s)",
               share >= 0.5),
        Target("webhook p99 under 50 ms at 100 req/s", f"{ours_p99:.1f} ms", ours_p99 < 50),
    ]
    return table, targets


def _store_rows(results: dict, floor_rps: float) -> tuple:
    """The rows of ``envfence serve`` with its queue in PostgreSQL, or one row saying why it was skipped."""
    from .cases import Row

    if "envfence-pg" not in results:
        return (Row("throughput", "envfence serve, PostgreSQL queue", None, note=f"skipped: {_SKIPPED[0]}"),)
    pg, sqlite = results["envfence-pg"], results["envfence"]
    pg_rps, pg_p99 = statistics.median(pg["rps"]), p99(pg["lat"])
    return (
        Row("throughput", "envfence serve, PostgreSQL queue", 1000 / pg_rps, floor_rps / pg_rps,
            f"{pg_rps:.0f} req/s; {pg_rps / statistics.median(sqlite['rps']):.0%} of the SQLite queue",
            f"range {min(pg['rps']):.0f}-{max(pg['rps']):.0f} req/s"),
        Row("p99 at 100 req/s", "envfence serve, PostgreSQL queue", pg_p99, pg_p99 / p99(results["floor"]["lat"]),
            f"median {statistics.median(pg['lat']):.2f} ms", f"range {_range(pg['lat'])}"),
    )


#: Why the PostgreSQL rows were skipped, once known.
_SKIPPED = ["PostgreSQL's initdb and pg_ctl were not found"]


@contextlib.contextmanager
def _postgres():
    """A throwaway PostgreSQL's URL for the store's queue, or None (the reason kept in :data:`_SKIPPED`)."""
    from envfence_builtins.store.postgres_cluster import PostgresUnavailable, TemporaryPostgres

    try:
        import psycopg  # noqa: F401

        server = TemporaryPostgres()
    except (ImportError, PostgresUnavailable) as exc:
        _SKIPPED[0] = str(exc)
        yield None
        return
    with server:
        yield server.create_database("envfence_hooks", "envfence_hooks", "bench-password")


if __name__ == "__main__":  # python -m benchmarks.webhooks: this case alone
    import tempfile

    from .cases import Plan
    from .report import table as render_table
    from .report import targets as render_targets

    with tempfile.TemporaryDirectory(prefix="envfence-bench-") as tmp:
        t, met = webhook_case(Path(tmp), Plan())
    print("\n".join(render_table(t) + render_targets(met)))
