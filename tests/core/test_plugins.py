"""Plugins load one by one: a broken one is reported and the rest works."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import envfence


def install_plugin(site: Path, name: str, module_source: str, dist: str | None = None) -> None:
    """Make a plugin distribution importable from ``site`` with an envfence entry point."""
    dist = dist or f"envfence-{name}"
    module = f"{name.replace('-', '_')}_plugin"
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[envfence]\n{name} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


BROKEN_IMPORT = "import does_not_exist_anywhere\n"
BAD_HOOK_ARGS = """
from envfence import hookimpl

@hookimpl
def validate(session, nonsense_argument):
    return []
"""
UNKNOWN_HOOK = """
from envfence import hookimpl

@hookimpl
def validat(session):
    return []
"""
GOOD = """
from envfence import hookimpl
from envfence.models import Finding

@hookimpl
def validate(session):
    return [Finding("GOOD_PLUGIN_RAN", "info", "the good plugin ran")]
"""
RAISES_IN_VALIDATE = """
from envfence import hookimpl

@hookimpl
def validate(session):
    raise RuntimeError("validator exploded")
"""


def test_plugin_that_fails_to_import_does_not_break_detect(site, make_project, run_cli):
    install_plugin(site, "broken", BROKEN_IMPORT)
    result = run_cli("detect", cwd=make_project())
    assert result.exit_code == 0
    assert "environment  development" in result.stdout
    assert "plugin 'broken' failed to load" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


def test_plugins_lists_failed_plugin_with_reason(site, make_project, run_cli):
    install_plugin(site, "broken", BROKEN_IMPORT)
    records = {r["name"]: r for r in json.loads(run_cli("--json", "plugins", cwd=make_project()).stdout)}
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["distribution"] == "envfence-broken"
    assert records["broken"]["version"] == "1.2.3"
    assert "does_not_exist_anywhere" in records["broken"]["reason"]
    assert records["hostname"]["status"] == "loaded"
    assert records["hostname"]["hooks"] == ["classify_host", "declare_tables", "detect_environment", "host_notes", "pre_run_safety", "validate"]


@pytest.mark.parametrize(
    "name, source, reason",
    [("badargs", BAD_HOOK_ARGS, "nonsense_argument"), ("typo", UNKNOWN_HOOK, "unknown hook(s): validat")],
)
def test_plugin_that_does_not_fit_the_hookspecs_is_failed(site, make_project, run_cli, name, source, reason):
    install_plugin(site, name, source)
    result = run_cli("--json", "plugins", cwd=make_project())
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records[name]["status"] == "failed"
    assert reason in records[name]["reason"]
    assert run_cli("detect", cwd=make_project()).exit_code == 0


def test_third_party_plugin_hooks_run(site, make_project):
    install_plugin(site, "good", GOOD)
    session = envfence.open_session(make_project(), environ={})
    assert "GOOD_PLUGIN_RAN" in session.report.codes()


def test_plugin_raising_in_a_hook_becomes_a_finding_and_others_still_run(site, make_project):
    install_plugin(site, "good", GOOD)
    install_plugin(site, "exploding", RAISES_IN_VALIDATE)
    session = envfence.open_session(make_project(), environ={})
    codes = session.report.codes()
    assert "GOOD_PLUGIN_RAN" in codes
    [error] = [f for f in session.report.findings if f.code == "PLUGIN_ERROR"]
    assert error.plugin == "exploding" and "validator exploded" in error.message
    assert "-p no:exploding" in error.remediation


def test_dash_p_no_disables_a_builtin(make_project, run_cli):
    root = make_project()
    env = {"ENVFENCE_HOSTNAME": "web-prod-01"}
    assert json.loads(run_cli("--json", "detect", cwd=root, env=env).stdout)["environment"] == "production"
    data = json.loads(run_cli("-p", "no:hostname", "--json", "detect", cwd=root, env=env).stdout)
    assert (data["environment"], data["method"], data["host"]["class"]) == ("development", "default", None)
    records = {r["name"]: r for r in json.loads(run_cli("-p", "no:hostname", "--json", "plugins", cwd=root).stdout)}
    assert records["hostname"]["status"] == "disabled"


def test_dash_p_needs_no_colon(make_project, run_cli):
    result = run_cli("-p", "hostname", "detect", cwd=make_project())
    assert result.exit_code == 2
    assert "-p no:NAME" in result.output


def test_disable_variable_blocks_plugins(make_project, run_cli):
    result = run_cli("--json", "detect", cwd=make_project(), env={"ENVFENCE_DISABLE_PLUGINS": "hostname,environment_variable", "ENVIRONMENT": "prod", "ENVFENCE_HOSTNAME": "web-prod-01"})
    assert json.loads(result.stdout)["method"] == "default"


def test_allow_list_loads_only_named_plugins(site, make_project, run_cli):
    install_plugin(site, "good", GOOD)
    records = {r["name"]: r["status"] for r in json.loads(run_cli("--json", "plugins", cwd=make_project(), env={"ENVFENCE_PLUGINS": "dotenv_files,project_root"}).stdout)}
    assert records["dotenv_files"] == records["project_root"] == "loaded"
    assert records["good"] == records["hostname"] == "disabled"


def test_human_plugin_listing_shows_status_and_reason(site, make_project, run_cli):
    install_plugin(site, "broken", BROKEN_IMPORT)
    out = run_cli("plugins", cwd=make_project()).stdout
    assert "broken" in out and "failed" in out and "reason: import failed" in out
    assert "dotenv_files" in out and "hooks: load_config" in out


def test_broken_plugin_in_a_real_process(tmp_path, make_project):
    """The installed console path: a subprocess with the broken distribution on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "broken", BROKEN_IMPORT)
    proc = subprocess.run(
        [sys.executable, "-m", "envfence", "detect"],
        cwd=make_project(), capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "ENVFENCE_HOSTNAME": "box"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "environment  development" in proc.stdout
    assert "plugin 'broken' failed to load" in proc.stderr
    assert "Traceback" not in proc.stderr
