"""Scaling per environment: ``[scaling.<environment>]`` in the emitted Kubernetes manifests and systemd units.

The manifests are read back through the kubernetes client's own models (a
field the schema does not know would be dropped on the way back, so the
round trip must give the manifest again); the units are checked by
``systemd-analyze verify``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from test_webhook_queue_cli import CANARY, HOOKS, SETTINGS

SCALING = """
[scaling.production]
receivers = 2
workers = 3
max_workers = 12
cpu = 70
cpu_request = "500m"
queue_depth = 25

[scaling.staging]
workers = 2
"""


@pytest.fixture
def project(make_project):
    return make_project(
        {"hooks.py": HOOKS, ".env.development": f"WEBHOOK_PORT=18001\nDEV_HOUSECALLPRO_WEBHOOK_SECRET={CANARY}\n",
         ".env.production": "WEBHOOK_PORT=18002\nPROD_HOUSECALLPRO_WEBHOOK_SECRET=prod-secret-0a1b2c3d4e5f6a7b8c9d0e1f\n"},
        settings=SETTINGS + SCALING + '\n[environments.staging]\nprefix = "STG"\nbased_on = "production"\n',
    )


def documents(text: str) -> list[dict]:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the kubernetes client: pip install -e '.[test]'")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def checked(doc: dict):
    """``doc`` read through the kubernetes client's model of its kind, which must give ``doc`` back whole."""
    from kubernetes.client import ApiClient

    model = {"Deployment": "V1Deployment", "Service": "V1Service", "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler"}
    client = ApiClient()
    obj = client.deserialize(json.dumps(doc), model[doc["kind"]], "application/json")
    assert client.sanitize_for_serialization(obj) == doc
    return obj


def emit(run_cli, root, command: str, form: str, env: str = "production"):
    result = run_cli("--env", env, command, "--emit", form, "--image", "registry.local/acme:1.4", cwd=root)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_production_runs_its_declared_receivers_and_autoscaled_workers(project, run_cli):
    receiver = [checked(d) for d in documents(emit(run_cli, project, "serve", "kubernetes"))]
    deployment, service = receiver
    assert deployment.kind == "Deployment" and deployment.spec.replicas == 2 and service.kind == "Service"
    workers = documents(emit(run_cli, project, "worker", "kubernetes"))
    deployment, hpa = (checked(d) for d in workers)
    assert deployment.spec.replicas is None  # the autoscaler owns the count: `kubectl apply` must not reset it
    container = deployment.spec.template.spec.containers[0]
    assert container.command == ["envfence", "--env", "production", "worker"] and container.image == "registry.local/acme:1.4"
    assert container.resources.requests == {"cpu": "500m"}  # what the CPU target is a percentage of
    # The workers mount the tree the receiver's Deployment mounts: with the SQLite queue they share its volume.
    claim = deployment.spec.template.spec.volumes[0].persistent_volume_claim.claim_name
    assert claim == receiver[0].spec.template.spec.volumes[0].persistent_volume_claim.claim_name
    assert hpa.api_version == "autoscaling/v2" and hpa.spec.scale_target_ref.name == deployment.metadata.name
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 12)
    cpu, queue = hpa.spec.metrics
    assert cpu.type == "Resource" and cpu.resource.name == "cpu" and cpu.resource.target.average_utilization == 70
    assert queue.type == "External" and queue.external.metric.name == "envfence_webhook_queue_pending"
    assert queue.external.metric.selector.match_labels == {"environment": "production"}
    assert queue.external.target.type == "AverageValue" and queue.external.target.average_value == "25"


def test_a_usable_scaling_table_draws_no_finding(project, run_cli):
    found = json.loads(run_cli("--env", "production", "--json", "check", cwd=project).stdout)["findings"]
    assert not [f for f in found if f["code"] == "SCALING_INVALID" or "scaling" in f["message"]]


def test_an_environment_without_autoscaling_gets_fixed_replicas_and_no_autoscaler(project, run_cli):
    [deployment] = [checked(d) for d in documents(emit(run_cli, project, "worker", "kubernetes", env="staging"))]
    assert deployment.spec.replicas == 2 and deployment.spec.template.spec.containers[0].resources is None
    [default] = [checked(d) for d in documents(emit(run_cli, project, "worker", "kubernetes", env="development"))]
    assert default.spec.replicas == 1
    receiver, _ = (checked(d) for d in documents(emit(run_cli, project, "serve", "kubernetes", env="development")))
    assert receiver.spec.replicas == 1


def test_only_one_target_is_enough_for_an_autoscaler(make_project, run_cli):
    root = make_project({"hooks.py": HOOKS, ".env.production": "WEBHOOK_PORT=18002\n"},
                        settings=SETTINGS + "[scaling.prod]\nworkers = 1\nmax_workers = 4\nqueue_depth = 10\n"
                                            'queue_metric = "acme_pending_events"\n')
    _, hpa = (checked(d) for d in documents(emit(run_cli, root, "worker", "kubernetes")))  # prod: production's alias
    [queue] = hpa.spec.metrics
    assert queue.external.metric.name == "acme_pending_events" and hpa.spec.max_replicas == 4
    deployment = checked(documents(emit(run_cli, root, "worker", "kubernetes"))[0])
    assert deployment.spec.template.spec.containers[0].resources is None  # no CPU target: no request is imposed


