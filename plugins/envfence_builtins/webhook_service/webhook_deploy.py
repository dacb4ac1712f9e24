"""Deployment files for an environment's webhook receiver: a systemd unit, a Kubernetes Deployment and Service.

Printed by ``envfence serve --emit systemd|kubernetes``. Both stop the
receiver with SIGTERM and give it time to drain, restart it when it fails,
and keep one receiver per environment: the queue is a SQLite file in the
environment's tree, so the tree must be on persistent storage and written by
one receiver at a time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

#: Seconds the service manager waits after SIGTERM before killing the receiver.
STOP_TIMEOUT = 60


def _name(session) -> str:
    project = "".join(c if c.isalnum() else "-" for c in Path(session.root.path).name.lower()).strip("-") or "project"
    return f"{project}-webhooks-{session.environment.name}"


def systemd(session, port: int) -> str:
    """A systemd service unit running ``envfence serve`` for the session's environment."""
    from envfence_builtins.operations.schedule import systemd_command, systemd_literal

    env = session.environment.name
    envfence = [shutil.which("envfence")] if shutil.which("envfence") else [sys.executable, "-m", "envfence"]
    return f"""# {_name(session)}.service: envfence webhook receiver for {env} on port {port}
[Unit]
Description=envfence webhook receiver ({env}, port {port})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={systemd_literal(str(session.root.path))}
Environment={session.settings.environment_variable}={env}
ExecStart={systemd_command([*envfence, "--env", env, "serve"])}
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT}
Restart=on-failure
RestartSec=5
NoNewPrivileges=true
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""


def kubernetes(session, port: int, image: str) -> str:
    """A Deployment (one replica, recreated, probes on /healthz and /readyz) and a Service for the receiver."""
    env = session.environment.name
    name = _name(session)
    base = session.paths.base if session.paths is not None else Path(session.root.path)
    return f"""# {name}: envfence webhook receiver for {env} on port {port}
# One replica: the queue is a SQLite file in the environment's tree, on the volume below.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}, envfence-environment: {env}}}
spec:
  replicas: 1
  strategy: {{type: Recreate}}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, envfence-environment: {env}}}
    spec:
      terminationGracePeriodSeconds: {STOP_TIMEOUT}
      containers:
        - name: receiver
          image: {image}
          workingDir: {session.root.path}
          command: ["envfence", "--env", "{env}", "serve"]
          env:
            - {{name: {session.settings.environment_variable}, value: "{env}"}}
            - {{name: WEBHOOK_HOST, value: "0.0.0.0"}}
          ports:
            - {{name: webhooks, containerPort: {port}}}
          livenessProbe:
            httpGet: {{path: /healthz, port: webhooks}}
            periodSeconds: 10
          readinessProbe:
            httpGet: {{path: /readyz, port: webhooks}}
            periodSeconds: 5
          volumeMounts:
            - {{name: environment-tree, mountPath: {base}}}
      volumes:
        - name: environment-tree
          persistentVolumeClaim: {{claimName: {name}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels: {{app: {name}, envfence-environment: {env}}}
spec:
  selector: {{app: {name}}}
  ports:
    - {{name: webhooks, port: {port}, targetPort: webhooks}}
"""


def render(kind: str, session, port: int, image: str) -> str:
    """The deployment file of ``kind`` (``systemd`` or ``kubernetes``)."""
    return systemd(session, port) if kind == "systemd" else kubernetes(session, port, image)
