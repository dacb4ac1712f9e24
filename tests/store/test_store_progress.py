"""`envfence store import` draws a bar of the runs and audit records copied, on a terminal only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envfence.testing.project import on_a_terminal

from .conftest import APP_PASSWORD
from .test_store import JOBS, settings

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")


@pytest.fixture
def local_history(make_project, store_db, run_cli):
    """A project with runs and an audit trail in its files, its store initialised and empty."""
    project = make_project({"jobs.py": JOBS}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    for _ in range(3):
        assert run_cli("run", "ok", cwd=project).exit_code == 0
    (project / "envfence.toml").write_text(settings(store_db.url))
    (project / ".env").write_text(f"DEV_STORE_PASSWORD={APP_PASSWORD}\nDEV_STORE_ADMIN_URL={store_db.owner}\n")
    assert run_cli("store", "init", cwd=project).exit_code == 0
    return project


def test_store_import_draws_a_bar_on_a_terminal(local_history):
    code, screen = on_a_terminal(["store", "import"], local_history, {"ENVFENCE_HOSTNAME": "laptop-07"})
    assert code == 0, screen
    runs = int(screen.split("runs: ")[1].split(" added")[0])
    records = int(screen.split("audit records: ")[1].split(" added")[0])
    total = runs + records
    assert runs == 3 and f"importing  [####################################]  {total}/{total}" in screen, screen
    assert APP_PASSWORD not in screen


def test_store_import_piped_or_quiet_shows_no_bar(local_history):
    done = subprocess.run([sys.executable, "-m", "envfence", "store", "import", "--json"], cwd=local_history,
                          env={**os.environ, "ENVFENCE_HOSTNAME": "laptop-07"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"]["added"] == 3 and "importing" not in done.stderr
    code, screen = on_a_terminal(["-q", "store", "import"], local_history, {"ENVFENCE_HOSTNAME": "laptop-07"})
    assert code == 0 and "importing" not in screen and "[####" not in screen
