"""``envfence init``: create the environment's directory tree and say what was created."""

from __future__ import annotations

import click

from . import State, pass_state
from .examples import examples
from .output import dumps, finding_dict


@examples(
    "envfence init",
    "envfence --env production init",
    "envfence init --gitignore             # also add the missing .gitignore lines",
)
@click.command()
@click.option("--gitignore", is_flag=True, help="Also add the lines .gitignore lacks (environment trees, machine-local files).")
@pass_state
def init(state: State, gitignore: bool) -> None:
    """Create this environment's tree (CSV stages, logs, backups, archive, audit trail) with its permissions.

    Idempotent: a second run creates nothing and fixes permissions that drifted.
    Refuses a tree that is a symlink leading elsewhere, is owned by another
    user, or overlaps another environment's tree. What it would advise (a
    ``.gitignore`` that lets environment data into git) is printed with the
    command that fixes it; ``--gitignore`` applies that fix too.
    """
    from ..stash import INIT_REQUESTS

    session = state.session()
    # Present for every init (plugins do init-only work, as the audit key of a strict profile); "gitignore" when asked.
    session.stash[INIT_REQUESTS] = frozenset({"gitignore"}) if gitignore else frozenset()
    findings = session.prepare()
    # Info findings say what was done; warnings say what is still to do.
    changes = [f for f in findings if f.severity == "info"]
    advice = [f for f in findings if f.severity != "info"]
    paths = session.paths
    if changes:
        session.configure_logging(embedded=False)
        # Printed below already: the log file keeps it, the console does not repeat it.
        session.logger(command="init", echoed=True).info(f"init: {len(changes)} change(s) under {paths.base}")
    if state.json:
        click.echo(dumps({"environment": paths.environment, "base": str(paths.base),
                          "changes": [finding_dict(f) for f in changes], "advice": [finding_dict(f) for f in advice]}))
        return
    for f in changes:
        click.echo(f.message)
    for f in advice:
        click.echo(f.message)
        if f.remediation:
            click.echo(f"  fix: {f.remediation}")
    if not changes:
        click.echo(f"the {paths.environment} tree at {paths.base} is already in place; nothing to do")
    else:
        click.echo(f"the {paths.environment} tree is ready at {paths.base}")
