"""Live reload: configuration files changed under a running ``envfence serve`` / ``envfence worker``.

Each test starts the real process, sends real signed deliveries over HTTP on
127.0.0.1, and changes the files as people and tools do: an editor's save by
atomic rename, a Kubernetes ConfigMap's ``..data`` symlink swap, a symlink
re-pointed, a broken edit, SIGHUP.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_webhook_receiver import DEV_HCP, HOOKS, Receiver, cli, free_ports, hcp_headers, job, make_receiver_project, runs, wait_until

NEW_HCP = "rotatedcanary-3b8e1f6a9c2d4057e1b3a5c7d9f2e4a6"
NEWER_HCP = "rotatedagain-8c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f"
OVERLAP = 5


def project(tmp_path: Path, overlap: int = OVERLAP, extra_settings: str = "") -> tuple[Path, int]:
    """The receiver project of test_webhook_receiver, its /housecallpro secret overlapping ``overlap`` seconds."""
    [port] = free_ports(1)
    root = make_receiver_project(tmp_path / "proj", {"development": port})
    settings = root / "envfence.toml"
    settings.write_text(settings.read_text().replace("max_body = 4096", f"max_body = 4096\nsecret_overlap = {overlap}")
                        + extra_settings)
    (root / "hooks.py").write_text(HOOKS + "\n\ndef import_job_v2(ctx):\n    _line(ctx, {'v2': ctx.event.id})\n")
    return root, port


def save_atomically(path: Path, text: str) -> None:
    """What editors do: write a temporary file beside it, then rename it over the original."""
    temporary = path.with_name(path.name + ".swp~")
    temporary.write_text(text)
    os.replace(temporary, path)


def point_link_elsewhere(env_file: Path, directory: Path, text: str) -> Path:
    """Replace ``env_file`` at once with a symlink to ``directory``/dev.env holding ``text``; returns ``directory``."""
    directory.mkdir()
    (directory / "dev.env").write_text(text)
    os.symlink(directory / "dev.env", env_file.with_name("link.tmp"))
    os.replace(env_file.with_name("link.tmp"), env_file)
    return directory


def rotate(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def reloads(server: Receiver) -> int:
    return server.stderr().count("envfence: serve: configuration reloaded")


def refusals(server: Receiver) -> int:
    return server.stderr().count("envfence: serve: configuration change refused")


def status(server: Receiver, secret: str) -> int:
    body = job()
    return server.post("/housecallpro", body, hcp_headers(secret, body)).status_code


def trail(root: Path, event: str) -> list[dict]:
    return json.loads(cli(root, "--json", "audit", "show", "--event", event).stdout)


def everything_written(root: Path, server: Receiver) -> str:
    """The process's stderr, its log files and its audit trail, as text."""
    texts = [server.stderr()]
    for path in (root / "var" / "development").rglob("*"):
        if path.is_file() and path.suffix in (".log", ".jsonl", ".json"):
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def test_a_rotated_secret_is_swapped_in_and_the_old_one_accepted_only_during_its_overlap(tmp_path):
    root, port = project(tmp_path)
    server = Receiver(root, "development", port)
    try:
        assert status(server, DEV_HCP) == 202 and status(server, NEW_HCP) == 401
        env_file = root / ".env.development"
        save_atomically(env_file, rotate(env_file.read_text(), DEV_HCP, NEW_HCP))
        wait_until(lambda: reloads(server) == 1, what="the reload")
        assert status(server, NEW_HCP) == 202
        assert status(server, DEV_HCP) == 202  # the overlap: senders still signing with the old secret are not lost
        wait_until(lambda: status(server, DEV_HCP) == 401, timeout=OVERLAP + 15, what="the overlap's end")
        assert status(server, NEW_HCP) == 202
        # A second rotation: the newest secret works at once, the one it replaced overlaps, the first stays refused.
        save_atomically(env_file, rotate(env_file.read_text(), NEW_HCP, NEWER_HCP))
        wait_until(lambda: reloads(server) == 2, what="the second reload")
        assert (status(server, NEWER_HCP), status(server, NEW_HCP), status(server, DEV_HCP)) == (202, 202, 401)
    finally:
        assert server.stop() == 0
    [first, second] = trail(root, "config.reloaded")
    assert first["data"]["secrets_rotated"] == ["/housecallpro"] and first["data"]["overlap_seconds"] == {"/housecallpro": OVERLAP}
    assert first["data"]["trigger"] == "files changed" and first["data"]["files"] == [str(env_file)]
    written = everything_written(root, server)
    for canary in (DEV_HCP, NEW_HCP, NEWER_HCP):
        assert canary not in written


