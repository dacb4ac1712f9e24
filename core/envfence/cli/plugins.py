"""``envfence plugins``: every plugin, its distribution, hooks and status; or every hook and its plugins."""

from __future__ import annotations

import click

from .. import slotted
from . import State, pass_state
from .examples import examples
from .output import dumps, style

_STATUS_COLOURS = {"loaded": "green", "disabled": "yellow", "failed": "red"}


def hook_table(manager) -> list[dict]:
    """Every hookspec with the plugins implementing it, in call order: the core's, then those plugins declare."""
    from .. import hookspecs

    table = []
    for name in hookspec_names(hookspecs) + sorted(manager.declared):
        caller = getattr(manager.pm.hook, name)
        impls = []
        for plugin, impl in manager.implementations(name):
            order = "tryfirst" if impl.tryfirst else "trylast" if impl.trylast else ""
            impls.append({"plugin": plugin, "order": order or None, "wrapper": bool(impl.wrapper or impl.hookwrapper)})
        row = {"hook": name, "firstresult": bool(caller.spec.opts.get("firstresult")), "plugins": impls}
        table.append({**row, "declared_by": manager.declared.get(name)})
    return table


def hookspec_names(module) -> list[str]:
    """The hookspecs of ``module``, in source order."""
    return [name for name, value in vars(module).items() if callable(value) and hasattr(value, "envfence_spec")]


@examples(
    "envfence plugins",
    "envfence plugins --hooks               # every hook, in call order",
    "envfence -p no:airtable plugins        # shown as disabled for this call",
)
@click.command()
@click.option("--hooks", "by_hook", is_flag=True, help="List every hook with the plugins implementing it, in call order.")
@pass_state
def plugins(state: State, by_hook: bool) -> None:
    """List plugins in registration order: name, distribution, version, hooks, status (and why).

    Built-ins come first in their declared order, then third-party plugins by
    name, then inline ones; pluggy calls the last registered first.

    With --hooks, list each hook instead, with its plugins in the order they
    are called (for a firstresult hook, the first to answer decides).
    """
    state.plugins.load_all()  # a plugin whose module would fail to import shows as failed, as it would at its first call
    if by_hook:
        table = hook_table(state.plugins)
        if state.json:
            click.echo(dumps(table))
            return
        for row in table:
            kind = " (firstresult)" if row["firstresult"] else ""
            kind += f" (declared by {row['declared_by']})" if row["declared_by"] else ""
            click.echo(style(row["hook"], bold=True) + kind)
            if not row["plugins"]:
                click.echo("    (no plugin)")
            for position, impl in enumerate(row["plugins"], 1):
                notes = [n for n in (impl["order"], "wrapper" if impl["wrapper"] else None) if n]
                click.echo(f"    {position}. {impl['plugin']}" + (f" [{', '.join(notes)}]" if notes else ""))
        return
    records = list(state.plugins.records.values())
    if state.json:
        click.echo(dumps([slotted.asdict(r) for r in records]))
        return
    for r in records:
        dist = f"{r.distribution} {r.version}".strip() or "-"
        status = style(r.status, fg=_STATUS_COLOURS.get(r.status))
        click.echo(f"{r.name:<24} {status:<8} {dist}")
        if r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
        if r.offers:
            click.echo(f"    offers: {', '.join(r.offers)}")
        if r.reason:
            click.echo(f"    reason: {r.reason}")
