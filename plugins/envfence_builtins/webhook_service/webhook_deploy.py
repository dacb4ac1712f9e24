"""Deployment files for an environment's webhook receiver and workers: systemd units, Kubernetes manifests.

Printed by ``envfence serve --emit systemd|kubernetes`` and ``envfence
worker --emit systemd|kubernetes``. All stop their process with SIGTERM and
give it time to drain, restart it when it fails, and reload its
configuration on ``systemctl reload`` (SIGHUP). How many run comes from
``[scaling.<environment>]``: the receiver Deployment's replicas, the worker
Deployment's replicas (or a HorizontalPodAutoscaler between ``workers`` and
``max_workers``), and the systemd ``worker@1`` .. ``worker@N`` instances a
target starts together. With the default SQLite queue the environment's tree
must be on persistent storage that every receiver and worker mounts; more
than one pod per environment needs the queue in a shared store (``[store]``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

#: Seconds the service manager waits after SIGTERM before killing the receiver.
STOP_TIMEOUT = 60


def _dns_label(text: str) -> str:
    """``text`` as a Kubernetes name (RFC 1123 label: lower case, digits, ``-``, at most 63), distinct for distinct texts."""
    label = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-") or "envfence"
    if label == text and len(label) <= 63:
        return label
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]  # two names that read alike stay two objects
    return f"{label[:54].rstrip('-')}-{digest}"


def _label_value(text: str) -> str:
    """``text`` as a Kubernetes label value (letters, digits, ``-_.``, at most 63, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _project(session) -> str:
    return "".join(c if c.isalnum() else "-" for c in Path(session.root.path).name.lower()).strip("-") or "project"


def _name(session, what: str = "webhooks") -> str:
    return f"{_project(session)}-{what}-{session.environment.name}"


def _envfence() -> list[str]:
    return [shutil.which("envfence")] if shutil.which("envfence") else [sys.executable, "-m", "envfence"]


def _service(session, command: str, description: str, extra: str = "") -> str:
    """The ``[Unit]`` and ``[Service]`` sections of a unit running ``envfence --env ENV COMMAND``."""
    from envfence.systemd import systemd_command, systemd_literal

    env = session.environment.name
    return f"""[Unit]
Description={description}
After=network-online.target
Wants=network-online.target
{extra}
[Service]
Type=simple
WorkingDirectory={systemd_literal(str(session.root.path))}
Environment={session.settings.environment_variable}={env}
ExecStart={systemd_command([*_envfence(), "--env", env, command])}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT}
Restart=on-failure
RestartSec=5
NoNewPrivileges=true
PrivateTmp=true
"""


def systemd(session, port: int) -> str:
    """A systemd service unit running ``envfence serve`` for the session's environment."""
    env = session.environment.name
    return (f"# {_name(session)}.service: envfence webhook receiver for {env} on port {port}\n"
            + _service(session, "serve", f"envfence webhook receiver ({env}, port {port})")
            + "\n[Install]\nWantedBy=multi-user.target\n")


def worker_systemd(session, scaling) -> dict[str, str]:
    """A template unit running one ``envfence worker`` per instance, and a target starting instances 1..workers."""
    env = session.environment.name
    template, target = _name(session, "worker"), _name(session, "workers")
    instances = " ".join(f"{template}@{n}.service" for n in range(1, scaling.workers + 1))
    unit = (f"# {template}@.service: envfence webhook worker for {env}, one process per instance ({template}@1, @2, ...)\n"
            + _service(session, "worker", f"envfence webhook worker {env} #%i", f"PartOf={target}.target\n")
            + f"\n[Install]\nWantedBy={target}.target\n")
    group = (f"# {target}.target: the {scaling.workers} envfence worker process(es) of {env}; "
             f"more: systemctl start {template}@{scaling.workers + 1}\n"
             f"[Unit]\nDescription=envfence webhook workers ({env}, {scaling.workers})\nWants={instances}\n\n"
             "[Install]\nWantedBy=multi-user.target\n")
    return {f"{template}@.service": unit, f"{target}.target": group}


def kubernetes(session, port: int, image: str, scaling) -> str:
    """A Deployment (``receivers`` replicas, recreated, probes on /healthz and /readyz) and a Service for the receiver."""
    env = session.environment.name
    name = _dns_label(_name(session))
    receiver = f"""            - {{name: WEBHOOK_HOST, value: "0.0.0.0"}}
          ports:
            - {{name: webhooks, containerPort: {port}}}
          livenessProbe:
            httpGet: {{path: /healthz, port: webhooks}}
            periodSeconds: 10
          readinessProbe:
            httpGet: {{path: /readyz, port: webhooks}}
            periodSeconds: 5
"""
    return (f"# {name}: envfence webhook receiver for {env} on port {port}\n"
            "# The queue is a SQLite file in the environment's tree, on the volume below, unless it is in a shared store.\n"
            + _deployment(session, name, "serve", image, f"  replicas: {scaling.receivers}\n  strategy: {{type: Recreate}}\n",
                          receiver, name)
            + f"""---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {_labels(name, env)}
spec:
  selector: {{app: {name}}}
  ports:
    - {{name: webhooks, port: {port}, targetPort: webhooks}}
""")


def worker_kubernetes(session, image: str, scaling) -> str:
    """A Deployment of ``envfence worker`` pods and, with ``max_workers``, its HorizontalPodAutoscaler (autoscaling/v2)."""
    env = session.environment.name
    name, tree = _dns_label(_name(session, "worker")), _dns_label(_name(session))
    # Under an autoscaler the Deployment names no replicas: each `kubectl apply` would reset the count it chose.
    replicas = "" if scaling.autoscaled else f"  replicas: {scaling.workers}\n"
    requests = (f"          resources:\n            requests: {{cpu: {json.dumps(scaling.cpu_request)}}}\n"
                if scaling.cpu is not None else "")
    manifest = f"# {name}: envfence webhook workers for {env}\n" + _deployment(session, name, "worker", image, replicas, requests, tree)
    return manifest + (_autoscaler(name, env, _labels(name, env), scaling) if scaling.autoscaled else "")


def _deployment(session, name: str, command: str, image: str, head: str, container: str, claim: str) -> str:
    """A Deployment of one container running ``envfence --env ENV COMMAND``: ``head`` goes at the top of its spec,
    ``container`` after the container's environment; the tree is mounted from ``claim``."""
    env = session.environment.name
    labels = _labels(name, env)
    role = "receiver" if command == "serve" else command
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {labels}
spec:
{head}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {labels}
    spec:
      terminationGracePeriodSeconds: {STOP_TIMEOUT}
      containers:
        - name: {role}
          image: {json.dumps(image)}
          workingDir: {json.dumps(str(session.root.path))}
          command: {json.dumps(["envfence", "--env", env, command])}
          env:
            - {{name: {session.settings.environment_variable}, value: {json.dumps(env)}}}
{container}{_volume(session, claim)}"""


def _autoscaler(name: str, env: str, labels: str, scaling) -> str:
    metrics = ""
    if scaling.cpu is not None:
        metrics += f"""    - type: Resource
      resource:
        name: cpu
        target: {{type: Utilization, averageUtilization: {scaling.cpu}}}
"""
    if scaling.queue_depth is not None:
        # Served by the cluster's external metrics API (an adapter), not by Kubernetes itself: see docs/webhooks.md.
        metrics += f"""    - type: External
      external:
        metric:
          name: {json.dumps(scaling.queue_metric)}
          selector:
            matchLabels: {{environment: {json.dumps(_label_value(env))}}}
        target: {{type: AverageValue, averageValue: "{scaling.queue_depth}"}}
"""
    return f"""---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  labels: {labels}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: {scaling.workers}
  maxReplicas: {scaling.max_workers}
  metrics:
{metrics}"""


def _labels(name: str, env: str) -> str:
    return f"{{app: {name}, envfence-environment: {json.dumps(_label_value(env))}}}"


def _volume(session, claim: str) -> str:
    """The environment's tree, mounted from the persistent volume claim ``claim`` (the receiver's).

    Paths and the image are written as JSON strings (YAML reads them alike): a ``: `` or `` #`` in one stays text.
    """
    base = session.paths.base if session.paths is not None else Path(session.root.path)
    return f"""          volumeMounts:
            - {{name: environment-tree, mountPath: {json.dumps(str(base))}}}
      volumes:
        - name: environment-tree
          persistentVolumeClaim: {{claimName: {claim}}}
"""


def render(kind: str, session, port: int, image: str, scaling) -> str:
    """The receiver's deployment file of ``kind`` (``systemd`` or ``kubernetes``)."""
    return systemd(session, port) if kind == "systemd" else kubernetes(session, port, image, scaling)


def render_worker(kind: str, session, image: str, scaling) -> str:
    """The workers' deployment files of ``kind``: systemd units (each after a ``# --- NAME`` line) or Kubernetes manifests."""
    if kind == "kubernetes":
        return worker_kubernetes(session, image, scaling)
    return "".join(f"# --- {name}\n{text}" for name, text in worker_systemd(session, scaling).items())
