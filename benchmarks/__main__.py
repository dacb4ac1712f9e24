"""``python -m benchmarks``: run every case and print the markdown report.

    python -m benchmarks                       # the full run (`make bench`)
    python -m benchmarks --smoke               # smallest size, one round: checks it still works
    python -m benchmarks --sizes 10,1000 --rounds 5 --output report.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .cases import Plan, run_all
from .report import render
from .timing import BenchmarkError


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 10,1000") from None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 when they ran (missed targets are reported, not failed)."""
    defaults = Plan()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_counts, default=defaults.sizes, help="project sizes in keys (default 10,1000,10000)")
    parser.add_argument("--plugins", type=_counts, default=defaults.plugin_counts, help="installed plugin counts (default 0,10,50)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds of the cold cases (default %(default)s)")
    parser.add_argument("--audit", type=_counts, default=defaults.audit_sizes, help="audit trail lengths in records (default 1000,100000,1000000)")
    parser.add_argument("--smoke", action="store_true", help="the smallest size, one round, no warm-up")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        plan = Plan(sizes=(min(args.sizes),), plugin_counts=args.plugins, rounds=1, warmup=False, audit_sizes=(100, 1_000), audit_rounds=1)
    else:
        plan = Plan(sizes=args.sizes, plugin_counts=args.plugins, rounds=args.rounds, audit_sizes=args.audit)
    with tempfile.TemporaryDirectory(prefix="envfence-bench-") as tmp:
        try:
            tables, targets = run_all(Path(tmp), plan)
        except BenchmarkError as exc:
            print(f"benchmarks: error: {exc}", file=sys.stderr)
            return 1
    report = render(tables, targets)
    print(report)
    if args.output:
        args.output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
