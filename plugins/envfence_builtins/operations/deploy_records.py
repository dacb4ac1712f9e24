"""Deployments on record, rolled back when unwell: the logic of the ``deploy`` plugin's commands.

``envfence deploy`` does, in order:

1. a strict ``check`` (errors and warnings stop it; ``--allow-warnings`` lets warnings pass);
2. the ``pre_deploy`` hook (a project's own steps; an error stops it, nothing changed);
3. a snapshot of the environment's configuration files;
4. the deployment's record: its id, the code version (``git describe``, else
   the project's ``VERSION`` file), the configuration version
   (:mod:`envfence.config_versions`, whose ledger then names the deployment),
   who and which host;
5. the ``post_deploy`` hook: the health check (the ``health`` plugin) and a
   project's own checks;
6. on failure, the configuration is put back as the previous successful
   deployment left it (its snapshot) and ``deploy.failed`` is audited, which
   the ``alerts`` plugin sends to the environment's channels.

The records are the tree's ``state/deployments.jsonl``, one line per change
of a deployment's status (a crash leaves ``deploying``, listed as
``interrupted``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any


RECORDS = "deployments.jsonl"
#: A project without git describes its code in this file (its first line).
VERSION_FILE = "VERSION"


def _records_path(session: Any) -> Path:
    paths = session.paths
    return paths.dirs.get("state", paths.base / "state") / RECORDS


def code_version(root: Path) -> tuple[str, str | None]:
    """``(version, commit)``: ``git describe --always --dirty --tags`` and HEAD, else ``VERSION``'s first line."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20,
                                  env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    described = git("describe", "--always", "--dirty", "--tags")
    if described:
        return described, git("rev-parse", "HEAD")
    try:
        first = (root / VERSION_FILE).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError):
        first = []
    return (first[0].strip() if first else "unknown"), None


def append(session: Any, record: dict) -> None:
    """Add a line to the environment's deployment records (through :mod:`envfence.files`, never a link)."""
    from envfence import files

    with files.open_append(session.paths, _records_path(session)) as out:
        out.write(json.dumps(record, sort_keys=True) + "\n")


def listing(session: Any) -> list[dict]:
    """The environment's deployments, newest first: each one's lines merged, its last status winning."""
    from envfence import files

    path = _records_path(session)
    if session.paths is None or files.check_file(session.paths, path) is not None or not path.exists():
        return []
    merged: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            merged.setdefault(record["id"], {}).update(record)
    found = list(merged.values())
    for record in found:
        if record.get("status") == "deploying":
            record["status"] = "interrupted"
    return sorted(found, key=lambda r: r.get("started", ""), reverse=True)


def previous_good(session: Any) -> dict | None:
    """The last deployment that succeeded (its snapshot is what a failed one goes back to)."""
    return next((r for r in listing(session) if r.get("status") == "succeeded"), None)


def new_deployment(session: Any, reason: str | None) -> dict:
    """The record of a deployment about to start (no configuration version yet)."""
    from envfence.opening import system_hostname
    from envfence.runs.record import current_user

    now = _dt.datetime.now(_dt.timezone.utc)
    version, commit = code_version(session.root.path)
    return {"id": f"d-{now:%Y%m%dT%H%M%S}-{os.urandom(2).hex()}", "environment": session.environment.name,
            "code_version": session.redactor()(version), "commit": commit, "user": current_user(),
            "host": system_hostname(), "reason": session.redactor()(reason) if reason else None,
            "started": now.isoformat()}


def blocking(findings: list, allow_warnings: bool) -> list:
    """What stops a deployment: every error, and every warning unless allowed."""
    return [f for f in findings if f.severity == "error" or (f.severity == "warning" and not allow_warnings)]


def _findings(session: Any, result: Any) -> list:
    return list(session.redact_findings(result.flat() + result.findings("DEPLOY_HOOK_FAILED")))


def deploy(session: Any, reason: str | None = None, allow_warnings: bool = False) -> dict:
    """Deploy the session's environment (see the module's docstring); returns the deployment's record.

    Its ``status`` is ``refused`` (stopped before any change), ``succeeded``,
    ``rolled_back`` or ``failed`` (unwell, and no earlier deployment to go back to).
    """
    from envfence import config_versions, snapshots
    from envfence.cli.check import check_findings

    from envfence_builtins.operations.deploy_hooks import DeployHooks

    record = new_deployment(session, reason)
    stop = blocking(check_findings(session, live=False), allow_warnings)
    session.prepare()
    if not stop:
        stop = blocking(_findings(session, DeployHooks(session.plugins).pre_deploy(session=session, deployment=dict(record))), True)
    if stop:
        session.audit("deploy.refused", id=record["id"], findings=[f.code for f in stop])
        return {**record, "status": "refused", "findings": stop}
    previous = previous_good(session)
    taken = snapshots.take(session, note=f"deployment {record['id']}")
    digests = config_versions.file_digests(session)
    record.update(config_version=config_versions.version_of(digests), snapshot=taken.id, status="deploying")
    append(session, record)
    config_versions.record(session, record["config_version"], "deployment", record["id"], digests,
                           code_version=record["code_version"], commit=record["commit"])
    session.audit("deploy.started", **{k: v for k, v in record.items() if k != "status"})
    unwell = blocking(_findings(session, DeployHooks(session.plugins).post_deploy(session=session, deployment=dict(record))), True)
    if not unwell:
        append(session, {"id": record["id"], "status": "succeeded", "finished": _now()})
        session.audit("deploy.succeeded", id=record["id"], config_version=record["config_version"])
        return {**record, "status": "succeeded", "findings": []}
    return {**record, **_roll_back(session, record, previous, unwell), "findings": unwell}


def _roll_back(session: Any, record: dict, previous: dict | None, unwell: list) -> dict:
    """Put the previous successful deployment's snapshot back; record and audit the failure (which alerts)."""
    from envfence import config_versions, snapshots

    outcome: dict[str, Any] = {"status": "failed", "rolled_back_to": None, "finished": _now()}
    if previous is not None and previous.get("snapshot"):
        target = snapshots.find(session, previous["snapshot"])
        snapshots.rollback(session, target, reason=f"deployment {record['id']} failed its checks")
        digests = config_versions.file_digests(session)
        version = config_versions.version_of(digests)
        config_versions.record(session, version, "rollback", record["id"], digests, to_deployment=previous["id"])
        outcome.update(status="rolled_back", rolled_back_to=previous["id"], restored_version=version)
    append(session, {"id": record["id"], **outcome, "failures": [f.code for f in unwell]})
    session.audit("deploy.failed", id=record["id"], findings=[f.code for f in unwell], rolled_back_to=outcome["rolled_back_to"],
                  config_version=record["config_version"])
    return outcome


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()
