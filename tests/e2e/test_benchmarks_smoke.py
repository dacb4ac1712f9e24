"""The benchmarks run at their smallest size, so they cannot rot unnoticed.

Nothing here is timed: the point is that `make bench` still works, that the
contenders still load the same configuration, and that the generated plugin
distributions are still found (the benchmark itself stops when they are not).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmarks_run_at_the_smallest_size_and_clean_up(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    report = tmp_path / "report.md"
    environ = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(report)],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert text.strip() == done.stdout.strip()
    for title in ("### In process", "### Cold command", "### Import", "### Plugin scaling", "### Webhook receiver",
                  "### Audit trail scaling", "### Against the targets"):
        assert title in text
    assert "| 1,000 records | audit show --last 10 | " in text and "peak memory at most 50 MiB" in text
    # envfence and python-dotenv are always there; the others are measured or marked as skipped.
    assert "| 10 keys | envfence | " in text
    assert "| 10 keys | python-dotenv | " in text
    assert "| 10 keys | dynaconf | " in text and "| 10 keys | pydantic-settings | " in text
    for count in (0, 10, 50):
        assert f"| envfence detect, {count} plugins | " in text
    assert "50 installed plugins add at most 30 ms" in text
    assert "| throughput | envfence serve | " in text and "webhook p99 under 50 ms at 100 req/s" in text
    # The generated projects and plugin distributions are gone.
    assert list(scratch.iterdir()) == []
