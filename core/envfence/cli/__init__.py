"""The ``envfence`` command line: a thin layer over the session API.

Commands live one module each in this package and are imported only when
invoked (or listed by ``--help``), so start-up pays for click, pluggy and the
plugins' own modules, nothing more. Plugins add commands through the
``register_commands`` hook.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import EXIT_FINDINGS, EnvfenceError

#: command name -> module in this package defining a click command of that name.
COMMANDS = {
    "detect": "detect",
    "config": "config",
    "plugins": "plugins",
    "plugin": "scaffold",
    "emulate": "emulate",
    "init": "init",
    "list": "automations",
    "run": "run",
    "status": "status",
    "check": "check",
}

_HELP = """Make automation scripts environment-aware and safe.

\b
Exit codes: 0 ok, 1 findings at error level or a failed run, 2 usage,
3 blocked by safety, 4 configuration cannot be loaded.
"""


def unknown_plugin(name: str) -> str:
    """The message for a plugin name that -p no:, ENVFENCE_DISABLE_PLUGINS or ENVFENCE_PLUGINS gave and no plugin has."""
    return f"no plugin named {name!r} (from -p no:, ENVFENCE_DISABLE_PLUGINS or ENVFENCE_PLUGINS); see `envfence plugins` for the names"


class State:
    """What the global options decided, and the session they open (once)."""

    def __init__(self, root=None, env=None, disabled=(), json=False, verbosity=0, overrides=None, strict_plugins=False) -> None:
        self.strict_plugins = strict_plugins
        self.root = root
        self.env = env
        self.disabled = tuple(disabled)
        self.json = json
        self.verbosity = verbosity
        self.overrides = dict(overrides or {})
        self._session = None
        self._plugins = None

    @property
    def plugins(self):
        """The plugin manager; failed plugins are reported on stderr once."""
        if self._plugins is None:
            from ..plugins import default_manager

            self._plugins = default_manager(self.disabled)
            for record in self._plugins.failed:
                click.echo(
                    f"envfence: warning: plugin {record.name!r} failed to load ({record.reason}); "
                    "see `envfence plugins`",
                    err=True,
                )
            if not self.strict_plugins:
                for name in self._plugins.unknown:
                    click.echo(f"envfence: warning: {unknown_plugin(name)}", err=True)
        return self._plugins

    def session(self, **extra: Any):
        """Open the session for this invocation (cached)."""
        if self._session is None:
            from ..pipeline import Session

            if self.strict_plugins and self.plugins.unknown:
                from ..errors import UsageError

                raise UsageError(unknown_plugin(self.plugins.unknown[0]), "--strict-plugins makes a name no plugin has an error")

            self._session = Session.open(
                env=self.env, overrides=self.overrides, root=self.root, plugins=self.plugins,
                strict_plugins=self.strict_plugins, **extra
            )
        return self._session

    def session_for(self, env: str):
        """A separate session for environment ``env`` with this invocation's options."""
        from ..pipeline import Session

        return Session.open(
            env=env, overrides=self.overrides, root=self.root, plugins=self.plugins, strict_plugins=self.strict_plugins
        )

    def verbose(self, session=None) -> bool:
        """Human output for people (development) or terse (production), ``-v``/``-q`` winning."""
        if self.verbosity > 0:
            return True
        if self.verbosity < 0:
            return False
        return session.profile.verbose if session is not None else True


