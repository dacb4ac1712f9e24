"""`envfence plugin new NAME`: a distribution that installs, is listed, and whose tests pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.heavy  # a venv and pip installs
def test_scaffolded_plugin_installs_is_listed_and_its_tests_pass(envfence_project, tmp_path):
    result = envfence_project.run("plugin", "new", "acme-billing", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    dist = tmp_path / "envfence-acme-billing"
    assert f"created {dist}" in result.stdout
    assert sorted(p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()) == [
        "README.md",
        "envfence_acme_billing/__init__.py",
        "pyproject.toml",
        "tests/conftest.py",  # opts into envfence's test kit: installing envfence registers no fixture
        "tests/test_acme_billing.py",
    ]

    # Install it for real, beside the running envfence but outside its venv.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(dist)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "ENVFENCE_HOSTNAME": "build-box-01"}
    listed = subprocess.run(
        [sys.executable, "-m", "envfence", "--json", "plugins"], cwd=envfence_project.path, env=env,
        capture_output=True, text=True,
    )
    assert listed.returncode == 0, listed.stderr
    record = next(r for r in json.loads(listed.stdout) if r["name"] == "acme_billing")
    assert (record["status"], record["distribution"], record["hooks"]) == ("loaded", "envfence-acme-billing", ["declare_tables", "validate"])

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=dist, env=env,
        capture_output=True, text=True,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout


def test_plugin_new_refuses_a_bad_name_or_an_existing_folder(envfence_project, tmp_path):
    bad = envfence_project.run("plugin", "new", "Acme Billing!", "--dir", str(tmp_path))
    assert bad.exit_code == 2
    assert "plugin name 'acme billing!' is not usable" in bad.stderr
    assert envfence_project.run("plugin", "new", "envfence-notes", "--dir", str(tmp_path)).exit_code == 0
    again = envfence_project.run("plugin", "new", "notes", "--dir", str(tmp_path))
    assert again.exit_code == 2
    assert "envfence-notes already exists" in again.stderr


@pytest.mark.heavy  # a venv and pip installs
def test_scaffolded_plugin_names_envfence_by_name_and_installs_from_a_wheelhouse(tmp_path, envfence_wheel):
    """A colleague's clone installs: the plugin names envfence>=VERSION, and pip finds it with --find-links."""
    import sysconfig
    from pathlib import Path

    wheel = envfence_wheel  # what `make dist` builds
    wheels = wheel.parent

    env = {**os.environ, "ENVFENCE_HOSTNAME": "build-box-01"}
    made = subprocess.run([sys.executable, "-m", "envfence", "plugin", "new", "notes", "--dir", str(tmp_path),
                           "--envfence", str(wheel)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    plugin = tmp_path / "envfence-notes"
    from importlib.metadata import version

    pyproject = (plugin / "pyproject.toml").read_text()
    assert f'dependencies = ["envfence>={version("envfence")}"]' in pyproject
    assert "file:" not in pyproject and str(tmp_path) not in pyproject  # nothing of this machine
    assert f"pip install '{wheel}'" in made.stdout  # the local wheel is installed first, by hand

    # A fresh venv: pip resolves envfence from the wheel the plugin names, with no index at all.
    # envfence's own dependencies are taken from this test's environment (a .pth), not downloaded.
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    deps = tmp_path / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_path("purelib"))
    for item in ours.iterdir():
        # Everything but envfence itself (and the distributions this checkout installs in editable mode).
        if not item.name.lower().startswith(("envfence", "_envfence", "__editable__", "_editable")) and not item.name.endswith(".pth"):
            (deps / item.name).symlink_to(item)
    (fresh_site / "deps.pth").write_text(str(deps) + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index",
         "--find-links", str(wheels), "--no-build-isolation", str(plugin)],
        capture_output=True, text=True, env={**env, "PIP_FIND_LINKS": ""},
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    where = subprocess.run([str(python), "-c", "import envfence; print(envfence.__file__)"], capture_output=True, text=True)
    assert where.stdout.startswith(str(fresh_site)), where.stdout + where.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / "envfence.toml").write_text("")
    listed = subprocess.run([str(venv / "bin" / "envfence"), "--json", "plugins"], cwd=project, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert any(r["name"] == "notes" and r["status"] == "loaded" for r in json.loads(listed.stdout))
