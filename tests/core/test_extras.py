"""A missing optional dependency names the extra that brings it: exit 4 and the pip line, never "internal error"."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envfence.extras import extra_for

SETTINGS = """
[automations.noop]
run = "true"
"""
#: Only `store` commands need a store; elsewhere it would make reads reach for it.
STORE = """
[store]
url = "postgresql://envfence@127.0.0.1:9/envfence"
"""

#: Each user-facing extra, a module it brings, and a command that needs it.
CASES = [
    ("encryption", "cryptography", ["--env", "production", "secret", "keygen"]),
    ("metrics", "prometheus_client", ["metrics"]),
    ("report", "matplotlib", ["report", "--html", "out.html"]),
    ("serve", "waitress", ["--env", "development", "serve"]),
    ("postgres", "psycopg", ["store", "check"]),
]


def run_without(module: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter where ``module`` cannot be imported, as in a venv without it."""
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        f"sys.argv = ['envfence'] + {args!r}\n"
        "from envfence.cli import main\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("extra", "module", "args"), CASES, ids=[case[0] for case in CASES])
def test_a_missing_extra_is_named_with_its_install_line(tmp_path, extra, module, args):
    (tmp_path / "envfence.toml").write_text(SETTINGS + (STORE if extra == "postgres" else ""))
    result = run_without(module, args, tmp_path)
    assert result.returncode == 4, result.stderr
    assert f"needs {module}, which is not installed" in result.stderr
    assert f"pip install 'envfence[{extra}]'" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_missing_extra_under_json_is_a_json_error(tmp_path):
    (tmp_path / "envfence.toml").write_text(SETTINGS)
    result = run_without("prometheus_client", ["--json", "metrics"], tmp_path)
    assert result.returncode == 4
    error = json.loads(result.stdout)
    assert error["exit_code"] == 4 and "envfence[metrics]" in error["hint"]


def test_the_hint_comes_from_the_declared_extras_not_the_test_extra():
    # cryptography is in both `encryption` and `test`; a user is told the first.
    assert extra_for("cryptography.fernet") == "encryption"
    assert extra_for("prometheus_client") == "metrics"
    # a module only the project's own tests need is not offered to users
    assert extra_for("aiosmtpd") is None
    assert extra_for("no_such_module_anywhere") is None


def test_a_module_of_no_extra_is_still_an_internal_error(tmp_path):
    # Blocking a required dependency is a broken install, not an extra to add.
    (tmp_path / "envfence.toml").write_text(SETTINGS)
    result = run_without("sqlite3", ["status"], tmp_path)
    assert result.returncode != 4
