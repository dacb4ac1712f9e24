"""The demo: the sample project's automation checked and run, no account, no network.

Run it with `make demo` from the repository root. Each step runs the real
`envfence` command line in this directory and prints what it printed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVFENCE = [sys.executable, "-m", "envfence"]


def step(title: str, *args: str, env: dict[str, str] | None = None, expect: int = 0) -> None:
    """Run one envfence command and show it as a user would type it."""
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m== {title}\033[0m" if bold else f"\n== {title}")
    shown = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    print(f"$ {shown + ' ' if shown else ''}envfence {shlex.join(args)}", flush=True)
    proc = subprocess.run([*ENVFENCE, *args], cwd=HERE, env={**os.environ, **(env or {})})
    if proc.returncode != expect:
        sys.exit(f"demo step failed: expected exit {expect}, got {proc.returncode}")


def main() -> None:
    # The demo's host pretends to be a developer's laptop, so detection and
    # the guards behave the same on every machine.
    base = {"ENVFENCE_HOSTNAME": "dev-laptop-07"}
    os.environ.update(base)
    os.environ.pop("ENVIRONMENT", None)
    step("Which environment is this, and why?", "detect")
    step("The development configuration, with provenance and masked secrets", "config", "show", "--explain")
    step("The same project as production sees it", "--env", "production", "config", "show", "--explain")
    step("Production, as automation reads it", "--env", "prod", "--json", "detect")
    step("Every hook, and the plugins that answer it in call order", "plugins", "--hooks")
    step("Each hook call traced: plugins, timings, who answered", "-q", "detect", env={"ENVFENCE_TRACE_PLUGINS": "1"})
    print("\ndemo finished")


if __name__ == "__main__":
    main()
