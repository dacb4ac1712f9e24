"""``envfence ARGS`` in a new interpreter, and the modules it imported: how the suite checks what a command loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Mapping

#: Runs the CLI in this interpreter, then prints its exit code and every imported module after its own output.
_PROBE = r"""
import json, sys
from envfence.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="envfence")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def envfence_in_new_process(root: Path, *args: str, env: Mapping[str, str]) -> tuple[int | str, str, str, set[str]]:
    """Run ``envfence ARGS`` in ``root`` with environment ``env``: (exit code, output, stderr, imported modules)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=root, capture_output=True, text=True, timeout=120,
                          env=dict(env))
    output, _, tail = done.stdout.rpartition("\n@@")
    assert tail, done.stderr
    result = json.loads(tail)
    return result["code"], output, done.stderr, set(result["modules"])
