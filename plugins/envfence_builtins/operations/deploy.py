"""The ``deploy`` plugin: ``envfence deploy`` and ``envfence deployments``, and the hooks it offers.

What a deployment does is :mod:`envfence_builtins.operations.deploy_records`;
the commands are ``deploy_cli``; ``pre_deploy`` and ``post_deploy`` are
declared in ``deploy_hooks``. See docs/changes.md.
"""

from __future__ import annotations

from envfence import hookimpl


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``pre_deploy`` and ``post_deploy``."""
    from envfence_builtins.operations.deploy_hooks import DeployHookspecs

    register(DeployHookspecs)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence deploy`` and ``envfence deployments``."""
    from envfence_builtins.operations.deploy_cli import deploy, deployments

    cli.add_command(deploy)
    cli.add_command(deployments)
