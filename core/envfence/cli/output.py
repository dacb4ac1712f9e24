"""Printing for the commands: JSON that never holds a secret, colour that respects NO_COLOR."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable

import attrs
import click

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
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: Any) -> str:
    """JSON for ``--json``: secrets masked, paths and times as strings."""
    import json

    return json.dumps(data, default=_default, indent=2, sort_keys=False)


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
    }


def echo_findings(findings: Iterable[Finding], err: bool = False) -> None:
    """Print findings for people, one block each."""
    for f in findings:
        where = f" [{f.location}]" if f.location else ""
        label = style(f"{f.severity}", fg=SEVERITY_COLOURS.get(f.severity), bold=True)
        click.echo(f"{label}: {f.code}{where}: {f.message}", err=err)
        if f.remediation:
            click.echo(f"  fix: {f.remediation}", err=err)


def plural(count: int, word: str) -> str:
    """``1 key``, ``2 keys``: a count with its noun."""
    return f"{count} {word}{'' if count == 1 else 's'}"
