"""The ``envfence`` command line: a thin layer over the session API.

Commands live one module each in this package and are imported only when
invoked (or listed by ``--help``), so start-up pays for click, pluggy and the
plugins' own modules, nothing more. Plugins add commands through the
``register_commands`` hook.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import EXIT_CONFIG, EXIT_FINDINGS, EnvfenceError

#: command name -> module in this package defining a click command of that name
#: (``module:attribute`` where the attribute is named otherwise).
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
    "completion": "completion",
    "exec": "run:exec_",
    "docs": "docs",
}

_HELP = """Make automation scripts environment-aware and safe.

\b
Exit codes: 0 ok, 1 findings at error level or a failed run, 2 usage,
3 blocked by safety, 4 configuration cannot be loaded.
"""


def unknown_plugin(name: str) -> str:
    """The message for a plugin name that -p no:, ENVFENCE_DISABLE_PLUGINS or ENVFENCE_PLUGINS gave and no plugin has."""
    return f"no plugin named {name!r} (from -p no:, ENVFENCE_DISABLE_PLUGINS or ENVFENCE_PLUGINS); see `envfence plugins` for the names"


class paused_collection:
    """envfence's own start-up (a command's module, the plugins, the session) with the cyclic garbage collector paused.

    Start-up makes thousands of objects that live as long as the process
    (modules, classes, functions): collecting them finds no garbage (half of
    ``detect``'s collections, about 1% of its instructions). The collector
    runs again as soon as the block ends, whatever happens in it; a job's code
    never runs inside.

    In the console program (:func:`main`) what the block made is also moved
    out of the collector's reach as it ends (``gc.freeze``): otherwise the
    run's first collections walk all of it again (a few ms of a short run).
    A caller that embeds the command line keeps its collector as it was.
    """

    #: Set by :func:`main`: the process is the console program, which exits once the command is done.
    freeze = False

    def __enter__(self) -> None:
        import gc

        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: Any) -> None:
        import gc

        if paused_collection.freeze:
            gc.freeze()  # start-up's objects live as long as the process: no later collection walks them again
        if self.was_enabled:
            gc.enable()


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
        #: ``--trace``: every hook call on stderr, in a profile with ``debug`` only.
        self.trace = False

    @property
    def plugins(self):
        """The plugin manager; failed plugins are reported on stderr once."""
        if self._plugins is None:
            from ..plugins import default_manager

            with paused_collection():
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
            with paused_collection():
                from ..pipeline import Session

            if self.strict_plugins and self.plugins.unknown:
                from ..errors import UsageError

                raise UsageError(unknown_plugin(self.plugins.unknown[0]), "--strict-plugins makes a name no plugin has an error")

            from .adaptive import Tracing, refuse_in_production

            tracing = Tracing(self.plugins) if self.trace else None
            # --env and ENVIRONMENT naming different environments is a usage error, not a silent choice.
            with paused_collection():
                session = Session.open(
                    env=self.env, overrides=self.overrides, root=self.root, plugins=self.plugins,
                    strict_plugins=self.strict_plugins, env_must_agree=self.env is not None, **extra
                )
            if tracing is not None:
                tracing.release(allowed=session.profile.debug)
            refuse_in_production(session, ["--trace"] if self.trace else [])
            self._session = session
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


def long_flags(args: list[str]) -> list[str]:
    """``args`` with each global ``-q`` and ``-v`` before the command written as ``--quiet`` and ``--verbose``.

    The same options: click tries a short option as a long one first, and the
    miss builds its "did you mean" list with difflib (a millisecond of every
    ``envfence -q ...``). The values of the options that take one are skipped.
    """
    short = {d[0]: d[1] for d, options, _ in GLOBAL_OPTIONS if len(d) == 2 and d[1].startswith("--") and options.get("count")}
    valued = {d for decls, options, _ in GLOBAL_OPTIONS if not (options.get("count") or options.get("is_flag"))
              for d in decls if d.startswith("-")}
    out, i = list(args), 0
    while i < len(out) and out[i] != "--" and out[i].startswith("-"):
        out[i] = short.get(out[i], out[i])
        i += 2 if out[i] in valued else 1
    return out


class EnvfenceGroup(click.Group):
    """A group whose commands load lazily and whose errors become exit codes."""

    @property
    def context_class(self) -> type[click.Context]:  # type: ignore[override]
        """Its --help, like every command's, follows the environment's profile (see :mod:`envfence.cli.adaptive`)."""
        from .adaptive import AdaptiveContext

        return AdaptiveContext

    #: The plugin manager whose commands are added, and the names they took:
    #: a process that loads another manager (a test, an embedding tool) gets
    #: that manager's commands, not the last one's.
    _plugin_manager: Any = None
    _plugin_command_names: frozenset[str] = frozenset()

    def _add_plugin_commands(self, ctx: click.Context) -> None:
        manager = ctx.ensure_object(State).plugins
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
                module_name, _, attribute = COMMANDS[name].partition(":")
                path = f"{__name__}.{module_name}"
                with paused_collection():
                    __import__(path)  # the import statement's machinery, which `python -X importtime` reports
                module = sys.modules[path]
                self.add_command(getattr(module, attribute or name.replace("-", "_")), name)
        else:
            self._add_plugin_commands(ctx)
        command = self.commands.get(name)
        if command is not None:
            accept_global_options(command)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["envfence.args"] = list(args)  # for a usage error under a --json that parsing never reached
        return super().parse_args(ctx, long_flags(args))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # `envfence chek`: name the command that was probably meant.
            name = click.utils.make_str(args[0]) if args else ""
            import difflib

            guess = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.6)
            if guess and "No such command" in exc.message:
                exc.message += f" Did you mean {guess[0]!r}?"
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EnvfenceError as exc:
            report_error(ctx, exc.message, exc.hint, exc.exit_code)
        except click.ClickException as exc:
            state = ctx.find_object(State)
            words = ctx.meta.get("envfence.args", [])
            words = words[: words.index("--")] if "--" in words else words
            # The error may stop parsing before a later --json is read.
            if not (state is not None and state.json) and "--json" not in words:
                raise
            # --json promises JSON on stdout, a usage error included.
            from .output import dumps

            hint = f"envfence {exc.ctx.command_path.partition(' ')[2]} --help".rstrip() if isinstance(exc, click.UsageError) and exc.ctx else ""
            click.echo(dumps({"error": exc.format_message(), "hint": hint, "exit_code": exc.exit_code}))
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader left (`envfence detect | head -1`): click ends quietly
        except Exception as exc:  # a bug: say so without a bare traceback or a secret
            if isinstance(exc, ModuleNotFoundError):
                _missing_extra(ctx, exc)
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


def _missing_extra(ctx: click.Context, exc: ModuleNotFoundError) -> None:
    """An optional dependency that is not installed is a configuration matter, not a bug: name its extra."""
    from ..extras import extra_for, install_hint

    extra = extra_for(exc.name)
    if extra is not None:
        command = ctx.invoked_subcommand or ctx.info_name or "envfence"
        module = exc.name.partition(".")[0] if exc.name else "a module"
        report_error(ctx, f"envfence {command} needs {module}, which is not installed", install_hint(extra), EXIT_CONFIG)


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
    from ..pipeline import unopened_redactor

    return unopened_redactor(getattr(state, "_plugins", None))  # never loaded here: loading them may be what failed


def error_redactor(ctx: click.Context):
    """The redactor for an error message of this invocation: the session's, else one over the process environment."""
    return _redactor(ctx.find_object(State))


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


# --- global options: accepted before or after any command ----------------------
#
# Each is declared once, here, with what it does to the invocation's State.
# The top-level group takes them as they are; every command (and every
# subcommand, a plugin's included) gets a hidden copy made from the same
# declaration when it is looked up, so `envfence run sync --env prod -q --json`
# means what `envfence --env prod -q --json run sync` means.


def _disable(state: State, options: tuple[str, ...]) -> None:
    for option in options:
        if not option.startswith("no:") or len(option) == 3:
            raise click.BadParameter(f"{option!r}: write -p no:NAME to disable plugin NAME", param_hint="-p")
        if option[3:] not in state.disabled:
            state.disabled += (option[3:],)
            state._plugins = None  # loaded with the plugin still enabled: load again without it


def _set(state: State, assignments: tuple[str, ...]) -> None:
    state.overrides.update(parse_assignments(assignments))


def _verbosity(step: int):
    def apply(state: State, count: int) -> None:
        state.verbosity += step * count

    return apply


def _complete(kind: str):
    """A completion function of :mod:`.completion`, imported only when a shell asks."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from . import completion

        return getattr(completion, kind)(ctx, param, incomplete)

    return complete


#: (parameter declarations, click options, what a given value does to the State).
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any], Any], ...] = (
    (("--root",), {"type": click.Path(file_okay=False), "help": "The project root (default: found from the working directory)."},
     lambda state, value: setattr(state, "root", value)),
    (("--env", "env"), {"metavar": "NAME", "shell_complete": _complete("environments"), "help": "The intended environment, a name or alias (wins over ENVIRONMENT and the hostname)."},
     lambda state, value: setattr(state, "env", value)),
    (("-p", "plugin_options"), {"multiple": True, "metavar": "no:NAME", "shell_complete": _complete("plugins"), "help": "Disable plugin NAME (repeatable)."}, _disable),
    (("--strict-plugins",), {"is_flag": True, "help": "A plugin that failed to load stops every command that opens a session (exit 4), instead of a warning."},
     lambda state, value: setattr(state, "strict_plugins", True)),
    (("--set", "assignments"), {"multiple": True, "metavar": "KEY=VALUE", "help": "Runtime override, the top configuration layer (repeatable)."}, _set),
    (("--json", "json_output"), {"is_flag": True, "help": "Machine output on stdout."},
     lambda state, value: setattr(state, "json", True)),
    (("-v", "--verbose"), {"count": True, "help": "More output (development style)."}, _verbosity(1)),
    (("-q", "--quiet"), {"count": True, "help": "Less output (production style)."}, _verbosity(-1)),
    (("--trace",), {"is_flag": True, "help": "Print every hook call: the plugins asked, which answered, how long each took (development only)."},
     lambda state, value: setattr(state, "trace", True)),
)
#: Global options a profile without ``debug`` (production) neither shows nor accepts.
DEVELOPMENT_OPTIONS = frozenset({"--trace"})


def _global_option(decls: tuple[str, ...], options: dict[str, Any], apply: Any, hidden: bool) -> click.Option:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, False, 0, ()):
            apply(ctx.ensure_object(State), value)

    option = click.Option(list(decls), expose_value=False, callback=callback, hidden=hidden, **options)
    if DEVELOPMENT_OPTIONS.intersection(decls):
        from .adaptive import development_only

        development_only(option)
    return option


def accept_global_options(command: click.Command) -> None:
    """Let ``command`` and its subcommands take the global options after their names.

    An option the command declares itself (its own ``--json``) keeps its
    meaning; done once per command object.
    """
    if getattr(command, "_envfence_global_options", False):
        return
    command._envfence_global_options = True  # type: ignore[attr-defined]
    from .adaptive import AdaptiveContext

    command.context_class = AdaptiveContext  # its --help follows the environment's profile
    taken = {opt for param in command.params for opt in getattr(param, "opts", ()) + getattr(param, "secondary_opts", ())}
    for decls, options, apply in GLOBAL_OPTIONS:
        names = [d for d in decls if d.startswith("-")]
        if not taken.intersection(names):
            command.params.append(_global_option(decls, options, apply, hidden=True))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_global_options(sub)


@click.group(cls=EnvfenceGroup, help=_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="envfence", prog_name="envfence")
@click.pass_context
def cli(ctx: click.Context) -> None:
    ctx.ensure_object(State)


cli.params[:0] = [
    _global_option(decls, {**options, **({"envvar": "ENVFENCE_STRICT_PLUGINS"} if "--strict-plugins" in decls else {})}, apply, hidden=False)
    for decls, options, apply in GLOBAL_OPTIONS
]


pass_state = click.make_pass_decorator(State)


def json_option(function):
    """Kept for plugins written when ``--json`` had to be declared per command: changes nothing now.

    Every command takes ``--json`` (and the other global options) after its
    name through :func:`accept_global_options`.
    """
    return function


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    import atexit

    # Registered first, so it runs last, after every exit handler the command installed (logging's, loguru's);
    # once, however many times a process calls main().
    atexit.unregister(_skip_exit_collections)
    atexit.register(_skip_exit_collections)
    paused_collection.freeze = True
    try:
        cli.main(args=argv, prog_name="envfence")
    finally:
        paused_collection.freeze = False  # a later start-up in this process (embedded) keeps its collector as it was


def _skip_exit_collections() -> None:
    """Spare the interpreter's shutdown its garbage collections over every object a command leaves (a quarter of a short run's CPU).

    The objects still alive are moved out of the collector's reach
    (``gc.freeze``); the interpreter still frees them, module by module, as
    it tears down. Nothing is lost by it: envfence closes the files, locks and
    databases it writes before a command returns, and the exit handlers
    that flush logs have run by now.
    """
    import gc

    gc.freeze()


__all__ = ["cli", "main", "State", "pass_state", "COMMANDS", "GLOBAL_OPTIONS", "accept_global_options", "json_option", "parse_assignments", "report_error"]
