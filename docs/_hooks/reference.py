"""mkdocs hooks: the generated reference pages, and a nav that never loses a page.

The command-line reference is rendered from the click commands, the hook
reference from the hookspec docstrings and the settings reference from the
settings tables' declarations (``envfence.schema.reference``), at every build, so neither can go
stale. A page in docs/ that the nav does not list is appended under "More
pages" instead of being dropped from the site's navigation.

Also imported by the tests (``cli_reference``, ``hook_reference``).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any, Iterator

CLI_PAGE = "reference/cli.md"
HOOKS_PAGE = "reference/hooks.md"
SETTINGS_PAGE = "reference/settings.md"
GENERATED = (CLI_PAGE, HOOKS_PAGE, SETTINGS_PAGE)


# --- command line ---------------------------------------------------------------


def _clean_help(text: str) -> str:
    # click's \b marks a paragraph it must not rewrap; markdown has no use for it.
    text = "\n".join(line for line in inspect.cleandoc(text or "").splitlines() if line.strip() != "\b")
    return _DOC_MENTION.sub(_doc_link, text)


#: "docs/validation.md" in a command's help: plain text in a terminal, a link on the site.
_DOC_MENTION = re.compile(r"(?<![\w/(\[])docs/([\w-]+)\.md\b")
_DOCS = Path(__file__).resolve().parent.parent


def _doc_link(match: re.Match) -> str:
    page = _DOCS / f"{match[1]}.md"
    # A page that does not exist stays text: mkdocs --strict would fail on the link, and the help is still true.
    return f"[{_title(page)}](../{match[1]}.md)" if page.is_file() else match[0]


def _walk(command: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    import click

    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, click.Context(sub, info_name=name, parent=ctx))


def cli_reference() -> str:
    """The command-line reference as markdown, one section per command."""
    import click

    from envfence.cli import cli

    lines = [
        "# Command line reference",
        "",
        "Generated from the commands themselves at every docs build. "
        "`envfence COMMAND --help` prints the same. Plugins can add commands "
        "through the `register_commands` hook; those installed when the docs "
        "were built appear here too.",
        "",
    ]
    root = click.Context(cli, info_name="envfence")
    for command, ctx in _walk(cli, root):
        path = ctx.command_path
        lines += [f"## {path}", "", "```text", command.get_usage(ctx).strip(), "```", ""]
        text = _clean_help(command.help or "")
        if text:
            lines += [text, ""]
        records = [
            p.get_help_record(ctx)
            for p in command.get_params(ctx)
            # --help is on every command; the reference shows it once, on envfence itself.
            if isinstance(p, click.Option) and (command is cli or "--help" not in p.opts)
        ]
        records = [r for r in records if r]
        if records:
            # A list, not a table: the theme does not wrap table cells.
            lines += ["**Options**", ""]
            lines += [f"- `{names}`: {help_text}" for names, help_text in records]
            lines.append("")
        if command.epilog and command.epilog.startswith("Examples:"):
            # The same lines `--help` ends with (envfence.cli.examples), as a console block.
            shown = [line.strip() for line in command.epilog.splitlines()[1:] if line.strip() and line.strip() != "\b"]
            lines += ["**Examples**", "", "```console", *shown, "```", ""]
        if isinstance(command, click.Group):
            subs = [n for n in command.list_commands(ctx) if command.get_command(ctx, n) is not None]
            lines += ["Commands: " + ", ".join(f"[`{n}`](#{_anchor(f'{path} {n}')})" for n in subs), ""]
    return "\n".join(lines)


def _anchor(title: str) -> str:
    # mkdocs' default slugify (python-markdown's toc): lower case, spaces to hyphens.
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


# --- hooks ----------------------------------------------------------------------


def hookspecs() -> list[tuple[str, str, Any]]:
    """``(phase, name, function)`` for every hookspec, in source order."""
    from envfence import hookspecs as module

    source = inspect.getsource(module)
    phases: dict[int, str] = {}
    for number, line in enumerate(source.splitlines(), 1):
        match = re.match(r"# --- (.+?) -+$", line)
        if match:
            phases[number] = match[1]
    result = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            function = getattr(module, node.name)
            if hasattr(function, "envfence_spec"):
                phase = max(((n, p) for n, p in phases.items() if n < node.lineno), default=(0, "Hooks"))[1]
                result.append((phase, node.name, function))
    return result + offered_hookspecs()


def offered_hookspecs() -> list[tuple[str, str, Any]]:
    """``(phase, name, function)`` for every hook an installed plugin declares (``register_hookspecs``)."""
    from envfence.plugins import PluginManager

    manager = PluginManager.from_entry_points()
    result = []
    for name, plugin in sorted(manager.declared.items(), key=lambda item: (item[1], item[0])):
        spec = getattr(manager.pm.hook, name).spec
        result.append((f"Offered by the {plugin} plugin", name, spec.function))
    return result


#: What each failure policy (``hookspecs.OnError``) means, for the reference.
_POLICY_WORDS = {
    "finding": "a PLUGIN_ERROR finding naming the plugin, the others still answer",
    "log": "logged and audited (plugin.failed) naming the plugin, the command goes on",
    "configuration": "a configuration error naming the plugin, the command stops",
}


_ROLE = re.compile(r":(class|func|meth|attr|data|mod):`~?([\w.]+)`")


def _inline(text: str, hooks: set[str]) -> str:
    def role(match: re.Match) -> str:
        # A method keeps its class (Session.prepare); anything else its last name.
        name = ".".join(match[2].split(".")[-2 if match[1] == "meth" else -1:])
        return f"[`{name}`](#{name})" if name in hooks else f"`{name}`"

    return _ROLE.sub(role, text).replace("``", "`")


def docstring_markdown(doc: str, hooks: set[str]) -> tuple[str, list[tuple[str, str]], str]:
    """Split a hookspec docstring into (body, params, returns), as markdown."""
    body: list[str] = []
    params: list[tuple[str, str]] = []
    returns = ""
    last = None  # the field an indented line continues: "param" or "returns"
    for line in inspect.cleandoc(doc or "").splitlines():
        param = re.match(r":param (\w+):\s*(.*)", line)
        ret = re.match(r":returns?:\s*(.*)", line)
        if param:
            params.append((param[1], param[2]))
            last = "param"
        elif ret:
            returns, last = ret[1], "returns"
        elif last and line.startswith(" ") and line.strip():
            if last == "returns":
                returns += " " + line.strip()
            else:
                params[-1] = (params[-1][0], f"{params[-1][1]} {line.strip()}")
        else:
            last = None
            body.append(line)
    fix = lambda s: _inline(s, hooks)  # noqa: E731
    return fix("\n".join(body).strip()), [(n, fix(t)) for n, t in params], fix(returns)


def hook_reference() -> str:
    """The hook reference as markdown: every hookspec, its signature, arguments and answer."""
    from envfence import hookspecs as module

    specs = hookspecs()
    names = {name for _, name, _ in specs}
    lines = ["# Hook reference", "", _inline(inspect.cleandoc(module.__doc__ or ""), names), ""]
    lines += [
        "Generated from the docstrings of `core/envfence/hookspecs.py`, and of the hookspecs each "
        "installed plugin declares (`register_hookspecs`), at every docs build. "
        "`envfence plugins --hooks` shows which installed plugins implement each hook, in call order.",
        "",
    ]
    phase_seen = None
    for phase, name, function in specs:
        if phase != phase_seen:
            lines += [f"## {phase}", ""]
            phase_seen = phase
        opts = getattr(function, "envfence_spec", {}) or {}
        signature = inspect.signature(function)
        arguments = ", ".join(p for p in signature.parameters if p != "self")
        kind = "firstresult: the first non-None answer wins" if opts.get("firstresult") else "every plugin's answer is collected"
        policy = getattr(function, "envfence_policy", None)
        if policy is not None:
            kind += f"; a plugin's exception: {_POLICY_WORDS[policy.value]}"
        body, params, returns = docstring_markdown(function.__doc__ or "", names)
        summary, _, body = body.partition("\n\n")
        marker = "@hookimpl(optionalhook=True)" if phase.startswith("Offered by") else "@hookimpl"
        lines += [f"### {name}", "", summary, "", "```python", marker, f"def {name}({arguments}): ...", "```", "", f"*{kind}.*", ""]
        if params:
            lines += ["**Arguments**", ""]
            lines += [f"- `{param}`: {text}" for param, text in params]
            lines.append("")
        if returns:
            lines += [f"**Returns** {returns}", ""]
        if body.strip():
            lines += [body.strip(), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


# --- mkdocs events ----------------------------------------------------------------


def _nav_files(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_files(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_files(item)


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def on_config(config: Any) -> Any:
    """Append pages the nav does not list under "More pages", so none is unreachable."""
    import logging

    nav = config.get("nav")
    if not nav:
        return config
    docs = Path(config["docs_dir"])
    listed = set(_nav_files(nav)) | set(GENERATED)
    missing = sorted(
        p.relative_to(docs).as_posix()
        for p in docs.rglob("*.md")
        if not p.relative_to(docs).as_posix().startswith("_") and p.relative_to(docs).as_posix() not in listed
    )
    if missing:
        logging.getLogger("mkdocs.hooks.reference").info(
            "pages not in mkdocs.yml's nav, listed under 'More pages': %s", ", ".join(missing)
        )
        nav.append({"More pages": [{_title(docs / m): m} for m in missing]})
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages."""
    from mkdocs.structure.files import File

    from envfence.schema import reference as settings_reference

    for uri, render in ((CLI_PAGE, cli_reference), (HOOKS_PAGE, hook_reference), (SETTINGS_PAGE, settings_reference)):
        files.append(File.generated(config, uri, content=render()))
    return files
