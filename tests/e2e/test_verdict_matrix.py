"""Every cell of the host guard's verdict table in docs/running.md, run as a user would.

The table is parsed, not copied: a row changed in the docs changes the test.
Each cell runs `envfence run touch` in-process (the environment named by
`--env` and by `ENVIRONMENT`) on a host named by the row, with the system's own
name set through the core's seam, and checks the exit code and whether the job
wrote its marker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "running.md"
FLAG_COLUMNS = {
    "no flag": [],
    "`--dry-run`": ["--dry-run"],
    "`--force`": ["--force"],
    "`--force --reason TEXT`": ["--force", "--reason", "maintenance window 42"],
}
JOBS = '''
def touch(ctx):
    if ctx.dry_run:
        ctx.say("would write a marker")
        return
    ctx.paths.base.joinpath("marker").write_text(ctx.environment)
'''


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### The verdict of the host guard")
    return text[start : text.index("\n#", start + 4)]


def doc_settings() -> str:
    """The settings block the table's project uses."""
    return re.search(r"```toml\n(.*?)```", _section(), re.S).group(1)


def doc_cells() -> list[tuple[str, str, str | None, str, int, bool]]:
    """``(environment, host name, system's name or None, flag column, exit code, ran)`` for every cell."""
    rows = [line for line in _section().splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cells = []
    for row in rows[2:]:
        values = [c.strip() for c in row.strip("|").split("|")]
        env, host = values[0], values[1]
        names = re.findall(r"`([^`]+)`", host)
        real = names[1] if "standing in for" in host else None
        for column, verdict in zip(header[2:], values[2:]):
            word, code = re.fullmatch(r"(runs|dry run|blocked) \((\d)\)", verdict).groups()
            cells.append((env, names[0], real, column, int(code), word == "runs"))
    return cells


CELLS = doc_cells()


def test_the_table_covers_every_environment_host_kind_and_flag():
    assert {c[0] for c in CELLS} == {"development", "production", "staging"}
    assert {c[3] for c in CELLS} == set(FLAG_COLUMNS)
    assert len(CELLS) == 3 * 5 * 4


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix") / "proj"
    root.mkdir()
    # The job runs in envfence's process: the verdict is the guard's, given before any job starts, and a
    # child Python process per cell (the production default) would only add its start-up to every cell.
    (root / "envfence.toml").write_text(doc_settings() + '\n[automations.touch]\nrun = "jobs:touch"\nisolation = "in-process"\n'
                                        'isolation_reason = "the verdict table is about the guard, not the job"\n')
    (root / "jobs.py").write_text(JOBS)
    return root


@pytest.mark.parametrize("source", ["--env", "ENVIRONMENT"])
@pytest.mark.parametrize(("env", "host", "real", "column", "code", "ran"), CELLS)
def test_verdict(project, run_cli, monkeypatch, source, env, host, real, column, code, ran):
    import envfence.opening

    monkeypatch.setattr(envfence.opening, "system_hostname", lambda: real or host)
    marker = project / "var" / env / "marker"
    marker.unlink(missing_ok=True)
    variables = {"ENVFENCE_HOSTNAME": host}
    chosen = ["--env", env] if source == "--env" else []
    if source == "ENVIRONMENT":
        variables["ENVIRONMENT"] = env
    result = run_cli(*chosen, "run", "touch", *FLAG_COLUMNS[column], cwd=project, env=variables)
    assert result.exit_code == code, result.output
    assert marker.exists() == ran
    if code == 3:
        assert re.search(r"HOSTNAME_MISMATCH|HOSTNAME_AMBIGUOUS|HOST_NOT_ENROLLED|HOSTNAME_SUSPECT", result.stderr)
        assert "to override" in result.stderr
    if column == "`--dry-run`" and code == 0:
        assert "would write a marker" in result.stdout


# --- the real host name, varied by the kernel ------------------------------------------

def _can_unshare() -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --uts to name the host")


def _on_host(real: str, project: Path, *args: str, stand_in: str | None = None) -> subprocess.CompletedProcess:
    """Run envfence in a new UTS namespace whose hostname is ``real``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVFENCE_") and k != "ENVIRONMENT"}
    if stand_in:
        env["ENVFENCE_HOSTNAME"] = stand_in
    script = 'hostname "$1"; shift; exec "$@"'
    command = ["unshare", "--uts", "sh", "-c", script, "sh", real, sys.executable, "-m", "envfence", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=60)


@needs_unshare
def test_a_stand_in_cannot_hide_a_production_host_from_a_development_run(project):
    (project / "var" / "development" / "marker").unlink(missing_ok=True)
    result = _on_host("web-prod-01", project, "--env", "development", "run", "touch", stand_in="dev-laptop-07")
    assert result.returncode == 3, result.stderr
    assert "HOSTNAME_MISMATCH" in result.stderr and "web-prod-01" in result.stderr
    assert not (project / "var" / "development" / "marker").exists()


@needs_unshare
def test_production_on_a_real_unclassified_host_is_blocked_until_enrolled(project):
    (project / "var" / "production" / "marker").unlink(missing_ok=True)
    result = _on_host("vm", project, "--env", "production", "run", "touch")
    assert result.returncode == 3 and "HOST_NOT_ENROLLED" in result.stderr
    assert 'hosts = ["vm"]' in result.stderr  # the line to add
    enrolled = _on_host("ip-10-0-0-77", project, "--env", "production", "run", "touch")
    assert enrolled.returncode == 0, enrolled.stderr
    assert (project / "var" / "production" / "marker").read_text() == "production"
