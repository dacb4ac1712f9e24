"""Printing for the commands: JSON that never holds a secret, colour that respects NO_COLOR."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Iterable

import click

from .. import slotted
from ..models import MASK, Finding, Secret


def _default(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if slotted.has(type(value)):
        return slotted.asdict(value, recurse=False)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: Any) -> str:
    """JSON for ``--json``: secrets masked, paths and times as strings."""
    import json

    return json.dumps(data, default=_default, indent=2, sort_keys=False)


class Pairs:
    """A JSON object written from ``(key, value)`` pairs as they come (for :func:`echo_json`)."""

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _lazy(value: Any) -> bool:
    return isinstance(value, (Iterator, Pairs))


def _chunks(value: Any, pad: str) -> Iterator[str]:
    """``value`` as :func:`dumps` writes it at indentation ``pad``; iterators and :class:`Pairs` are consumed as written.

    A part holding nothing lazy is encoded whole by :func:`dumps` and indented.
    """
    import json

    if isinstance(value, Mapping) and any(map(_lazy, value.values())) or isinstance(value, Pairs):
        items = iter(value.items() if isinstance(value, Mapping) else value.pairs)
        opening, closing = "{", "}"
    elif isinstance(value, Iterator) or isinstance(value, list) and any(map(_lazy, value)):
        items, opening, closing = iter(value), "[", "]"
    else:
        yield dumps(value).replace("\n", "\n" + pad) if pad else dumps(value)
        return
    inner, first = pad + "  ", True
    for item in items:
        yield (opening if first else ",") + "\n" + inner
        first = False
        if closing == "}":
            key, item = item
            yield json.dumps(key if isinstance(key, str) else json.dumps(key)) + ": "
        yield from _chunks(item, inner)
    yield opening + closing if first else "\n" + pad + closing


def echo_json(data: Any) -> None:
    """Print ``data`` as :func:`dumps` would, written as it is produced: a large answer is never held whole.

    Lists may be iterators and objects :class:`Pairs`, so the caller need not build them either.
    """
    buffer: list[str] = []
    size = 0
    for chunk in _chunks(data, ""):
        buffer.append(chunk)
        size += len(chunk)
        if size > 1 << 16:
            click.echo("".join(buffer), nl=False)
            buffer, size = [], 0
    click.echo("".join(buffer))


def color_enabled() -> bool:
    """False when ``NO_COLOR`` is set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR")


def style(text: str, **kwargs: Any) -> str:
    """``click.style`` unless colour is off."""
    return click.style(text, **kwargs) if color_enabled() else text


SEVERITY_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}


def finding_dict(finding: Finding) -> dict[str, Any]:
    """A finding as JSON data."""
    return {
        "code": finding.code,
        "severity": finding.severity,
        "message": finding.message,
        "remediation": finding.remediation,
        "key": finding.key,
        "plugin": finding.plugin,
        "file": finding.file,
        "line": finding.line,
        "confirmable": finding.confirmable,
    }


def echo_findings(findings: Iterable[Finding], err: bool = False) -> None:
    """Print findings for people, one block each."""
    for f in findings:
        where = f" [{f.location}]" if f.location else ""
        label = style(f"{f.severity}", fg=SEVERITY_COLOURS.get(f.severity), bold=True)
        click.echo(f"{label}: {f.code}{where}: {f.message}", err=err)
        if f.remediation:
            click.echo(f"  fix: {f.remediation}", err=err)


def progress_printer(state: Any, label: str = "files"):
    """Progress per item on stderr (:class:`Progress`): a bar once the count is known; None when nothing is shown.

    For long commands that go through files one by one (``backup``, ``restore``, ``report``).
    """
    progress = Progress(state, label)
    return progress if progress.shown else None


def plural(count: int, word: str) -> str:
    """``1 key``, ``2 keys``: a count with its noun."""
    return f"{count} {word}{'' if count == 1 else 's'}"


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def dotenv_value(value: str) -> str:
    """``value`` as a .env line reads it back: as it is when it can be, else double-quoted with escapes.

    The one way envfence writes a value into a ``.env`` file (``config
    template``, ``set``, ``export --format dotenv``). A ``${`` is expanded
    by every reader of the format, quoted or not, and has no escape: callers
    that store a value refuse one.

    Unquoted, a newline would end the value, a space before ``#`` start a
    comment, a leading quote start a quoted value and surrounding spaces be
    dropped, so the template would not give back what it shows.
    """
    if value == value.strip() and not re.search(r"[\r\n]|\s#", value) and value[:1] not in ("'", '"'):
        return value
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


class Progress:
    """Progress on long work for the person watching: a click progress bar on stderr, or nothing.

    Shown only when stderr is a terminal, the output is not ``--json`` and
    ``-q`` was not given (piped or quiet work stays silent). Call
    :meth:`expect` with the number of steps once it is known, then
    :meth:`advance` (or call the object with a step's name, the per-file
    callback form); without a total each step's name is printed on a line.
    """

    def __init__(self, state: Any, label: str) -> None:
        import sys

        self.label = label
        self.shown = not getattr(state, "json", False) and getattr(state, "verbosity", 0) >= 0 and sys.stderr.isatty()
        self.bar: Any = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def expect(self, total: int) -> None:
        """Start the bar for ``total`` steps (nothing when not shown, or for no step at all)."""
        if self.shown and self.bar is None and total > 0:
            import sys

            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True, show_eta=total > 50)
            self.bar.__enter__()

    def advance(self, steps: int = 1, item: str | None = None) -> None:
        """``steps`` more done; ``item`` names the one just done."""
        if self.bar is not None:
            self.bar.update(steps, item)
        elif self.shown and item:
            click.echo(f"  {item}", err=True)

    def __call__(self, item: str) -> None:
        self.advance(1, item)

    def close(self) -> None:
        """Finish the bar (its line stays, complete)."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
