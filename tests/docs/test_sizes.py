"""Sizes: no function over 60 lines and no class over 250, in the core and the built-ins (measured with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMITS = {"function": 60, "class": 250}


def oversized(base: Path) -> set[tuple[str, str, int]]:
    """``(file, name, lines)`` of every function over 60 lines and class over 250 under ``base``."""
    found = set()
    for path in sorted(base.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            kind = "class" if isinstance(node, ast.ClassDef) else "function" if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if kind is not None and node.end_lineno - node.lineno + 1 > LIMITS[kind]:
                found.add((path.relative_to(REPO).as_posix(), node.name, node.end_lineno - node.lineno + 1))
    return found


def test_the_audit_trail_is_split_by_job_within_the_limits():
    assert not {f for f, _, _ in oversized(REPO / "plugins" / "envfence_builtins" / "audit")}
    assert not {(f, n) for f, n, _ in oversized(REPO / "core" / "envfence") if f.endswith(("audit_chain.py", "keyring.py"))}


def test_no_builtin_function_or_class_is_over_the_limits():
    assert sorted(oversized(REPO / "plugins" / "envfence_builtins")) == [], "split it: functions stay under 60 lines, classes under 250"


def test_no_core_function_or_class_is_over_the_limits():
    assert oversized(REPO / "core" / "envfence") == set()
