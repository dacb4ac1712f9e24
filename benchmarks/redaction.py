"""Redaction: the engine against a compiled regular expression, and what validation and check cost.

Two cases:

- **Engine**: envfence's :class:`~envfence.redaction.Redactor` (one
  Aho-Corasick automaton, pyahocorasick) against one compiled regular
  expression of the same forms, longest first, with the same whole-token rule,
  at N secrets: building it, then masking a 16 KB log with some secrets in it.
  Both must produce the same text before anything is timed.
- **Validation and check**: at each project size, ``Session.validate()``
  against loading (``open_session``), in process; and the cold commands
  ``envfence check`` against ``envfence detect``.
"""

from __future__ import annotations

import random
import re
import time
from typing import Callable

from .projects import Project
from .timing import BenchmarkError, alternate, command, median_ms, spread

#: How many secrets the engine case masks.
SECRET_COUNTS = (10, 1_000, 10_000)


def _values_only(secrets: list[str]):
    """envfence's engine without the shapes (the bearer pattern), which both engines would share."""
    from envfence.redaction import Redactor

    redactor = Redactor(secrets)
    redactor._shapes = ()
    return redactor


class RegexRedactor:
    """The contender: every form of every secret in one alternation (Python's ``re`` has no trie)."""

    def __init__(self, secrets: list[str]) -> None:
        from envfence.redaction import MIN_MASKED_LENGTH, forms

        every = sorted({f for s in secrets if len(s) >= MIN_MASKED_LENGTH for f in forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, every))) if every else None

    def __call__(self, text: str) -> str:
        from envfence.models import MASK
        from envfence.redaction import _whole_word_only, _wordy

        def sub(m: re.Match[str]) -> str:
            s, e = m.span()
            if _whole_word_only(m.group()) and ((e < len(text) and _wordy(text[e])) or (s > 0 and _wordy(text[s - 1]))):
                return m.group()
            return MASK

        return self._pattern.sub(sub, text) if self._pattern is not None else text


def _secrets(count: int) -> list[str]:
    rng = random.Random(count)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    # No shared prefix: a literal prefix would let ``re`` skip most positions, which real secrets do not allow.
    return ["".join(rng.choice(alphabet) for _ in range(28)) for _ in range(count)]


def _log(secrets: list[str], size: int = 16 * 1024) -> str:
    rng = random.Random(size)
    lines, total = [], 0
    while total < size:
        line = f"2026-01-01 12:00:{rng.randrange(60):02d} INFO synced record {rng.randrange(10**6)} of table Jobs"
        if rng.random() < 0.02:
            line += f" with {rng.choice(secrets)}"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _timed(fn: Callable[[], object]) -> Callable[[], float]:
    def measure() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    return measure


