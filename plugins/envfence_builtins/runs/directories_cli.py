"""``envfence clean --older-than AGE``: remove old files from the current environment's tree only."""

from __future__ import annotations

import time

import click

from envfence.cli.examples import examples
from envfence.cli import State, pass_state
from envfence.cli.output import dumps
from envfence.cli.params import Age

from envfence.files import remove

from envfence_builtins.runs.directories_layout import cleanable, old_files


@examples(
    "envfence clean --older-than 30d --dry-run",
    "envfence --env production clean --older-than 12w",
)
@click.command()
@click.option("--older-than", "age", type=Age(), required=True, help="Remove files last modified longer ago than this (30d, 12h, 2w).")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@pass_state
def clean(state: State, age, dry_run: bool) -> None:
    """Remove old files from this environment's tree (processed and failed CSVs, logs, archive).

    Files still on their way (csv/incoming, csv/processing), the history, the
    audit trail, locks and configuration snapshots are never touched, whatever
    the ``clean`` setting says, nor anything in another environment's tree.
    """
    session = state.session()
    if not dry_run:
        session.prepare()  # refuses a tree that leads elsewhere, and keeps the trail
    paths = session.paths
    cutoff = time.time() - age.total_seconds()
    files = old_files(session, paths, cutoff)
    root = session.root.path
    shown = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in files]
    if not dry_run:
        for path in files:
            remove(paths, path)
        session.audit("environment.cleaned", older_than=str(age), removed=len(files))
        session.configure_logging(embedded=False)
        # The summary line below says it: the log file keeps it, the console does not repeat it.
        session.logger(command="clean", echoed=True).info(f"removed {len(files)} file(s) older than {_human(age)}")
    if state.json:
        click.echo(dumps({"environment": paths.environment, "dry_run": dry_run, "removed" if not dry_run else "would_remove": shown}))
        return
    verb = "would remove" if dry_run else "removed"
    for item in shown:
        click.echo(f"{verb} {item}")
    dirs = ", ".join(str(d.relative_to(paths.base)) for d in cleanable(session, paths))
    click.echo(f"{verb} {len(files)} file(s) older than {_human(age)} from the {paths.environment} tree ({dirs})")


def _human(age) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"
