"""The webhook receiver's commands without a server: ``queue``, ``worker --once``, the start-up refusals, ``--emit``."""

from __future__ import annotations

import json
import os

import pytest

SETTINGS = """
[automations]
import-job = "hooks:import_job"

[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
max_attempts = 2
"""

HOOKS = """
import json
def import_job(ctx):
    if (ctx.paths.base / "fail").exists():
        raise RuntimeError("asked to fail")
    with open(ctx.paths.base / "runs.jsonl", "a") as f:
        f.write(json.dumps({"id": ctx.event.id, "attempt": ctx.event.attempt, "payload": ctx.event.payload}) + "\\n")
"""

CANARY = "canary-webhook-9d1f4b7e2a6c8305f1e9d7b3a5c2e4f6"


@pytest.fixture
def project(make_project):
    return make_project(
        {"hooks.py": HOOKS, ".env.development": f"WEBHOOK_PORT=18001\nDEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY}\n",
         ".env.production": "WEBHOOK_PORT=18002\nPROD_HOUSECALLPRO_WEBHOOK_SECRET=prod-secret-0a1b2c3d4e5f6a7b8c9d0e1f\n"},
        settings=SETTINGS,
    )


def enqueue(root, event_id: str, payload: dict, env: str = "development") -> None:
    """Put an accepted event in the environment's queue, as the receiver does after verifying it."""
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    session = open_session(root=root, env=env)
    session.prepare()
    queue = WebhookQueue(session.paths)
    assert queue.accept(route="/housecallpro", event_id=event_id, provider="housecallpro", event_type="job.created",
                        automation="import-job", body=json.dumps(payload).encode(), headers={"api-timestamp": "1"},
                        max_attempts=2)
    queue.close()


# The worker's runs and `queue list|show|retry|drop` are tested on both queues in tests/store/test_queue_backends.py.


def test_queue_list_on_an_environment_without_a_queue_says_so(project, run_cli):
    result = run_cli("queue", "list", cwd=project)
    assert result.exit_code == 0 and "no webhook events in development's queue" in result.stdout
    assert not (project / "var").exists()  # reading writes nothing


def test_the_queue_is_never_written_through_a_symlink(project, run_cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / "var/development").mkdir(parents=True)
    os.symlink(elsewhere, project / "var/development/queue")
    result = run_cli("worker", "--once", cwd=project)
    assert result.exit_code == 3 and "symlink" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_where_the_queue_file_belongs_is_refused(project, run_cli, tmp_path):
    target = tmp_path / "elsewhere.sqlite3"
    target.write_bytes(b"")
    (project / "var/development/queue").mkdir(parents=True)
    os.symlink(target, project / "var/development/queue/webhooks.sqlite3")
    result = run_cli("worker", "--once", cwd=project)
    assert result.exit_code == 3 and "symlink" in result.stderr
    assert target.read_bytes() == b""


def test_a_provider_plugin_that_raises_stops_the_receiver_with_its_name(project, run_cli, envfence_plugin):
    from envfence import hookimpl

    class Broken:
        @hookimpl
        def register_webhook_providers(self, register):
            raise RuntimeError("no provider today")

    envfence_plugin(Broken(), "broken-provider")
    result = run_cli("worker", "--once", cwd=project)
    assert result.exit_code == 4
    assert "broken-provider" in result.stderr and "-p no:broken-provider" in result.stderr


def test_serve_says_which_port_is_taken_when_another_process_holds_it(project, run_cli):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (project / ".env.development").write_text(f"WEBHOOK_PORT={port}\nDEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY}\n")
        result = run_cli("serve", cwd=project)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "internal error" not in result.stderr


def test_serve_refuses_a_port_another_environment_declares(project, run_cli):
    (project / ".env.production").write_text("WEBHOOK_PORT=18001\nPROD_HOUSECALLPRO_WEBHOOK_SECRET=prod-secret-0a1b2c3d4e5f6a7b8c9d0e1f\n")
    result = run_cli("serve", cwd=project)
    assert result.exit_code == 3
    assert "port 18001" in result.stderr and "production" in result.stderr


def test_serve_refuses_where_the_hostname_guard_refuses_a_run_and_the_refusal_is_audited(project, run_cli):
    assert run_cli("init", cwd=project).exit_code == 0  # the trail exists
    host = {"ENVFENCE_HOSTNAME": "web-prod-01"}
    result = run_cli("--env", "development", "serve", cwd=project, env=host)
    assert result.exit_code == 3
    assert "whose name says production" in result.stderr and "--force" in result.stderr
    assert CANARY not in result.output
    trail = json.loads(run_cli("--json", "audit", "show", "--event", "run.blocked", cwd=project).stdout)
    assert trail[-1]["data"]["automation"] == "webhook-receiver" and trail[-1]["data"]["codes"] == ["HOSTNAME_MISMATCH"]
    # The same override as a run: forced, on the record (a worker with nothing to do stops at once).
    forced = run_cli("--env", "development", "worker", "--once", "--force", cwd=project, env=host)
    assert forced.exit_code == 0 and "forced past HOSTNAME_MISMATCH" in forced.stderr
    trail = json.loads(run_cli("--json", "audit", "show", "--event", "run.forced", cwd=project).stdout)
    assert trail[-1]["data"]["command"] == "worker" and trail[-1]["data"]["overridden"] == ["HOSTNAME_MISMATCH"]