class AlertSink(http.server.BaseHTTPRequestHandler):
    """Stands in for Slack's incoming webhook: keeps what envfence-slack posts."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def alert_sink():
    pytest.importorskip("envfence_slack", reason="the alert goes out through envfence-slack: pip install -e contrib/envfence-slack")
    sink = http.server.HTTPServer(("127.0.0.1", 0), AlertSink)
    AlertSink.received = []
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sink.server_address[1]}/hook", AlertSink.received
    sink.shutdown()


def test_an_invalid_change_is_refused_alerted_and_audited_while_the_server_keeps_serving(tmp_path, alert_sink):
    url, alerts = alert_sink
    root, port = project(tmp_path, extra_settings='\n[alerts.escalation]\ndevelopment = ["console", "slack"]\n')
    env_file = root / ".env.development"
    env_file.write_text(env_file.read_text() + f"DEV_SLACK_WEBHOOK_URL={url}\n")
    settings = root / "envfence.toml"
    good = settings.read_text()
    server = Receiver(root, "development", port)
    try:
        # A broken edit (a route naming no automation) with a rotated secret: neither is taken.
        save_atomically(env_file, rotate(env_file.read_text(), DEV_HCP, NEW_HCP))
        save_atomically(settings, good.replace('automation = "import-job"\nevents', 'automation = "import-jobb"\nevents'))
        wait_until(lambda: refusals(server) >= 1, what="the refusal")
        assert "no automation named 'import-jobb'" in server.stderr()
        assert (status(server, DEV_HCP), status(server, NEW_HCP)) == (202, 401)
        assert server.proc.poll() is None
        # A file that is not TOML at all: refused the same way, still serving.
        settings.write_text(good + "\n[webhooks.routes.\"/broken\"\nprovider = \n")
        wait_until(lambda: refusals(server) >= 2, what="the second refusal")
        assert status(server, DEV_HCP) == 202
        # A port change cannot be taken by a running receiver: refused with the way to apply it.
        save_atomically(settings, good)
        text = env_file.read_text()
        save_atomically(env_file, text.replace(f"WEBHOOK_PORT={port}", f"WEBHOOK_PORT={port + 1}"))
        wait_until(lambda: refusals(server) >= 3, what="the port refusal")
        assert "WEBHOOK_PORT changed" in server.stderr() and "restart" in server.stderr()
        # Fixed: taken at once.
        save_atomically(env_file, text)
        wait_until(lambda: reloads(server) == 1, what="the reload of the fixed configuration")
        assert (status(server, DEV_HCP), status(server, NEW_HCP)) == (202, 202)
    finally:
        assert server.stop() == 0
    refused = trail(root, "config.reload_refused")
    assert len(refused) == 3 and "import-jobb" in refused[0]["data"]["reason"]
    wait_until(lambda: len(alerts) >= 3, what="the alerts")
    texts = [json.dumps(a) for a in alerts]
    assert any("refused a configuration change" in t and "import-jobb" in t for t in texts)
    assert "envfence: ALERT [critical] development" in server.stderr()
    assert not any(NEW_HCP in t or DEV_HCP in t for t in texts)
    assert NEW_HCP not in everything_written(root, server)


def test_sighup_reloads_a_server_that_does_not_watch(tmp_path):
    root, port = project(tmp_path)
    server = Receiver(root, "development", port, "--no-watch")
    try:
        env_file = root / ".env.development"
        save_atomically(env_file, rotate(env_file.read_text(), DEV_HCP, NEW_HCP))
        time.sleep(2.5)  # longer than the watcher's debounce: a watching server would have reloaded by now
        assert reloads(server) == 0 and status(server, NEW_HCP) == 401
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads(server) == 1, what="the reload on SIGHUP")
        assert "(SIGHUP;" in server.stderr()
        assert (status(server, NEW_HCP), status(server, DEV_HCP)) == (202, 202)
    finally:
        assert server.stop() == 0
    [reloaded] = trail(root, "config.reloaded")
    assert reloaded["data"]["trigger"] == "SIGHUP"


def test_symlink_swaps_of_the_env_file_are_seen(tmp_path):
    root, port = project(tmp_path)
    env_file = root / ".env.development"
    original = env_file.read_text()
    # Laid out as a Kubernetes ConfigMap volume: .env.development -> ..data/.env.development, ..data -> a dated directory.
    (root / "..2026_01").mkdir()
    (root / "..2026_01" / ".env.development").write_text(original)
    os.symlink("..2026_01", root / "..data")
    env_file.unlink()
    os.symlink("..data/.env.development", env_file)
    server = Receiver(root, "development", port)
    try:
        assert status(server, DEV_HCP) == 202
        (root / "..2026_02").mkdir()
        (root / "..2026_02" / ".env.development").write_text(rotate(original, DEV_HCP, NEW_HCP))
        os.symlink("..2026_02", root / "..data_tmp")
        os.replace(root / "..data_tmp", root / "..data")  # what the kubelet does when the ConfigMap changes
        wait_until(lambda: reloads(server) == 1, what="the reload after the ..data swap")
        assert status(server, NEW_HCP) == 202
        shutil.rmtree(root / "..2026_01")  # the kubelet removes the old data: the directory watched so far is gone
        # The link itself re-pointed at a file in another directory, which is then edited in place.
        elsewhere = point_link_elsewhere(env_file, tmp_path / "secrets", rotate(original, DEV_HCP, NEWER_HCP))
        wait_until(lambda: reloads(server) == 2, what="the reload after the link swap")
        assert status(server, NEWER_HCP) == 202
        (elsewhere / "dev.env").write_text(rotate(original, DEV_HCP, "editedinplace-" + NEW_HCP))
        wait_until(lambda: reloads(server) == 3, what="the reload after an edit where the link leads")
        assert status(server, "editedinplace-" + NEW_HCP) == 202
    finally:
        assert server.stop() == 0


def test_a_file_behind_a_repointed_link_is_watched_where_it_now_leads(tmp_path):
    root, port = project(tmp_path)
    env_file = root / ".env.development"
    original = env_file.read_text()
    server = Receiver(root, "development", port)
    try:
        elsewhere = point_link_elsewhere(env_file, tmp_path / "mounted", rotate(original, DEV_HCP, NEW_HCP))
        wait_until(lambda: reloads(server) == 1, what="the reload after the link swap")
        # Nothing changes in the project's directory from here on: only where the link leads.
        (elsewhere / "dev.env").write_text(rotate(original, DEV_HCP, NEWER_HCP))
        wait_until(lambda: reloads(server) == 2, what="the reload after an edit where the link now leads")
        assert status(server, NEWER_HCP) == 202
    finally:
        assert server.stop() == 0


def test_a_worker_takes_a_changed_automation_between_events_and_refuses_a_missing_one(tmp_path):
    root, port = project(tmp_path)
    server = Receiver(root, "development", port, "--workers", "0")
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_")) and k != "ENVIRONMENT"}
    log = root / "worker.err"
    with open(log, "wb") as err:
        worker = subprocess.Popen([sys.executable, "-m", "envfence", "--env", "development", "worker", "--retry-base", "0.1"],
                                  cwd=root, env={**variables, "ENVFENCE_HOSTNAME": "build-box-01"},
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        body = job()
        first = server.post("/housecallpro", body, hcp_headers(DEV_HCP, body)).json()["event_id"]
        wait_until(lambda: any(r.get("done") == first for r in runs(root, "development")), what="the first run")
        settings = root / "envfence.toml"
        good = settings.read_text()
        save_atomically(settings, good.replace('automation = "import-job"\nevents', 'automation = "import-jobb"\nevents'))
        wait_until(lambda: "envfence: worker: configuration change refused" in log.read_text(), what="the worker's refusal")
        save_atomically(settings, good.replace('import-job = "hooks:import_job"', 'import-job = "hooks:import_job_v2"'))
        wait_until(lambda: "envfence: worker: configuration reloaded" in log.read_text(), what="the worker's reload")
        body = job()
        second = server.post("/housecallpro", body, hcp_headers(DEV_HCP, body)).json()["event_id"]
        wait_until(lambda: any(r.get("v2") == second for r in runs(root, "development")), what="the run of the new automation")
        worker.send_signal(signal.SIGHUP)  # a reload with nothing changed keeps working
        wait_until(lambda: log.read_text().count("envfence: worker: configuration reloaded") == 2, what="the SIGHUP reload")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()
        server.stop()
