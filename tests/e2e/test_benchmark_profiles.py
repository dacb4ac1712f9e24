"""A missed target comes with the profile that explains it: imports by owner, then the rest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.cases import Target
from benchmarks.profiles import call_profile, import_profile, owner, parse_importtime
from benchmarks.report import targets


def test_modules_are_told_apart_by_who_brings_them():
    assert owner("envfence.models") == "envfence core"
    assert owner("envfence_builtins.store.postgres_store") == "built-in plugins"
    assert owner("envfence_slack") == "plugins"
    assert owner("json.decoder") == "stdlib" and owner("_hashlib") == "stdlib"
    assert owner("click.core") == "click"


def test_the_interpreters_own_import_timings_are_read_and_grouped(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    line = import_profile([sys.executable, "-c", "import json, click"], Path(tmp_path), environ)
    assert line.startswith("under -X importtime, ")
    # What the command imported is named by owner, with its module count; what is left is the work.
    assert " stdlib " in line and " click " in line and "modules imported" in line
    assert line.rstrip().endswith("ms") and "the command's work" in line
    count = int(line.split(", ", 1)[1].split(" modules", 1)[0])
    assert count >= 10  # json and click pull several modules each


def test_importtime_lines_give_each_modules_own_microseconds():
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _json\n"
        "import time:       900 |       1020 | json\n"
        "some other line on stderr\n"
    )
    assert parse_importtime(text) == [("_json", 120), ("json", 900)]


def test_a_call_profile_names_the_costliest_functions():
    def slow_part():
        return sum(i * i for i in range(20_000))

    def call():
        return slow_part()

    line = call_profile(call, calls=5, steps=[slow_part])
    assert line.startswith("steps (cumulative, ms): slow_part ")
    assert "under cProfile, a call's own time " in line
    assert "slow_part" in line.split("own time", 1)[1] or "genexpr" in line


def test_only_a_missed_target_shows_its_profile():
    rows = targets([
        Target("cold detect within 1.3x", "1.8x", False, why="under -X importtime, 240 modules imported in 90 of 130 ms"),
        Target("a met one", "0.9x", True, why="never shown"),
    ])
    assert "| what the profile shows |" in rows[2]
    missed = next(r for r in rows if r.startswith("| cold detect"))
    assert "**missed** | under -X importtime, 240 modules" in missed
    met = next(r for r in rows if r.startswith("| a met one"))
    assert "never shown" not in met
