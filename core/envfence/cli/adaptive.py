"""A command line that adapts to its environment: help, options and tracing follow the profile's ``debug``.

Under a profile with ``debug`` (development), ``--help`` ends with the
debugging options and the examples, and ``--trace`` prints every hook call.
Under one without (production), ``--help`` is the operator's form: the exit
codes, how a blocked run is forced on the record, where this environment's
logs and audit trail are; development-only options are hidden there and
refused when given.

The environment ``--help`` adapts to is the one the command would run in:
``--env`` (before or after the command), then ``ENVIRONMENT``, then the
hostname. When no session can be opened (no project, broken settings), the
help is the plain one.
"""

from __future__ import annotations

from typing import Any, Iterator

import click

#: Set on a click option that only a debugging profile offers.
DEVELOPMENT_ONLY = "envfence_development_only"


def development_only(option: click.Parameter) -> click.Parameter:
    """Mark ``option`` as offered only where the profile has ``debug``: hidden from production's help, refused there."""
    setattr(option, DEVELOPMENT_ONLY, True)
    return option


def _env_from_args(args: list[str]) -> str | None:
    """The ``--env`` the command line gives, wherever it stands (before ``--`` of ``exec``)."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--env" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--env="):
            return arg.partition("=")[2]
    return None


def help_session(ctx: click.Context) -> Any:
    """The session the command would open, for its help; None when none can be opened."""
    from . import State

    state = ctx.find_object(State) or ctx.find_root().ensure_object(State)
    if state.env is None:
        state.env = _env_from_args(ctx.meta.get("envfence.args", []))
    try:
        return state.session()
    except Exception:  # the help of a project that cannot load is the plain help
        return None


def operator_section(session: Any) -> str:
    """What an operator needs from ``--help`` in ``session``'s environment (an epilog paragraph click keeps as written)."""
    paths = session.paths
    logs = paths.log_file() if paths is not None else "none yet (envfence init makes the tree)"
    audit = paths.dirs.get("audit", paths.base / "audit") if paths is not None else "none yet"
    reason = " --reason TEXT" if session.profile.strict else ""
    return "\n".join([
        f"In {session.environment.name} (profile {session.profile.based_on}):",
        "",
        "\b",
        "  Exit codes: 0 ok, 1 findings at error level or a failed run, 2 usage,",
        "  3 blocked by safety, 4 configuration cannot be loaded.",
        f"  A blocked run goes ahead only with --force{reason}; every override is audited.",
        f"  Log: {logs}",
        f"  Audit trail: {audit} (envfence audit show, envfence audit verify)",
    ])


def debugging_section(session: Any) -> str:
    """What a developer can turn on in ``session``'s environment (an epilog paragraph click keeps as written)."""
    paths = session.paths
    logs = f"{paths.log_file()}" if paths is not None else "the log file"
    return "\n".join([
        f"Debugging in {session.environment.name}:",
        "",
        "\b",
        "  --trace     every hook call: the plugins asked, which answered, how long each took",
        "  -v          development-style output (findings at info level, details)",
        "  --dry-run   (run, exec) every decision, nothing written",
        f"  DEBUG records of the decisions (which hook answered, why each guard passed): {logs}",
    ])


class AdaptiveContext(click.Context):
    """A context whose ``get_help`` follows the profile of the environment the command would run in."""

    def get_help(self) -> str:
        session = help_session(self)
        if session is None:
            return super().get_help()
        command, epilog = self.command, self.command.epilog
        hidden = [] if session.profile.debug else [p for p in command.params if getattr(p, DEVELOPMENT_ONLY, False) and not p.hidden]
        if session.profile.debug:  # the debugging options, then the examples
            command.epilog = debugging_section(session) + ("\n\n" + epilog if epilog else "")
        else:  # the operator's form: no examples, no development-only options
            command.epilog = operator_section(session)
        for param in hidden:
            param.hidden = True
        try:
            return super().get_help()
        finally:
            command.epilog = epilog
            for param in hidden:
                param.hidden = False


def refuse_in_production(session: Any, given: list[str]) -> None:
    """A usage error when development-only options were given in an environment whose profile has no ``debug``."""
    if given and not session.profile.debug:
        from ..errors import UsageError

        raise UsageError(
            f"{', '.join(given)}: development only, not offered in {session.environment.name}",
            "leave it out; for a support case set ENVFENCE_TRACE_PLUGINS=1 on purpose",
        )


class Tracing:
    """``--trace``: each hook call's line, held until the profile allows them, then printed on stderr as they come."""

    def __init__(self, plugins: Any) -> None:
        from ..hookcalls import install_tracing

        self.plugins, self.previous = plugins, plugins.trace
        self.held: list[str] | None = []
        plugins.trace = True
        self.undo = install_tracing(plugins.pm, self.write)
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.find_root().call_on_close(self.stop)

    def write(self, line: str) -> None:
        if self.held is None:
            click.echo(line, err=True)
        else:
            self.held.append(line)

    def release(self, allowed: bool) -> None:
        """Print what was held and go on printing, or (a profile without ``debug``) drop it and stop."""
        held, self.held = self.held or [], None
        if not allowed:
            self.stop()
            return
        for line in held:
            click.echo(line, err=True)

    def stop(self) -> None:
        self.plugins.trace = self.previous
        self.undo()
