"""``python -m benchmarks``: run every case and print the markdown report.

    python -m benchmarks --write               # the full run (`make bench`): also rewrites the results in the docs
    python -m benchmarks --large               # adds 100,000 keys and 50 environments at 10,000 keys
    python -m benchmarks --smoke               # smallest sizes, one round: checks it still works
    python -m benchmarks --sizes 10,1000 --rounds 5 --output report.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import attrs

from .cases import Plan, run_all
from .report import header, render, targets, write_section
from .timing import BenchmarkError

REPO = Path(__file__).resolve().parents[1]
#: The pages ``--write`` updates: the whole report, and the targets where the docs speak of them.
README = REPO / "benchmarks" / "README.md"
PERFORMANCE = REPO / "docs" / "performance.md"


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 10,1000") from None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 when they ran (missed targets are reported, not failed)."""
    defaults = Plan()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_counts, help="in-process and cold project sizes in keys (default 10,1000,10000)")
    parser.add_argument("--plugins", type=_counts, default=defaults.plugin_counts, help="installed plugin counts (default 0,10,50)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds of the cold cases (default %(default)s)")
    parser.add_argument("--large", action="store_true", help="the long sizes: 100,000 keys, 50 environments at 10,000 keys, 1,000,000 audit records and recorded runs")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes, one round, no warm-up")
    parser.add_argument("--audit", type=_counts, help="audit trail lengths in records (default 1000,100000,1000000)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--write", action="store_true",
                        help="put the report into benchmarks/README.md and the targets into docs/performance.md")
    args = parser.parse_args(argv)
    if args.smoke and args.write:
        parser.error("--smoke measures nothing worth publishing: leave out --write")
    if args.smoke:
        plan = Plan.quick(plugin_counts=args.plugins)
    elif args.large:
        plan = Plan.large(rounds=args.rounds)
    else:
        plan = Plan(plugin_counts=args.plugins, rounds=args.rounds)
    if args.sizes and not args.smoke:
        plan = attrs.evolve(plan, sizes=args.sizes)
    head = header()  # before anything is written: it says whether the measured tree had uncommitted changes
    if args.audit and not args.smoke:
        plan = attrs.evolve(plan, audit_sizes=args.audit)
    with tempfile.TemporaryDirectory(prefix="envfence-bench-") as tmp:
        try:
            tables, met = run_all(Path(tmp), plan)
        except BenchmarkError as exc:
            print(f"benchmarks: error: {exc}", file=sys.stderr)
            return 1
    report = render(tables, met, head)
    print(report)
    if args.output:
        args.output.write_text(report + "\n")
    if args.write:
        write_section(README, report.replace("\n### ", "\n#### "))
        write_section(PERFORMANCE, "\n".join(head + [""] + targets(met)[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
