"""The core stays small enough to read: no class over 250 lines, no function over 60, Session included."""

from __future__ import annotations

import ast
from pathlib import Path

import envfence

CORE = Path(envfence.__file__).resolve().parent


def _sizes():
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield f"{path.relative_to(CORE)}:{node.name}", node, node.end_lineno - node.lineno + 1


def test_no_core_function_is_over_60_lines():
    long = [f"{name} ({lines})" for name, node, lines in _sizes() if not isinstance(node, ast.ClassDef) and lines > 60]
    assert not long, f"functions over 60 lines: {long}"


def test_no_core_class_is_over_250_lines():
    long = {name: lines for name, node, lines in _sizes() if isinstance(node, ast.ClassDef) and lines > 250}
    assert not long, f"classes over 250 lines: {long}"
    assert "pipeline.py:Session" in {name for name, node, _ in _sizes() if isinstance(node, ast.ClassDef)}
