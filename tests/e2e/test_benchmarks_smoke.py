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

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.heavy
def test_benchmarks_run_at_the_smallest_size_and_clean_up(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    report = tmp_path / "report.md"
    environ = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(report)],
        # A guard against a hang, not a timing: a loaded machine may take minutes.
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert text.strip() == done.stdout.strip()
    for title in ("### In process", "### Cold command", "### Run", "### Run: limits", "### Import", "### Plugin scaling",
                  "### Scaling with keys", "### Scaling with environments", "### Scaling with history",
                  "### Webhook receiver", "### Watching the configuration", "### Audit trail scaling", "### Against the targets"):
        assert title in text
    # Every measured row has a spread, and the scaling cases a peak memory.
    tables = text.split("### Against the targets")[0]
    measured = [line for line in tables.splitlines() if line.startswith("| ") and " ms | " in line]
    assert measured and all("one round" in line or "range " in line for line in measured), measured
    assert "| 100 keys | envfence --json config show | " in text and " MiB |" in text
    assert "| 1,000 records | audit show --last 10 | " in text and "peak memory at most 50 MiB" in text
    # The analyses and metrics run on the smoke history too: their code paths cannot rot between full runs.
    for name in ("status", "list", "health", "advise", "report", "metrics"):
        assert f"| 100 runs | envfence {name} | " in text, name
    # envfence and python-dotenv are always there; the others are measured or marked as skipped.
    assert "| 10 keys | envfence | " in text and "| 10 keys | envfence, load only | " in text
    assert "| 10 keys | python-dotenv, interpolate=False | " in text
    assert "| 10 keys | python-dotenv | " in text
    assert "| 10 keys | dynaconf | " in text and "| 10 keys | pydantic-settings | " in text
    for count in (0, 10, 50):
        assert f"| envfence detect, {count} plugins | " in text
    assert "50 installed plugins add at most 30 ms" in text
    assert "| throughput | envfence serve | " in text and "webhook p99 under 50 ms at 100 req/s" in text
    # The generated projects and plugin distributions are gone.
    assert list(scratch.iterdir()) == []


def test_the_results_section_is_replaced_and_the_rest_of_the_page_kept(tmp_path):
    from benchmarks.report import BEGIN, END, write_section

    page = tmp_path / "README.md"
    page.write_text("# Benchmarks\n\nHow it measures.\n")
    write_section(page, "first run")
    write_section(page, "second run")
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nHow it measures.\n")
    assert "second run" in text and "first run" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_smoke_results_are_never_written_into_the_docs():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--write"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "leave out --write" in done.stderr