def test_serve_needs_a_reason_to_be_forced_in_production(project, run_cli):
    result = run_cli("--env", "production", "serve", "--force", cwd=project, env={"ENVFENCE_HOSTNAME": "web-dev-01"})
    assert result.exit_code == 3 and "--reason" in result.stderr


def test_a_route_naming_an_unknown_provider_is_a_check_finding(make_project, run_cli):
    root = make_project(settings='[webhooks.routes."/x"]\nprovider = "stripe"\nautomation = "a"\n')
    result = run_cli("--json", "check", cwd=root)
    codes = {(f["code"], f["message"]) for f in json.loads(result.stdout)["findings"]}
    assert any(code == "WEBHOOK_ROUTE_INVALID" and "stripe" in message for code, message in codes)
    bad = make_project(settings='[webhooks.routes."x"]\nprovider = "github"\n', name="bad")
    found = json.loads(run_cli("--json", "check", cwd=bad).stdout)["findings"]
    # The [webhooks.routes] declaration names the route that is no URL path, once, with the file and key.
    [bad_route] = [f for f in found if f["key"] == "webhooks.routes.x"]
    assert bad_route["code"] == "SETTINGS_INVALID" and "starting with /" in bad_route["remediation"]
    assert str(bad / "envfence.toml") in bad_route["message"] and "WEBHOOK_ROUTE_INVALID" not in {f["code"] for f in found}


def test_emit_prints_a_systemd_unit_and_a_kubernetes_deployment_and_service(project, run_cli):
    unit = run_cli("--env", "production", "serve", "--emit", "systemd", cwd=project)
    assert unit.exit_code == 0
    assert "ExecStart=" in unit.stdout and '"--env" "production" "serve"' in unit.stdout and "KillSignal=SIGTERM" in unit.stdout
    manifest = run_cli("--env", "production", "serve", "--emit", "kubernetes", "--image", "acme/sync:1", cwd=project)
    assert manifest.exit_code == 0
    text = manifest.stdout
    assert "kind: Deployment" in text and "kind: Service" in text and "image: \"acme/sync:1\"" in text
    assert "containerPort: 18002" in text and "path: /readyz" in text and "path: /healthz" in text
    assert "prod-secret" not in text and CANARY not in unit.stdout + text


def test_hook_register_webhook_providers_adds_a_provider_routes_can_name(make_project, run_cli, envfence_plugin):
    from envfence import hookimpl
    from envfence_builtins.webhook_service.provider_hooks import WebhookProvider

    root = make_project(settings='[automations]\na = "m:f"\n[webhooks.routes."/x"]\nprovider = "token"\nautomation = "a"\n')

    def findings():
        return [f for f in json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"] if f["code"] == "WEBHOOK_ROUTE_INVALID"]

    assert "token" in findings()[0]["message"]

    class Token:
        @hookimpl
        def register_webhook_providers(self, register):
            register(WebhookProvider("token", verify=lambda *a: None, event_id=lambda h, b: h.get("x-id"),
                                     event_type=lambda h, p: None, plugin="token"))

    envfence_plugin(Token(), "token")
    assert findings() == []

    class Twice:
        @hookimpl
        def register_webhook_providers(self, register):
            register(WebhookProvider("github", verify=lambda *a: None, event_id=lambda h, b: None,
                                     event_type=lambda h, p: None, plugin="twice"))

    envfence_plugin(Twice(), "twice")
    assert "registered twice" in findings()[0]["message"]


def test_clean_never_touches_the_webhook_queue(make_project, run_cli):
    root = make_project(settings='[directories]\nclean = ["queue"]\n')
    found = json.loads(run_cli("--json", "check", cwd=root).stdout)["findings"]
    assert any(f["code"] == "DIR_CLEAN_PROTECTED" and "queue" in f["message"] for f in found)


def test_two_worker_processes_never_run_the_same_event(project):
    import subprocess
    import sys

    for n in range(12):
        enqueue(project, f"evt-{n}", {"n": n})
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("ENVFENCE_", "DEV_", "PROD_"))}
    workers = [
        subprocess.Popen([sys.executable, "-m", "envfence", "worker", "--once"], cwd=project,
                         env={**variables, "ENVFENCE_HOSTNAME": "build-box-01"}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read()
    ran = [json.loads(line)["id"] for line in (project / "var/development/runs.jsonl").read_text().splitlines()]
    assert sorted(ran) == sorted(f"evt-{n}" for n in range(12))
