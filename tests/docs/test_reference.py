"""The docs keep up with the code: generated reference pages, and the two meta-tests."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference", REPO / "docs" / "_hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hookspecs():
    from envfence import hookspecs

    return {name: f for name, f in vars(hookspecs).items() if hasattr(f, "envfence_spec")}


def test_every_hookspec_is_documented(reference):
    page = reference.hook_reference()
    for name, function in _hookspecs().items():
        doc = inspect.getdoc(function) or ""
        assert doc, f"hookspec {name} has no docstring"
        for param in inspect.signature(function).parameters:
            assert f":param {param}:" in doc, f"hookspec {name} does not document its argument {param!r}"
        section = page.split(f"\n### {name}\n", 1)
        assert len(section) == 2, f"hook reference has no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        for param in inspect.signature(function).parameters:
            assert f"- `{param}`: " in body, f"hook reference for {name} does not list {param!r}"
        firstresult = function.envfence_spec.get("firstresult", False)
        assert ("*firstresult" in body) == firstresult, f"hook reference gets {name}'s firstresult wrong"


def _test_function_names() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    names = set()
    for folder in config["tool"]["pytest"]["ini_options"]["testpaths"]:
        for path in (REPO / folder).rglob("test_*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    names.add(node.name)
    return names


def test_every_hookspec_is_exercised_by_a_test():
    names = _test_function_names()
    untested = [hook for hook in _hookspecs() if not any(n == f"test_hook_{hook}" or n.startswith(f"test_hook_{hook}_") for n in names)]
    assert not untested, f"no test_hook_<name> test for: {', '.join(untested)}"


def test_cli_reference_covers_every_command_and_option(reference):
    page = reference.cli_reference()
    from envfence.cli import COMMANDS

    for name in COMMANDS:
        assert f"\n## envfence {name}\n" in page
    assert "- `--strict-plugins`: " in page
    assert "\n## envfence plugin new\n" in page and "- `--dir DIRECTORY`: Where to create" in page
    assert "\b" not in page


def test_mkdocs_build_is_strict_and_includes_generated_pages(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    hooks = (site / "reference" / "hooks" / "index.html").read_text(encoding="utf-8")
    assert 'id="register_automations"' in hooks
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "envfence plugins" in cli and "--hooks" in cli
