"""loguru is set up when something first logs, or when a job first imports it; every record is redacted either way."""

from __future__ import annotations

import os
from pathlib import Path

from fresh_process import envfence_in_new_process

CANARY = "canary-first-use-token-4471"

JOBS = '''
import os


def quiet(ctx):
    pass


def own_logger(ctx):
    from loguru import logger  # the job's own import: envfence's sinks and redaction are set up right after it

    logger.warning("calling with " + ctx.credential("API_TOKEN").reveal())


def through_ctx(ctx):
    ctx.logger.warning("calling with " + ctx.credential("API_TOKEN").reveal())
'''

SETTINGS = '[automations]\nquiet = "jobs:quiet"\nown-logger = "jobs:own_logger"\nthrough-ctx = "jobs:through_ctx"\nnoop = ["true"]\n'


def _run(root: Path, *args: str) -> tuple[dict, str, str]:
    environ = {**os.environ, "ENVFENCE_HOSTNAME": "build-box-01"}
    code, output, stderr, modules = envfence_in_new_process(root, *args, env=environ)
    return {"code": code, "loguru": "loguru" in modules, "multiprocessing": "multiprocessing" in modules}, output, stderr


def _logs(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in root.rglob("*.log"))


def test_a_run_that_logs_nothing_imports_no_loguru_and_starts_no_queue(make_project):
    """In production (development's debug profile logs each run's decisions, so it always logs)."""
    import json as _json
    import socket

    enrolled = f"\n[hostname.production]\nhosts = {_json.dumps(['build-box-01', socket.gethostname()])}\n"
    root = make_project({".env": f"PROD_API_TOKEN={CANARY}\n", "jobs.py": JOBS}, settings=SETTINGS + enrolled)
    for name in ("noop", "quiet"):
        probe, output, stderr = _run(root, "--env", "production", "run", name)
        assert probe["code"] == 0, output + stderr
        assert probe == {"code": 0, "loguru": False, "multiprocessing": False}, name
    assert list(root.rglob("automation_production.log")), "the log file is there for the day something logs"


def test_a_jobs_own_loguru_import_is_still_redacted(make_project):
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\n", "jobs.py": JOBS}, settings=SETTINGS)
    probe, output, stderr = _run(root, "run", "own-logger")
    assert probe["code"] == 0 and probe["loguru"], output + stderr
    logs = _logs(root)
    assert "calling with ********" in logs  # the job's record reached envfence's file sink, redacted
    assert CANARY not in logs + output + stderr


def test_a_record_through_the_run_context_is_redacted(make_project):
    root = make_project({".env": f"DEV_API_TOKEN={CANARY}\n", "jobs.py": JOBS}, settings=SETTINGS)
    probe, output, stderr = _run(root, "run", "through-ctx")
    assert probe["code"] == 0 and probe["loguru"], output + stderr
    logs = _logs(root)
    assert "calling with ********" in logs and CANARY not in logs + output + stderr


def test_a_rotation_loguru_refuses_still_stops_the_run(make_project):
    root = make_project({"jobs.py": JOBS}, settings=SETTINGS + '\n[logging]\nrotation = "every blue moon"\n')
    probe, output, stderr = _run(root, "run", "quiet")
    assert "rotation" in stderr and "Traceback" not in stderr, output + stderr