def test_names_and_labels_stay_valid_for_any_environment_name(make_project, run_cli):
    long_env = "e" + "x" * 69
    settings = SETTINGS + "".join(f'[environments.{env}]\nprefix = "P{i}"\nbased_on = "development"\n'
                                  for i, env in enumerate(("qa_", long_env, "QA-1")))
    settings += f'[scaling.{long_env}]\nworkers = 2\nmax_workers = 3\ncpu = 50\n'
    envs = ("qa_", long_env, "QA-1")
    root = make_project({"hooks.py": HOOKS, **{f".env.{env}": f"WEBHOOK_PORT={18010 + i}\n" for i, env in enumerate(envs)}},
                        settings=settings)
    for env in envs:
        docs = documents(emit(run_cli, root, "worker", "kubernetes", env=env))
        docs += documents(emit(run_cli, root, "serve", "kubernetes", env=env))
        for doc in docs:
            checked(doc)
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63
            for value in doc["metadata"]["labels"].values():
                assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value) and len(value) <= 63
        assert docs[0]["spec"]["template"]["spec"]["containers"][0]["command"] == ["envfence", "--env", env, "worker"]


def _units(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^# --- (\S+)\n(.*?)(?=^# --- |\Z)", text, re.M | re.S)}


def test_systemd_gets_a_worker_template_and_a_target_starting_the_declared_instances(project, run_cli, tmp_path):
    units = _units(emit(run_cli, project, "worker", "systemd"))
    template, target = sorted(units)
    assert template.endswith("-worker-production@.service") and target.endswith("-workers-production.target")
    wants = re.search(r"^Wants=(.+)$", units[target], re.M).group(1).split()
    stem = template.removesuffix("@.service")
    assert wants == [f"{stem}@1.service", f"{stem}@2.service", f"{stem}@3.service"]
    assert re.search(r'^ExecStart=.*"--env" "production" "worker"$', units[template], re.M)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in units[template] and CANARY not in "".join(units.values())
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this host: apt-get install systemd")
    directory = tmp_path / "units"
    directory.mkdir()
    for name, text in units.items():
        (directory / name).write_text(text)
    (directory / "receiver.service").write_text(emit(run_cli, project, "serve", "systemd"))
    # Verifying the target loads each instance it wants from the template beside it.
    verify = subprocess.run(["systemd-analyze", "verify", str(directory / target), str(directory / f"{stem}@2.service"),
                             str(directory / "receiver.service")], capture_output=True, text=True)
    assert verify.returncode == 0 and str(directory) not in verify.stderr, verify.stderr


@pytest.mark.parametrize("table, words", [
    ("[scaling.production]\nworkers = 0\n", "scaling.production.workers: must be a whole number of at least 1, not 0"),
    ("[scaling.production]\nworkers = 4\nmax_workers = 2\ncpu = 60\n", "max_workers (2) is below workers (4)"),
    ("[scaling.production]\nmax_workers = 4\n", "max_workers needs a target"),
    ("[scaling.production]\ncpu = 60\n", "max_workers, which is not set"),
    ("[scaling.production]\nreplicas = 2\n", "scaling.production.replicas: unknown key"),
    ("[scaling.prodution]\nworkers = 2\n", "'prodution' is no declared environment"),
    ('[scaling.production]\nmax_workers = 3\nqueue_depth = 5\nqueue_metric = "pending events"\n', "scaling.production.queue_metric: must be a string of the form"),
    ('[scaling.production]\nmax_workers = 3\ncpu = 50\ncpu_request = "half"\n', "scaling.production.cpu_request: must be a string of the form 250m, not 'half'"),
])
def test_a_scaling_table_that_cannot_be_used_is_named_by_check_and_refused_by_emit(make_project, run_cli, table, words):
    root = make_project({"hooks.py": HOOKS, ".env.production": "WEBHOOK_PORT=18002\n"}, settings=SETTINGS + table)
    found = json.loads(run_cli("--env", "production", "--json", "check", cwd=root).stdout)["findings"]
    # Said once: by the [scaling] declaration (SETTINGS_INVALID), or by the rules that tie its keys together.
    [finding] = [f for f in found if f["code"] in ("SCALING_INVALID", "SETTINGS_INVALID")]
    assert words in finding["message"] and "envfence.toml" in finding["message"] and finding["severity"] == "error"
    refused = run_cli("--env", "production", "worker", "--emit", "kubernetes", cwd=root)
    assert refused.exit_code == 4 and words in refused.stderr and "Traceback" not in refused.stderr


def test_an_image_or_project_path_holding_yaml_syntax_stays_one_string(make_project, run_cli):
    root = make_project({"hooks.py": HOOKS, ".env.production": "WEBHOOK_PORT=18002\n"}, settings=SETTINGS, name="acme: #1")
    image = "registry.local/acme:1.4 # not a comment"
    for command in ("serve", "worker"):
        result = run_cli("--env", "production", command, "--emit", "kubernetes", "--image", image, cwd=root)
        assert result.exit_code == 0, result.output
        deployment = checked(documents(result.stdout)[0])
        container = deployment.spec.template.spec.containers[0]
        assert container.image == image and container.working_dir == str(root)
        assert container.volume_mounts[0].mount_path == str(root / "var" / "production")
