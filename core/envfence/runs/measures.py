"""What a job reports about its own work: business metrics and the time of its steps.

A function automation calls ``ctx.metric("records_synced", 42, unit="records")``
and ``with ctx.step("fetch"): ...``. A command automation writes lines to the
file named by ``ENVFENCE_METRICS_FILE`` (the line protocol, one fact a line)::

    metric records_synced 42 records     # metric NAME VALUE [UNIT]
    step fetch 1.25                      # step NAME SECONDS
    # a comment; blank lines are ignored

A later value of a metric replaces an earlier one (report the total once);
a step's seconds add up when the same step runs again. Names are
``[A-Za-z_][A-Za-z0-9_]*`` (they become Prometheus label values and settings
keys such as ``min_records_synced``), at most 64 characters; a unit is at most
32 characters of ``[A-Za-z0-9_%/.-]``. A line that breaks the protocol is
skipped with a warning naming the line; it never changes the run's result.
What the job reported is kept with the run (``RunOutcome.metrics["business"]``
and ``["steps"]``) by the history.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from typing import Any, Callable, Iterator

#: The variable that names the metrics file of a command automation.
METRICS_FILE_VARIABLE = "ENVFENCE_METRICS_FILE"
#: The most of the metrics file that is read (a runaway job cannot fill memory).
MAX_FILE_BYTES = 1024 * 1024
#: The most metrics and steps one run keeps.
MAX_ENTRIES = 200
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_UNIT = re.compile(r"^[A-Za-z0-9_%/.-]{1,32}$")


class MeasureError(ValueError):
    """A metric or step that cannot be kept: the message says which and why."""


def _name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MeasureError(f"{what} name {str(name)[:80]!r} is not a name: use letters, digits and _ (64 at most), e.g. records_synced")
    return name


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MeasureError(f"{what}: {str(value)[:80]!r} is not a finite number")
    return float(value)


class Measures:
    """The metrics and step times one run reports."""

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        self.metrics: dict[str, dict[str, Any]] = {}
        self.steps: dict[str, float] = {}
        self.retries = 0  #: calls ``ctx.retry`` tried again
        self._redact = redact or (lambda text: text)

    def _room(self, table: dict, name: str) -> None:
        if name not in table and len(self.metrics) + len(self.steps) >= MAX_ENTRIES:
            raise MeasureError(f"more than {MAX_ENTRIES} metrics and steps in one run: {name!r} is not kept")
        if self._redact(name) != name:
            raise MeasureError("a metric or step name holds a secret value: it is not kept")

    def metric(self, name: str, value: float, unit: str | None = None) -> None:
        """Keep business metric ``name`` = ``value`` (a later value replaces it); :class:`MeasureError` when invalid."""
        name = _name(name, "metric")
        number = _number(value, f"metric {name}")
        if unit is not None and (not isinstance(unit, str) or not _UNIT.match(unit)):
            raise MeasureError(f"metric {name}: unit {str(unit)[:40]!r} is not a unit (32 characters of letters, digits, _ % / . -)")
        self._room(self.metrics, name)
        if unit is not None and self._redact(unit) != unit:
            raise MeasureError(f"metric {name}: the unit holds a secret value: it is not kept")
        self.metrics[name] = {"value": int(number) if number.is_integer() and abs(number) < 2**53 else number, "unit": unit}

    def add_step(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to step ``name``."""
        name = _name(name, "step")
        seconds = _number(seconds, f"step {name}")
        if seconds < 0:
            raise MeasureError(f"step {name}: {seconds} seconds is negative")
        self._room(self.steps, name)
        self.steps[name] = self.steps.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step ``name`` (kept whether the block succeeds or raises)."""
        _name(name, "step")
        started = time.monotonic()
        try:
            yield
        finally:
            self.add_step(name, time.monotonic() - started)

    def read_lines(self, lines: list[str], where: str) -> list[str]:
        """Take the line protocol; returns a warning (naming ``where`` and the line) for each line skipped."""
        warnings = []
        for number, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            try:
                kind = words[0]
                if kind == "metric" and len(words) in (3, 4):
                    self.metric(words[1], _parse_number(words[2]), words[3] if len(words) == 4 else None)
                elif kind == "step" and len(words) == 3:
                    self.add_step(words[1], _parse_number(words[2]))
                else:
                    raise MeasureError("expected 'metric NAME VALUE [UNIT]' or 'step NAME SECONDS'")
            except MeasureError as exc:
                warnings.append(f"{where}:{number}: {self._redact(str(exc))}; line skipped")
        return warnings

    def as_metrics(self) -> dict[str, Any]:
        """What goes into ``RunOutcome.metrics``: ``business``, ``steps`` and ``retries`` (only those reported)."""
        found: dict[str, Any] = {}
        if self.metrics:
            found["business"] = {k: dict(v) for k, v in self.metrics.items()}
        if self.steps:
            found["steps"] = {k: round(v, 6) for k, v in self.steps.items()}
        if self.retries:
            found["retries"] = self.retries
        return found


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MeasureError(f"{text[:40]!r} is not a number") from None


def read_metrics_file(paths: Any, path: Any, measures: Measures, where: str) -> list[str]:
    """Read a command's metrics file into ``measures``; returns the warnings.

    The file is opened without following a link the job may have put in its
    place, and only its first :data:`MAX_FILE_BYTES` are read.
    """
    import os

    from .. import files

    problem = files.check_file(paths, path)
    if problem is not None:
        return [f"{where}: {problem}; the job's metrics were not read"] if problem != "outside" else []
    try:
        # O_NONBLOCK: a FIFO the job put there since the check above cannot hang the run's end.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return []  # the job removed it: nothing reported
    except OSError as exc:
        return [f"{where}: cannot read ({exc.strerror}); the job's metrics were not read"]
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return [f"{where}: not a regular file; the job's metrics were not read"]
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    warnings = [] if len(data) <= MAX_FILE_BYTES else [f"{where}: larger than {MAX_FILE_BYTES} bytes; the rest was not read"]
    text = data[:MAX_FILE_BYTES].decode("utf-8", errors="replace")
    return warnings + measures.read_lines(text.splitlines(), where)


def disk_sample(paths: Any) -> dict[str, int]:
    """Free and total bytes of the file system under the environment's tree, at the end of a run (for disk forecasts)."""
    import shutil

    if paths is None or not paths.base.exists():
        return {}
    try:
        usage = shutil.disk_usage(paths.base)
    except OSError:
        return {}
    return {"disk_free_bytes": usage.free, "disk_total_bytes": usage.total}


