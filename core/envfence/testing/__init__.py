"""Test support for envfence and its plugins.

Nothing here is imported by ``import envfence`` or the command line.

- ``envfence.testing.project``: :class:`~envfence.testing.project.Project`, a
  throwaway project to write files into and run the command line in.
- ``envfence.testing.pytest_plugin``: the pytest fixtures (all named
  ``envfence_…``), for a suite that opts in with
  ``pytest_plugins = ["envfence.testing.pytest_plugin"]``; installing envfence
  registers none.
- Fake services: real HTTP servers standing in for a service, built on
  :class:`FakeService`. Plugins register them through the
  ``register_emulators`` hook, each beside its plugin (the built-in fake
  Airtable is ``envfence_builtins.fakes.airtable_emulator``, the fake HousecallPro
  ``envfence_builtins.fakes.housecallpro_emulator``). Each listens on 127.0.0.1 on
  a free port while its ``with`` block runs, holds seeded tokens and data
  (the demo project's, unless ``seed=False``), and answers in the real
  service's shapes, so pyairtable and requests talk to it unchanged::

      from envfence.testing import FakeAirtable, FakeHousecallPro

      with FakeAirtable() as airtable, FakeHousecallPro() as hcp:
          ...  # AIRTABLE_ENDPOINT_URL=airtable.url, HOUSECALLPRO_API_URL=hcp.url

  ``envfence emulate`` lists the registered fakes; ``envfence emulate NAME
  --port N`` runs one from the command line. See docs/fakes.md for how
  faithful each one is.
"""

from __future__ import annotations

from typing import Any

# The fakes load on first use: the pytest plugin imports this package in
# every test run, and most runs need no server.
_LAZY = {
    "FakeService": "envfence.testing._server",
    "HTTPError": "envfence.testing._server",
    "Request": "envfence.testing._server",
    "Response": "envfence.testing._server",
    "FakeAirtable": "envfence_builtins.fakes.airtable_emulator",
    "DEMO_DEV_TOKEN": "envfence_builtins.fakes.airtable_emulator",
    "DEMO_PROD_TOKEN": "envfence_builtins.fakes.airtable_emulator",
    "DEMO_DEV_BASE": "envfence_builtins.fakes.airtable_emulator",
    "DEMO_PROD_BASE": "envfence_builtins.fakes.airtable_emulator",
    "FakeHousecallPro": "envfence_builtins.fakes.housecallpro_emulator",
    "DEMO_DEV_KEY": "envfence_builtins.fakes.housecallpro_emulator",
    "DEMO_PROD_KEY": "envfence_builtins.fakes.housecallpro_emulator",
}

__all__ = sorted(_LAZY) + ["emulator", "emulators"]


def emulators(manager: Any = None) -> dict[str, type]:
    """The fake services plugins register (``register_emulators``): name -> class."""
    from ._server import registered_emulators

    return registered_emulators(manager)[0]


def emulator(name: str, manager: Any = None) -> type:
    """The fake service class registered as ``name`` (``airtable``, ``housecallpro``)."""
    found = emulators(manager)
    if name not in found:
        raise KeyError(f"no emulator {name!r} is registered; known: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envfence.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
