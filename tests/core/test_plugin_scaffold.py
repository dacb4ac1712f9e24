"""`envfence plugin new NAME`: a distribution that installs, is listed, and whose tests pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_scaffolded_plugin_installs_is_listed_and_its_tests_pass(envfence_project, tmp_path):
    result = envfence_project.run("plugin", "new", "acme-billing", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    dist = tmp_path / "envfence-acme-billing"
    assert f"created {dist}" in result.stdout
    assert sorted(p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()) == [
        "README.md",
        "envfence_acme_billing/__init__.py",
        "pyproject.toml",
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
    assert (record["status"], record["distribution"], record["hooks"]) == ("loaded", "envfence-acme-billing", ["validate"])

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=dist, env=env,
        capture_output=True, text=True,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout


def test_plugin_new_refuses_a_bad_name_or_an_existing_folder(envfence_project, tmp_path):
    bad = envfence_project.run("plugin", "new", "Acme Billing!", "--dir", str(tmp_path))
    assert bad.exit_code == 2
    assert "plugin name 'acme billing!' is not usable" in bad.stderr
    assert envfence_project.run("plugin", "new", "envfence-notes", "--dir", str(tmp_path)).exit_code == 0
    again = envfence_project.run("plugin", "new", "notes", "--dir", str(tmp_path))
    assert again.exit_code == 2
    assert "envfence-notes already exists" in again.stderr