@contextlib.contextmanager
def metrics_file(session: Any, run_id: str, measures: Measures | None, show: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """``ENVFENCE_METRICS_FILE`` for a command's run: an empty owner-only file in ``metrics/`` of the tree, read when it ends.

    Nothing (no variable) without ``measures``. Problems with what the job
    wrote are passed to ``show`` as warnings; they never change the run's result.
    """
    if measures is None or session.paths is None:
        yield {}
        return
    from pathlib import Path

    from ..files import profile_modes, remove, write_atomic

    dir_mode, file_mode = profile_modes(session.profile)
    # A scratch file, removed when the run ends: not flushed to disk (two fsyncs less before every command).
    path = write_atomic(session.paths, Path("metrics", f"{run_id}.txt"), b"", mode=file_mode, dir_mode=dir_mode, durable=False)
    try:
        yield {METRICS_FILE_VARIABLE: str(path)}
    finally:
        for warning in read_metrics_file(session.paths, path, measures, f"{METRICS_FILE_VARIABLE} ({path.name})"):
            show(f"envfence: warning: {warning}")
        with contextlib.suppress(Exception):
            remove(session.paths, path)


#: What a run reported beyond envfence's own measurements: kept as JSON in a ``measures`` column by each history.
MEASURED = ("business", "steps", "retries", "disk_free_bytes", "disk_total_bytes")


def measures_json(metrics: Any) -> str | None:
    """The JSON a history keeps in its ``measures`` column: the business metrics, step times and disk sample of a run."""
    import json

    kept = {k: metrics[k] for k in MEASURED if metrics.get(k) is not None}
    return json.dumps(kept, separators=(",", ":"), sort_keys=True) if kept else None


def measures_from(text: Any) -> dict[str, Any]:
    """A ``measures`` column read back (a damaged value reads as nothing, never as an error)."""
    import json

    try:
        data = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return {k: data[k] for k in MEASURED if k in data} if isinstance(data, dict) else {}
