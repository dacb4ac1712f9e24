"""A run's steps each have one owner: decide, execute, record; the runner only sequences them."""

from __future__ import annotations

import ast
from pathlib import Path

import envfence

CORE = Path(envfence.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against envfence's package."""
    package = ".".join(("envfence", *path.relative_to(CORE).parent.parts))
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_stage_of_a_run_calls_back_into_the_runner():
    for stage in sorted((CORE / "runs").glob("*.py")):
        assert "envfence.runner" not in _imports(stage), f"{stage.name} imports the runner"


def test_the_core_adds_no_log_sink_and_imports_loguru_only_for_the_sessions_logger():
    users = sorted(str(p.relative_to(CORE)) for p in CORE.rglob("*.py") if "loguru" in _imports(p))
    assert users == ["session_logging.py"]  # Session.logger hands out a loguru logger; sinks come from the logging plugin
    for path in CORE.rglob("*.py"):
        assert "logger.add(" not in path.read_text(encoding="utf-8"), path
