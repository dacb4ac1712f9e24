"""A small, bounded memory of the latest results, for what is read again on every session opening.

What is kept is always checked against what was read before it is reused
(a file's bytes, their digest): this only spares parsing the same bytes
twice, never reading them.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


#: Every memory made, so that :func:`forget_all` reaches them all.
_ALL: "weakref.WeakSet[Recent[Any, Any]]" = weakref.WeakSet()


def forget_all() -> None:
    """Forget everything every :class:`Recent` keeps: the next session parses its files afresh.

    Nothing kept can be stale, so this is never needed for correctness; the
    benchmarks call it to time a process's first opening, and tests that count parses may.
    """
    for memory in list(_ALL):
        memory.clear()


class Recent(Generic[K, V]):
    """At most ``limit`` entries by key, the least recently stored dropped first; safe to share between threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[K, V] = {}
        self._lock = threading.Lock()
        _ALL.add(self)

    def get(self, key: K) -> V | None:
        """The value stored under ``key``, or None."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` as the newest entry."""
        with self._lock:
            self._entries.pop(key, None)
            while len(self._entries) >= self.limit:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


F = TypeVar("F", bound=Callable[..., Any])


def per_settings(function: F) -> F:
    """``function(settings, *args)`` computed once per settings object and arguments (the latest 32 kept).

    For what a plugin reads from envfence.toml alone: :class:`~envfence.settings.ProjectSettings`
    is frozen, and loading gives the same object only while the file's bytes are the same,
    so an edited file is new settings and computed afresh. The answer is shared: callers
    must not change it. An exception is not kept: the next call raises it again.
    """
    kept: Recent[tuple[Any, ...], tuple[Any, Any]] = Recent(32)

    @functools.wraps(function)
    def once(settings: Any, *args: Any) -> Any:
        key = (id(settings), *args)
        known = kept.get(key)
        if known is not None and known[0] is settings:
            return known[1]
        value = function(settings, *args)
        kept.put(key, (settings, value))  # holding the settings keeps their id from naming another object
        return value

    return once  # type: ignore[return-value]
