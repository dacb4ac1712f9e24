"""Per-session state for plugins, under typed keys (pytest's ``Config.stash`` is the model).

A plugin that keeps something for the length of a session (a client, a cache,
what it has already reported) keeps it in ``session.stash`` under a key it owns,
never in a module global keyed by the session::

    CLIENT = StashKey[ApiClient]()

    client = session.stash.setdefault(CLIENT, make_client(session))
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A key of :class:`Stash`; its type parameter is the type of the value kept under it."""

    __slots__ = ()


class Stash:
    """A mapping from :class:`StashKey` to values, one per session."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StashKey[Any], object] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._data[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._data[key])

    def get(self, key: StashKey[T], default: D) -> T | D:
        """The value under ``key``, or ``default``."""
        return cast(T, self._data[key]) if key in self._data else default

    def setdefault(self, key: StashKey[T], default: T) -> T:
        """The value under ``key``, storing ``default`` there first when there is none."""
        return cast(T, self._data.setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


#: What ``envfence init`` was asked to do beyond the tree (``"gitignore"``: write the
#: ``.gitignore`` lines a plugin offers); present, perhaps empty, for every ``init``, so a
#: plugin can do init-only work. The plugin that owns a request acts on it in
#: ``prepare_environment`` and reports what it changed as an ``info`` finding.
INIT_REQUESTS = StashKey[frozenset]()
