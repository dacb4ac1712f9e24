"""The embedding API is typed: `mypy --strict` accepts a correct program and plugin, and reports wrong uses.

``tests/core/typed/embedding.py`` is a tool embedding envfence, ``wrong_use.py``
the mistakes such a tool can make (each line marked ``# wrong``); the plugin is
the one ``envfence plugin new`` scaffolds. With untyped public names
(``open_session(*args: Any)``, ``credential() -> Any``) the wrong uses pass.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install -e '.[test]'")

SAMPLES = Path(__file__).parent / "typed"


def mypy_errors(cache: Path, *paths: Path) -> dict[tuple[str, int], str]:
    """`mypy --strict` on ``paths``: its errors by (file name, line); an empty dict when it accepts them."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(cache), *map(str, paths)],
        capture_output=True, text=True,
    )
    errors: dict[tuple[str, int], str] = {}
    for match in re.finditer(r"^(.+?):(\d+): error: (.*)$", proc.stdout, re.M):
        key = (Path(match[1]).name, int(match[2]))
        errors[key] = errors.get(key, "") + match[3]
    assert proc.returncode == (1 if errors else 0), proc.stdout + proc.stderr
    return errors


def marked_lines(path: Path) -> set[tuple[str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {(path.name, number) for number, line in enumerate(lines, 1) if re.search(r"  # wrong\b", line)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One mypy cache for these tests (and the other test processes'): typeshed and envfence are read once."""
    return tmp_path_factory.getbasetemp().parent / "mypy-cache"


@pytest.fixture
def scaffolded(envfence_project, tmp_path) -> Path:
    result = envfence_project.run("plugin", "new", "acme-billing", "--dir", str(tmp_path / "plugins"))
    assert result.exit_code == 0, result.output
    return tmp_path / "plugins" / "envfence-acme-billing"


def test_a_correct_embedding_program_and_the_scaffolded_plugin_pass_mypy_strict(scaffolded, cache):
    errors = mypy_errors(
        cache, SAMPLES / "embedding.py", scaffolded / "envfence_acme_billing", scaffolded / "tests"
    )
    assert errors == {}


def test_mypy_strict_reports_every_wrong_use_of_the_api_and_nothing_else(cache):
    sample = SAMPLES / "wrong_use.py"
    errors = mypy_errors(cache, sample)
    assert set(errors) == marked_lines(sample), errors
    assert len(marked_lines(sample)) >= 8


def test_mypy_strict_reports_a_plugin_that_misreads_the_session(scaffolded, cache):
    module = scaffolded / "envfence_acme_billing" / "__init__.py"
    text = module.read_text(encoding="utf-8")
    # A key that may be unset, treated as set; a severity given as a number.
    text = text.replace("if session.config.credential_key(key) is None:", "if session.config.credential_key(key).endswith('_URL'):  # wrong")
    text = text.replace('severity=session.profile.escalate("warning"),', "severity=session.profile.escalate(2),  # wrong")
    module.write_text(text, encoding="utf-8")
    errors = mypy_errors(cache, module)
    assert set(errors) == marked_lines(module), errors
    assert len(marked_lines(module)) == 2
