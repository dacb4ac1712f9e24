"""pytest fixtures for envfence and its plugins, for the test suites that ask for them.

Nothing registers them on its own: a suite opts in with, in its top-level
``conftest.py``::

    pytest_plugins = ["envfence.testing.pytest_plugin"]

so a project that merely has envfence installed gets no fixture of it. Every
fixture's name starts with ``envfence_``:

- ``envfence_project``: a :class:`~envfence.testing.project.Project` in a
  temporary directory, its runs isolated from the developer's shell.
- ``envfence_plugin``: register a plugin object for one test.
- ``envfence_audit_events``: the audit events emitted during the test.
- ``envfence_make_project``: ``envfence_make_project({".env": "A=1"}, settings="...")``
  writes a project in a temporary directory and returns its root.
- ``envfence_run_cli``: ``envfence_run_cli("check", cwd=root)`` runs ``envfence``
  in-process as a user would; returns click's result (``stdout``, ``stderr``, ``exit_code``).
- ``envfence_recorded``: a plugin manager with the installed plugins and an
  audit recorder, for ``open_session(plugins=envfence_recorded.plugins)``.

The fake services' fixtures come with the fakes (for the built-in ones,
``envfence_builtins.fakes.pytest_fixtures``). This module imports nothing
from envfence at import time.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import pytest


def pytest_addoption(parser) -> None:
    """``envfence_plugins`` in the pytest settings: test one plugin alone, beside the built-ins."""
    parser.addini(
        "envfence_plugins",
        "load only envfence's built-in plugins and these (by entry-point name) in the tests, "
        "so other plugins installed in the same environment cannot change their outcome",
        type="args",
        default=[],
    )


def _only_named_plugins(config, monkeypatch) -> None:
    """Apply the ``envfence_plugins`` setting: ``ENVFENCE_PLUGINS`` = the built-ins and the named plugins."""
    names = config.getini("envfence_plugins")
    if not names:
        return
    from envfence.entrypoints import entry_points
    from envfence.plugins import ENTRY_POINT_GROUP, reset_default_managers

    builtins = [ep.name for ep in entry_points(ENTRY_POINT_GROUP) if getattr(ep, "dist", None) and ep.dist.name == "envfence"]
    monkeypatch.setenv("ENVFENCE_PLUGINS", ",".join([*builtins, *names]))
    reset_default_managers()


@pytest.fixture(autouse=True)
def _envfence_plugins_only(request, monkeypatch) -> None:
    """Every test of a suite whose settings name ``envfence_plugins`` sees only those plugins."""
    _only_named_plugins(request.config, monkeypatch)


@pytest.fixture
def envfence_project(request, tmp_path, monkeypatch) -> Iterator[Any]:
    """A project directory with an empty ``envfence.toml``, ready for ``run`` and ``session``."""
    from envfence.plugins import reset_default_managers
    from envfence.testing.project import LEAKY_NAMES, LEAKY_PREFIXES, Project

    for name in list(os.environ):
        if name in LEAKY_NAMES or name.startswith(LEAKY_PREFIXES):
            monkeypatch.delenv(name)
    reset_default_managers()
    _only_named_plugins(request.config, monkeypatch)  # the developer's ENVFENCE_* are gone, the suite's choice stays
    project = Project(tmp_path / "project")
    project.settings("# envfence settings for a test project\n")
    yield project
    reset_default_managers()


@pytest.fixture
def envfence_plugin() -> Iterator[Callable[..., str]]:
    """``register(plugin, name=None)``: make a plugin object known for this test only.

    The plugin is called before the installed ones. Returns the name it was
    registered under.
    """
    from envfence.plugins import add_inline_plugin, remove_inline_plugin

    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        names.append(add_inline_plugin(plugin, name))
        return names[-1]

    yield register
    for name in names:
        remove_inline_plugin(name)


@pytest.fixture
def envfence_audit_events(envfence_plugin) -> list[Any]:
    """The :class:`~envfence.models.AuditEvent` objects emitted during the test, in order."""
    from envfence import hookimpl

    events: list[Any] = []

    class AuditRecorder:
        @hookimpl
        def audit_event(self, event) -> None:
            events.append(event)

    envfence_plugin(AuditRecorder(), "envfence-testing-audit")
    return events


@pytest.fixture
def envfence_make_project(tmp_path) -> Callable[..., Any]:
    """Write a project: ``envfence_make_project({".env": "A=1"}, settings="...")`` returns its root."""

    def make(files: dict[str, str | bytes] | None = None, settings: str | None = "", name: str = "proj") -> Any:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        if settings is not None:
            (root / "envfence.toml").write_text(settings, encoding="utf-8")
        for rel, content in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return root

    return make


@pytest.fixture
def envfence_run_cli(monkeypatch) -> Callable[..., Any]:
    """Run ``envfence ARGS`` in a directory; returns click's Result (stdout, stderr, exit_code)."""
    from click.testing import CliRunner

    from envfence.cli import cli

    def run(*args: str, cwd: Any = None, env: dict[str, str] | None = None, input: str | None = None):
        runner = CliRunner()
        with monkeypatch.context() as m:
            if cwd is not None:
                m.chdir(cwd)
            result = runner.invoke(cli, list(args), env=env, input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


@pytest.fixture
def envfence_recorded():
    """A plugin manager with the installed plugins plus a recorder of audit events.

    ``envfence_recorded.plugins`` goes to ``open_session(plugins=...)``;
    ``envfence_recorded.events`` fills as the session emits.
    """
    import types

    import envfence
    from envfence.plugins import PluginManager

    events: list = []

    class Recorder:
        @envfence.hookimpl
        def audit_event(self, event):
            events.append(event)

    pm = PluginManager.from_entry_points()
    pm.register(Recorder(), "recorder")
    return types.SimpleNamespace(plugins=pm, events=events)