def engine_case(plan):
    """Case 5: build and use the redaction engine, pyahocorasick against one compiled regular expression."""
    from .cases import Row, Table, Target

    counts = SECRET_COUNTS if plan.rounds > 1 else SECRET_COUNTS[:1]
    rounds = max(1, plan.rounds // 3)
    rows, targets = [], []
    for count in counts:
        secrets = _secrets(count)
        text = _log(secrets)
        if _values_only(secrets)(text) != RegexRedactor(secrets)(text):
            raise BenchmarkError(f"the two engines mask {count} secrets differently")
        for what, measures in (
            ("build", {"pyahocorasick": _timed(lambda: _values_only(secrets)("x")), "compiled regex": _timed(lambda: RegexRedactor(secrets))}),
            ("mask 16 KB", _mask_measures(secrets, text)),
        ):
            times = alternate(measures, rounds, warmup=plan.warmup)
            ref = median_ms(times["pyahocorasick"])
            group = f"{count:,} secrets, {what}"
            for name, samples in times.items():
                rows.append(Row(group, name, median_ms(samples), median_ms(samples) / ref, spread=spread(samples)))
        total = {name: sum(r.median_ms for r in rows if r.contender == name and r.group.startswith(f"{count:,} ")) for name in ("pyahocorasick", "compiled regex")}
        ratio = total["compiled regex"] / total["pyahocorasick"]
        if count >= 1_000:  # with a handful of secrets both take a millisecond; the choice is about scale
            targets.append(Target(f"redaction, {count:,} secrets: the kept engine (pyahocorasick) is the faster", f"regex takes {ratio:.2f}x", ratio >= 1))
    table = Table(
        "Redaction engine: pyahocorasick against a compiled regular expression",
        "Building the engine for N secrets (every form of each: escaped, JSON, URL-encoded), then masking a 16 KB "
        "log in which 2% of the lines hold a secret; both engines give the same text.",
        "pyahocorasick", f"{rounds} per size", tuple(rows),
    )
    return table, targets


def _mask_measures(secrets: list[str], text: str) -> dict[str, Callable[[], float]]:
    aho, regex = _values_only(secrets), RegexRedactor(secrets)
    aho("x")  # built outside the timing
    return {"pyahocorasick": _timed(lambda: aho(text)), "compiled regex": _timed(lambda: regex(text))}


def validation_case(projects: dict[int, Project], plan, environ: dict[str, str], bin_dir) -> tuple:
    """Case 6: validation against loading, in process; ``check`` against ``detect``, cold."""
    import envfence
    from envfence.plugins import PluginManager

    from .cases import Row, Table, Target

    plugins = PluginManager.from_entry_points()
    rows, targets, counts = [], [], []
    for size, project in projects.items():
        rounds = plan.rounds if size <= 1_000 else max(1, min(plan.rounds, 3))
        counts.append(f"{rounds} at {size:,} keys")

        def load(project=project):
            return envfence.open_session(root=project.root, env="production", environ=environ, plugins=plugins)

        opened = []

        def validate() -> float:
            session = load()  # untimed: only the validation is measured
            started = time.perf_counter()
            opened.append(len(session.validate()))
            return time.perf_counter() - started

        in_process = alternate({"load": _timed(load), "validate": validate}, rounds, warmup=plan.warmup)
        cold = alternate(
            {
                "envfence detect": command([str(bin_dir / "envfence"), "--root", str(project.root), "detect"], cwd=project.root, env=environ),
                "envfence check": _check_command(bin_dir, project, environ),
            },
            rounds, warmup=plan.warmup,
        )
        group = f"{size:,} keys"
        for times, reference in ((in_process, "load"), (cold, "envfence detect")):
            ref = median_ms(times[reference])
            for name, samples in times.items():
                rows.append(Row(group, name, median_ms(samples), median_ms(samples) / ref, spread=spread(samples)))
        ratio = median_ms(in_process["validate"]) / median_ms(in_process["load"])
        limit = 1.5 if size <= 10_000 else 2.0
        if size >= 10_000:
            targets.append(Target(f"validation, {group}: within {limit}x of loading", f"{ratio:.2f}x", ratio <= limit))
        check = median_ms(cold["envfence check"]) / median_ms(cold["envfence detect"])
        if size >= 100_000:
            targets.append(Target(f"`check`, {group}: within 3x of `detect`", f"{check:.2f}x", check <= 3))
    table = Table(
        "Validation and check",
        "`Session.validate()` (every validator, findings redacted) against `open_session` in process, and the cold "
        "commands `envfence check` against `envfence detect`, in production.",
        "load / envfence detect", ", ".join(counts), tuple(rows),
    )
    return table, targets


def _check_command(bin_dir, project: Project, environ: dict[str, str]) -> Callable[[], float]:
    """``envfence check`` exits 1 on findings (the generated projects have some): time it whatever it says."""
    import subprocess

    argv = [str(bin_dir / "envfence"), "--root", str(project.root), "check"]

    def measure() -> float:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=project.root, env=environ, capture_output=True)
        took = time.perf_counter() - started
        if done.returncode not in (0, 1):
            raise BenchmarkError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')[-400:]}")
        return took

    return measure
