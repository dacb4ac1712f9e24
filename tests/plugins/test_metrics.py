"""`envfence metrics`: the run history in Prometheus' text format, for the textfile collector or a Pushgateway."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

JOBS = "def ok(ctx):\n    ctx.say('fine')\n\ndef bad(ctx):\n    raise RuntimeError('broken')\n"
SETTINGS = '[automations.ok]\nrun = "jobs:ok"\n\n[automations.bad]\nrun = "jobs:bad"\n'


@pytest.fixture
def project(make_project, run_cli):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS)
    for name in ("ok", "ok", "bad"):
        run_cli("run", name, cwd=root)
    return root


def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def value(family, name, **labels):
    return next(s.value for s in family.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_count_runs_failures_durations_and_last_success(project, run_cli):
    result = run_cli("metrics", cwd=project)
    assert result.exit_code == 0, result.output
    found = families(result.stdout)
    runs = found["envfence_runs"]
    assert value(runs, "envfence_runs_total", environment="development", automation="ok", status="succeeded") == 2
    assert value(runs, "envfence_runs_total", automation="bad", status="failed") == 1
    assert value(found["envfence_run_failures"], "envfence_run_failures_total", automation="bad") == 1
    assert value(found["envfence_run_failures"], "envfence_run_failures_total", automation="ok") == 0
    histogram = found["envfence_run_duration_seconds"]
    assert value(histogram, "envfence_run_duration_seconds_count", automation="ok") == 2
    assert value(histogram, "envfence_run_duration_seconds_bucket", automation="ok", le="+Inf") == 2
    assert value(found["envfence_last_success_timestamp_seconds"], "envfence_last_success_timestamp_seconds", automation="ok") > 1.7e9
    assert not [s for s in found["envfence_last_success_timestamp_seconds"].samples if s.labels["automation"] == "bad"]


def test_textfile_for_node_exporter_is_written_whole(project, run_cli, tmp_path):
    target = tmp_path / "collector" / "envfence_development.prom"
    target.parent.mkdir()
    result = run_cli("metrics", "--textfile", str(target), "--json", cwd=project)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["textfile"] == str(target)
    assert "envfence_runs_total" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left behind
    wrong = run_cli("metrics", "--textfile", str(tmp_path / "metrics.txt"), cwd=project)
    assert wrong.exit_code == 2 and ".prom" in wrong.output


def test_push_to_a_pushgateway_groups_by_environment(project, run_cli):
    received = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self):
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"])).decode()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = run_cli("metrics", "--push", url, cwd=project)
        assert result.exit_code == 0, result.output
        [(path, body)] = received
        assert path == "/metrics/job/envfence/environment/development"
        assert 'envfence_runs_total{automation="ok",environment="development",status="succeeded"} 2.0' in body
    finally:
        server.shutdown()
        server.server_close()
    down = run_cli("metrics", "--push", url, cwd=project)
    assert down.exit_code == 1 and f"cannot push to the Pushgateway at {url}" in down.stderr
