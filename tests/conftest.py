"""The suite's isolation from the machine running it.

Every fixture the tests use (``make_project``, ``run_cli``, ``recorded``,
``envfence_project``, ``envfence_plugin``, ``audit_events``) is envfence's
public test kit, :mod:`envfence.testing.pytest_plugin`: the tests use what
plugin authors use.
"""

from __future__ import annotations

import pytest

# envfence.testing's fixtures arrive through the pytest11 entry point; pytester tests that plugin itself.
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
    reset_default_managers()
    reset_session()
    yield
    reset_default_managers()
    reset_session()
