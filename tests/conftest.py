"""Shared fixtures: a project made in tmp_path, and the CLI run in it as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

# envfence.testing's fixtures (envfence_project, envfence_plugin, audit_events)
# arrive through the pytest11 entry point; pytester tests that plugin itself.
pytest_plugins = ["pytester"]

#: Variables that would let the machine running the tests leak into them.
CONTROL_VARIABLES = (
    "ENVIRONMENT",
    "ENVFENCE_ROOT",
    "ENVFENCE_HOSTNAME",
    "ENVFENCE_PLUGINS",
    "ENVFENCE_DISABLE_PLUGINS",
    "ENVFENCE_TRACE_PLUGINS",
    "ENVFENCE_STRICT_PLUGINS",
    "NO_COLOR",
)


@pytest.fixture(autouse=True)
def clean_process(monkeypatch):
    """Each test starts with no environment hints and a host whose name says nothing."""
    import os

    from envfence.pipeline import reset_session
    from envfence.plugins import reset_default_managers
    from envfence.testing.project import LEAKY_NAMES, LEAKY_PREFIXES

    # The developer's shell (DEV_*, PROD_* credentials) must not reach a test's project.
    for var in CONTROL_VARIABLES + tuple(n for n in os.environ if n in LEAKY_NAMES or n.startswith(LEAKY_PREFIXES)):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ENVFENCE_HOSTNAME", "build-box-01")
    # The machine's own name would tighten every guard (a stand-in may only
    # tighten): a test's host is the one it names. Tests of the stand-in set
    # the system's name apart (the seam, or a new UTS namespace).
    import envfence.pipeline

    monkeypatch.setattr(envfence.pipeline, "system_hostname", lambda: os.environ.get("ENVFENCE_HOSTNAME") or "build-box-01")
    reset_default_managers()
    reset_session()
    yield
    reset_default_managers()
    reset_session()


@pytest.fixture
def make_project(tmp_path):
    """Write a project: ``make_project({".env": "A=1"}, settings="...")`` returns its root."""

    def make(files: dict[str, str | bytes] | None = None, settings: str | None = "", name: str = "proj") -> Path:
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
def run_cli(monkeypatch):
    """Run ``envfence ARGS`` in a directory; returns click's Result (stdout, stderr, exit_code)."""
    from envfence.cli import cli

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None):
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
def recorded():
    """A plugin manager with the installed plugins plus a recorder of audit events.

    ``recorded.plugins`` goes to ``open_session(plugins=...)``; ``recorded.events``
    fills as the session emits.
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
