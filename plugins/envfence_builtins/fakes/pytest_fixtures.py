"""pytest fixtures for the built-in fake services: the fake Airtable and the fake HousecallPro.

They come with the fakes, not with envfence's core test kit. A suite opts in
with, in its top-level ``conftest.py``::

    pytest_plugins = ["envfence.testing.pytest_plugin", "envfence_builtins.fakes.pytest_fixtures"]

- ``envfence_fake_airtable``: a running fake Airtable on 127.0.0.1, seeded
  with the demo's tokens and bases (``AIRTABLE_ENDPOINT_URL=envfence_fake_airtable.url``).
- ``envfence_fake_housecallpro``: a running fake HousecallPro on 127.0.0.1,
  seeded with the demo's keys (``HOUSECALLPRO_API_URL=envfence_fake_housecallpro.url``).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def envfence_fake_airtable() -> Iterator[Any]:
    """A running :class:`~envfence_builtins.fakes.airtable_emulator.FakeAirtable` seeded with the demo's tokens and bases."""
    from envfence_builtins.fakes.airtable_emulator import FakeAirtable

    with FakeAirtable() as server:
        yield server


@pytest.fixture
def envfence_fake_housecallpro() -> Iterator[Any]:
    """A running :class:`~envfence_builtins.fakes.housecallpro_emulator.FakeHousecallPro` seeded with the demo's keys."""
    from envfence_builtins.fakes.housecallpro_emulator import FakeHousecallPro

    with FakeHousecallPro() as server:
        yield server