def parse_assignments(values: tuple[str, ...], option: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict, with a usage error naming a bad one."""
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item.split('=')[0]!r} is not KEY=VALUE", param_hint=option)
        result[key.strip()] = value
    return result


class EnvfenceGroup(click.Group):
    """A group whose commands load lazily and whose errors become exit codes."""

    #: The plugin manager whose commands are added, and the names they took:
    #: a process that loads another manager (a test, an embedding tool) gets
    #: that manager's commands, not the last one's.
    _plugin_manager: Any = None
    _plugin_command_names: frozenset[str] = frozenset()

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        state = ctx.find_object(State)
        if state is None:  # --help before the group's callback ran
            disabled = tuple(p[3:] for p in ctx.params.get("plugin_options", ()) if p.startswith("no:"))
            state = State(disabled=disabled)
        manager = state.plugins
        if manager is self._plugin_manager:
            return
        for name in self._plugin_command_names:
            self.commands.pop(name, None)
        before = set(self.commands)
        self._plugin_manager = manager
        manager.register_commands(cli=self)
        self._plugin_command_names = frozenset(set(self.commands) - before)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands(ctx)
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            if name not in self.commands:
                path = f"{__name__}.{COMMANDS[name]}"
                __import__(path)  # the import statement's machinery, which `python -X importtime` reports
                module = sys.modules[path]
                self.add_command(getattr(module, name.replace("-", "_")), name)
        else:
            self._add_plugin_commands(ctx)
        return self.commands.get(name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EnvfenceError as exc:
            report_error(ctx, exc.message, exc.hint, exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:
            raise  # the reader left (`envfence detect | head -1`): click ends quietly
        except Exception as exc:  # a bug: say so without a bare traceback or a secret
            state = ctx.find_object(State)
            session = getattr(state, "_session", None)
            redactor = _redactor(state)
            message = redactor(f"{type(exc).__name__}: {exc}")
            show_trace = (state is not None and state.verbosity > 0) or (
                session is not None and session.profile.tracebacks
            )
            if show_trace:
                import traceback

                click.echo(redactor("".join(traceback.format_exc())), err=True)
            report_error(ctx, f"internal error: {message}", "this is a bug in envfence or a plugin; run with -v for the traceback", EXIT_FINDINGS)
        finally:
            _flush_logs()


def _flush_logs() -> None:
    """Wait for enqueued log records: a command's log is on disk when it returns.

    File sinks are enqueued (several processes may share a file), so without
    this an embedding tool calling ``main()`` could read a log before its last
    lines arrive. loguru is only touched when a command already loaded it.
    """
    loguru = sys.modules.get("loguru")
    if loguru is not None:
        loguru.logger.complete()


def _redactor(state: State | None):
    """The open session's redactor; without a session, the process environment holds the secrets."""
    session = getattr(state, "_session", None)
    if session is not None:
        return session.redactor()
    from ..redaction import Redactor, environ_secrets, plugin_shapes

    plugins = getattr(state, "_plugins", None)  # never loaded here: loading them may be what failed
    return Redactor(environ_secrets(os.environ), shapes=plugin_shapes(plugins) if plugins is not None else ())


def report_error(ctx: click.Context, message: str, hint: str, code: int) -> None:
    """Print an error (JSON on stdout with ``--json``) and exit with ``code``; secrets masked."""
    state = ctx.find_object(State)
    redact = _redactor(state)
    message, hint = redact(message), redact(hint)
    if state is not None and state.json:
        from .output import dumps

        click.echo(dumps({"error": message, "hint": hint, "exit_code": code}))
    else:
        click.echo(f"envfence: error: {message}", err=True)
        if hint:
            click.echo(f"  hint: {hint}", err=True)
    ctx.exit(code)


@click.group(cls=EnvfenceGroup, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False), help="The project root (default: found from the working directory).")
@click.option("--env", "env", metavar="NAME", help="The intended environment, a name or alias (wins over ENVIRONMENT and the hostname).")
@click.option("-p", "plugin_options", multiple=True, metavar="no:NAME", help="Disable plugin NAME (repeatable).")
@click.option("--strict-plugins", is_flag=True, envvar="ENVFENCE_STRICT_PLUGINS", help="A plugin that failed to load stops every command that opens a session (exit 4), instead of a warning.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Runtime override, the top configuration layer (repeatable).")
@click.option("--json", "json_output", is_flag=True, help="Machine output on stdout.")
@click.option("-v", "--verbose", count=True, help="More output (development style).")
@click.option("-q", "--quiet", count=True, help="Less output (production style).")
@click.version_option(package_name="envfence", prog_name="envfence")
@click.pass_context
def cli(ctx: click.Context, root, env, plugin_options, strict_plugins, assignments, json_output, verbose, quiet) -> None:
    disabled = []
    for option in plugin_options:
        if not option.startswith("no:") or len(option) == 3:
            raise click.BadParameter(f"{option!r}: write -p no:NAME to disable plugin NAME", param_hint="-p")
        disabled.append(option[3:])
    ctx.obj = State(
        root=root,
        env=env,
        disabled=disabled,
        json=json_output,
        verbosity=verbose - quiet,
        overrides=parse_assignments(assignments),
        strict_plugins=strict_plugins,
    )


pass_state = click.make_pass_decorator(State)


def _json_after_command(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


#: ``--json`` after a command's name, for commands that people type that way;
#: the same as the global ``envfence --json COMMAND`` (errors included).
json_option = click.option(
    "--json", is_flag=True, expose_value=False, callback=_json_after_command, help="Machine output on stdout."
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name="envfence")


__all__ = ["cli", "main", "State", "pass_state", "json_option", "COMMANDS", "parse_assignments", "report_error"]
