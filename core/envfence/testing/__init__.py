"""Test support for envfence and its plugins.

Nothing here is imported by ``import envfence`` or the command line.

- ``envfence.testing.project``: :class:`~envfence.testing.project.Project`, a
  throwaway project to write files into and run the command line in.
- ``envfence.testing.pytest_plugin``: the pytest fixtures, loaded
  automatically wherever envfence is installed (the ``pytest11`` entry point).
- ``envfence.testing.airtable`` and ``envfence.testing.housecallpro``: real
  HTTP servers standing in for Airtable and HousecallPro. Each listens on
  127.0.0.1 on a free port while its ``with`` block runs, holds seeded tokens
  and data (the demo project's, unless ``seed=False``), and answers in the
  real service's shapes, so pyairtable and requests talk to it unchanged::

      from envfence.testing import FakeAirtable, FakeHousecallPro

      with FakeAirtable() as airtable, FakeHousecallPro() as hcp:
          ...  # AIRTABLE_ENDPOINT_URL=airtable.url, HOUSECALLPRO_API_URL=hcp.url

  ``envfence emulate airtable|housecallpro --port N`` runs one from the
  command line.
"""

from __future__ import annotations

from typing import Any

# The fakes load on first use: the pytest plugin imports this package in
# every test run, and most runs need no server.
_LAZY = {
    "FakeAirtable": "airtable",
    "DEMO_DEV_TOKEN": "airtable",
    "DEMO_PROD_TOKEN": "airtable",
    "DEMO_DEV_BASE": "airtable",
    "DEMO_PROD_BASE": "airtable",
    "FakeHousecallPro": "housecallpro",
    "DEMO_DEV_KEY": "housecallpro",
    "DEMO_PROD_KEY": "housecallpro",
}

#: The fakes ``envfence emulate`` knows: name -> class name.
EMULATORS = {"airtable": "FakeAirtable", "housecallpro": "FakeHousecallPro"}

__all__ = sorted(_LAZY) + ["EMULATORS", "emulator"]


def emulator(name: str) -> type:
    """The fake service class called ``name`` (``airtable``, ``housecallpro``)."""
    return __getattr__(EMULATORS[name])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envfence.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
