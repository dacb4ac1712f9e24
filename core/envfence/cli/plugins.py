"""``envfence plugins``: every plugin, its distribution, hooks and status."""

from __future__ import annotations

import attrs
import click

from . import State, pass_state
from .output import dumps, style

_STATUS_COLOURS = {"loaded": "green", "disabled": "yellow", "failed": "red"}


@click.command()
@pass_state
def plugins(state: State) -> None:
    """List plugins: name, distribution, version, hooks, status (and why)."""
    records = sorted(state.plugins.records.values(), key=lambda r: (r.status != "loaded", r.name))
    if state.json:
        click.echo(dumps([attrs.asdict(r) for r in records]))
        return
    for r in records:
        dist = f"{r.distribution} {r.version}".strip() or "-"
        status = style(r.status, fg=_STATUS_COLOURS.get(r.status))
        click.echo(f"{r.name:<24} {status:<8} {dist}")
        if r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
        if r.reason:
            click.echo(f"    reason: {r.reason}")
