"""Shell completion: ``envfence completion bash|zsh|fish``, and what each option completes.

Completion runs click's own machinery (``_ENVFENCE_COMPLETE=bash_source``);
the functions here complete the names a project declares: environments and
their aliases for ``--env``, automations for ``run`` and ``status
--automation``, plugins for ``-p no:NAME``. They never raise: a project that
cannot be read completes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click
from .examples import examples

SHELLS = ("bash", "zsh", "fish")


def _root(ctx: click.Context) -> Path | None:
    from ..settings import has_settings

    start = Path(getattr(ctx.find_root().obj, "root", None) or ".").resolve()
    for directory in (start, *start.parents):
        if has_settings(directory):
            return directory
    return None


def _items(names, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]


def environments(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Declared environments and their aliases."""
    try:
        from ..settings import load_settings

        settings = load_settings(_root(ctx) or Path("."))
        names = [n for e in settings.environments.values() for n in (e.name, *e.aliases)]
    except Exception:  # completion must never print a traceback into the shell
        return []
    return _items(names, incomplete)


def automations(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """The project's automations (those a plugin registers included)."""
    try:
        from ..runner import collect_automations

        from . import State

        names = list(collect_automations(ctx.find_root().ensure_object(State).session()))
    except Exception:
        return []
    return _items(names, incomplete)


def plugins(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """``no:NAME`` for every installed plugin."""
    try:
        from ..plugins import default_manager

        names = [f"no:{n}" for n in default_manager(()).names()]
    except Exception:
        return []
    return _items(names, incomplete)


@examples(
    "envfence completion bash > ~/.local/share/bash-completion/completions/envfence",
    "envfence completion zsh > \"${fpath[1]}/_envfence\"",
)
@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash:  eval "$(envfence completion bash)"        (in ~/.bashrc)
    zsh:   eval "$(envfence completion zsh)"         (in ~/.zshrc)
    fish:  envfence completion fish > ~/.config/fish/completions/envfence.fish

    Commands, options, environment names and aliases, automation names and
    plugin names complete.
    """
    from click.shell_completion import get_completion_class

    from . import cli

    cls = get_completion_class(shell)
    click.echo(cls(cli, {}, "envfence", "_ENVFENCE_COMPLETE").source())
