"""The docs site, built once per test run (``mkdocs build --strict``) for every test that reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def strict_build(tmp_path_factory, run_once) -> dict:
    """``{"site", "returncode", "stderr"}`` of ``mkdocs build --strict`` of this checkout's docs, made once for the run."""

    def build() -> dict:
        target = tmp_path_factory.mktemp("site")
        built = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
            cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300,
        )
        return {"site": str(target), "returncode": built.returncode, "stderr": built.stderr}

    return run_once("docs-site", build)


@pytest.fixture
def site(strict_build) -> Path:
    """The built site's directory (the build passed ``--strict``)."""
    assert strict_build["returncode"] == 0, strict_build["stderr"]
    return Path(strict_build["site"])
