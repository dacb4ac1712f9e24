"""``envfence init``: create the environment's directory tree and say what was created."""

from __future__ import annotations

import click

from . import State, pass_state
from .output import dumps, finding_dict


@click.command()
@pass_state
def init(state: State) -> None:
    """Create this environment's tree (CSV stages, logs, backups, archive, audit trail) with its permissions.

    Idempotent: a second run creates nothing and fixes permissions that drifted.
    Refuses a tree that is a symlink leading elsewhere, is owned by another
    user, or overlaps another environment's tree.
    """
    session = state.session()
    changes = session.prepare()
    paths = session.paths
    session.configure_logging(embedded=False)
    session.logger(command="init").info(f"init: {len(changes)} change(s) under {paths.base}")
    if state.json:
        click.echo(dumps({"environment": paths.environment, "base": str(paths.base), "changes": [finding_dict(f) for f in changes]}))
        return
    for f in changes:
        click.echo(f.message)
    if not changes:
        click.echo(f"the {paths.environment} tree at {paths.base} is already in place; nothing to do")
    else:
        click.echo(f"the {paths.environment} tree is ready at {paths.base}")
