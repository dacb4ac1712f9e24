"""Examples at the end of a command's ``--help``, the way gh and doppler show them.

Each command says how it is used in a few lines a reader can paste::

    @examples(
        "envfence detect                      # the environment and why",
        "envfence --env prod --json detect    # what automation reads",
    )
    @click.command()
    def detect(...): ...

The lines become the command's epilog, kept as written (click does not rewrap
them), so ``--help`` and the generated CLI reference show the same examples.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import click

C = TypeVar("C", bound=click.Command)


def examples(*lines: str) -> Callable[[C], C]:
    """Give a click command an ``Examples:`` epilog of ``lines`` (each a shell line, a ``#`` comment allowed)."""
    if not lines:
        raise ValueError("examples() needs at least one line")

    def attach(command: C) -> C:
        # \b stops click from rewrapping the block; each line is indented as gh does.
        command.epilog = "Examples:\n\n\b\n" + "\n".join(f"  $ {line}" for line in lines)
        return command

    return attach
