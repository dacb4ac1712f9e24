"""The docs keep up with the code: generated reference pages, and the two meta-tests."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference", REPO / "docs" / "_hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hookspecs():
    from envfence import hookspecs

    return {name: f for name, f in vars(hookspecs).items() if hasattr(f, "envfence_spec")}


def test_every_hookspec_is_documented(reference):
    page = reference.hook_reference()
    for name, function in _hookspecs().items():
        doc = inspect.getdoc(function) or ""
        assert doc, f"hookspec {name} has no docstring"
        for param in inspect.signature(function).parameters:
            assert f":param {param}:" in doc, f"hookspec {name} does not document its argument {param!r}"
        section = page.split(f"\n### {name}\n", 1)
        assert len(section) == 2, f"hook reference has no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        for param in inspect.signature(function).parameters:
            assert f"- `{param}`: " in body, f"hook reference for {name} does not list {param!r}"
        firstresult = function.envfence_spec.get("firstresult", False)
        assert ("*firstresult" in body) == firstresult, f"hook reference gets {name}'s firstresult wrong"


def _test_function_names() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    names = set()
    for folder in config["tool"]["pytest"]["ini_options"]["testpaths"]:
        for path in (REPO / folder).rglob("test_*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    names.add(node.name)
    return names


def test_every_hookspec_is_exercised_by_a_test():
    names = _test_function_names()
    untested = [hook for hook in _hookspecs() if not any(n == f"test_hook_{hook}" or n.startswith(f"test_hook_{hook}_") for n in names)]
    assert not untested, f"no test_hook_<name> test for: {', '.join(untested)}"


def test_cli_reference_covers_every_command_and_option(reference):
    page = reference.cli_reference()
    from envfence.cli import COMMANDS

    for name in COMMANDS:
        assert f"\n## envfence {name}\n" in page
    assert "- `--strict-plugins`: " in page
    assert "\n## envfence plugin new\n" in page and "- `--dir DIRECTORY`: Where to create" in page
    assert "\b" not in page


def test_mkdocs_build_is_strict_and_includes_generated_pages(strict_build):
    assert strict_build["returncode"] == 0, strict_build["stderr"]
    site = Path(strict_build["site"])
    hooks = (site / "reference" / "hooks.html").read_text(encoding="utf-8")
    assert 'id="register_automations"' in hooks
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "envfence plugins" in cli and "--hooks" in cli


def _commands():
    """``(path, command)`` for every envfence command that runs something (groups excluded)."""
    import click

    from envfence.cli import cli

    found = []

    def walk(command, path, ctx):
        if isinstance(command, click.Group):
            if command.invoke_without_command and path != "envfence":
                found.append((path, command))  # a group that does something itself (`envfence schedule`)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, f"{path} {name}", click.Context(sub, parent=ctx, info_name=name))
        else:
            found.append((path, command))

    walk(cli, "envfence", click.Context(cli, info_name="envfence"))
    return found


def test_every_command_ends_its_help_with_examples(run_cli, tmp_path):
    # The core's commands and every built-in plugin's; a third-party plugin's are its own affair.
    ours = [(path, command) for path, command in _commands()
            if command.callback.__module__.startswith(("envfence.", "envfence_builtins."))]
    assert len(ours) >= 50
    for path, command in ours:
        assert (command.epilog or "").startswith("Examples:"), f"{path} --help shows no example"
        words = path.split()[1:]
        shown = run_cli(*words, "--help", cwd=tmp_path).stdout
        assert shown.rstrip().splitlines()[-1].lstrip().startswith("$ envfence"), shown
        # every example runs a real command path of envfence
        for line in command.epilog.splitlines()[3:]:
            assert line.startswith("  $ envfence "), line


def test_the_cli_reference_shows_each_commands_examples(reference):
    page = reference.cli_reference()
    assert "**Examples**" in page and "envfence run import-jobs --dry-run" in page


def _parse(argv):
    """Parse ``envfence ARGV`` down to its command as click would, without running it."""
    import click

    from envfence.cli import cli

    import warnings

    ctx = cli.make_context("envfence", list(argv))
    command = cli
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # click 8.2 keeps the words in args, older ones in protected_args
            warnings.simplefilter("ignore", DeprecationWarning)
            words = [*getattr(ctx, "protected_args", ()), *ctx.args]
        if not words:  # a group run as a command itself (`envfence schedule --format systemd`)
            return command
        name, command, rest = command.resolve_command(ctx, words)
        ctx = command.make_context(name, rest, parent=ctx)
    return command


def test_every_example_parses_as_the_command_it_documents():
    import shlex

    for path, command in _commands():
        for line in (command.epilog or "").splitlines()[3:]:
            words = shlex.split(line.strip().removeprefix("$ "), comments=True)
            redirected = [i for i, word in enumerate(words) if word in ("<", ">")]
            words = words[: redirected[0]] if redirected else words  # a shell redirection
            assert words[0] == "envfence"
            assert _parse(words[1:]) is command, f"{line!r} is not an example of {path}"
