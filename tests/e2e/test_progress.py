"""Long work shows a progress bar on a terminal (click's), and nothing when piped, under -q or with --json.

``backup`` and ``report`` name each file as they go; ``restore`` and
``check --live`` draw a bar (``store import`` too: tests/store/test_store_progress.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envfence.testing.project import on_a_terminal

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
BAR = "[####"


def piped(args: list[str], cwd, environ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envfence", *args], cwd=cwd, env={**os.environ, "NO_COLOR": "1", **environ},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def archived(make_project, run_cli, tmp_path):
    """A project whose development tree was archived, then moved aside: ready for a restore."""
    root = make_project({"jobs.py": "def ok(ctx):\n    ctx.say('fine')\n"}, settings='[automations.ok]\nrun = "jobs:ok"\n')
    assert run_cli("run", "ok", cwd=root).exit_code == 0
    made = run_cli("backup", "--output", str(tmp_path / "offsite"), cwd=root)
    assert made.exit_code == 0, made.output
    (root / "var" / "development").rename(tmp_path / "old-tree")
    (archive,) = (tmp_path / "offsite").glob("*.tar.gz")
    return root, archive


def test_restore_draws_a_bar_of_the_files_on_a_terminal(archived):
    root, archive = archived
    code, screen = on_a_terminal(["restore", str(archive)], root, {"ENVFENCE_HOSTNAME": "laptop-07"})
    assert code == 0, screen
    files = int(screen.split("; restored ")[1].split(" file(s)")[0])
    assert "restoring" in screen and BAR in screen and f"{files}/{files}" in screen
    assert screen.index(f"{files}/{files}") < screen.index("; restored ")  # the bar finished before the result


@pytest.mark.parametrize("how", ["piped", "-q", "--json"])
def test_restore_shows_no_bar_when_piped_quiet_or_json(archived, how):
    root, archive = archived
    env = {"ENVFENCE_HOSTNAME": "laptop-07"}
    if how == "piped":
        done = piped(["restore", str(archive)], root, env)
        code, screen = done.returncode, done.stdout + done.stderr
    else:
        code, screen = on_a_terminal([how, "restore", str(archive)], root, env)
    assert code == 0, screen
    assert "restoring" not in screen and BAR not in screen and "\x1b[?25l" not in screen


def test_check_live_draws_a_bar_of_the_validators_on_a_terminal(make_project, fake_airtable):
    from envfence.testing import DEMO_DEV_BASE, DEMO_DEV_TOKEN

    env = f"DEV_AIRTABLE_API_KEY={DEMO_DEV_TOKEN}\nAIRTABLE_BASE_ID={DEMO_DEV_BASE}\nAIRTABLE_ENDPOINT_URL={fake_airtable.url}\n"
    root = make_project({".env": env}, settings='[airtable]\ntables = ["Jobs"]\n')
    code, screen = on_a_terminal(["check", "--live"], root, {"ENVFENCE_HOSTNAME": "laptop-07"})
    assert "live checks" in screen and BAR in screen, screen
    assert DEMO_DEV_TOKEN not in screen
    quiet = piped(["check", "--live"], root, {"ENVFENCE_HOSTNAME": "laptop-07"})
    assert quiet.returncode == code
    assert "live checks" not in quiet.stderr and BAR not in quiet.stderr
    assert "live checks" not in on_a_terminal(["-q", "check", "--live"], root, {"ENVFENCE_HOSTNAME": "laptop-07"})[1]
