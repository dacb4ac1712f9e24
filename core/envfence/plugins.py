"""Finding, loading and calling plugins.

Built-in and third-party plugins arrive the same way: through the ``envfence``
entry-point group. Each entry point is loaded on its own, so one that fails to
import or does not fit the hookspecs is recorded as failed and the rest work.
Hook calls go through :meth:`PluginManager.call`, which keeps one plugin's
exception from stopping the others.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Mapping

import attrs
import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "envfence"
hookimpl = pluggy.HookimplMarker("envfence")


@attrs.frozen
class PluginRecord:
    """What ``envfence plugins`` shows for one plugin."""

    name: str
    status: str  #: ``loaded``, ``disabled`` or ``failed``
    distribution: str = ""
    version: str = ""
    module: str = ""
    hooks: tuple[str, ...] = ()
    reason: str = ""  #: why it is disabled or failed


class PluginError(Exception):
    """A plugin raised inside a hook; carries the plugin's name."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.error = error


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


class PluginManager:
    """The set of plugins a session calls, and the record of how each loaded.

    Order of registration, and so of calls in reverse: entry-point plugins in
    the order ``importlib.metadata`` lists them, then inline plugins (see
    :func:`add_inline_plugin`), which are therefore called first.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("envfence")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.trace = False

    # --- loading -------------------------------------------------------------

    @classmethod
    def from_entry_points(
        cls,
        disabled: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> "PluginManager":
        """Load every plugin of the ``envfence`` group.

        :param disabled: names blocked with ``-p no:NAME``.
        :param environ: read for ``ENVFENCE_DISABLE_PLUGINS`` (a block list),
            ``ENVFENCE_PLUGINS`` (an allow-list) and ``ENVFENCE_TRACE_PLUGINS``.
        """
        from .entrypoints import entry_points

        environ = os.environ if environ is None else environ
        manager = cls()
        manager.trace = environ.get("ENVFENCE_TRACE_PLUGINS", "") not in ("", "0")
        blocked = set(disabled) | set(_split(environ.get("ENVFENCE_DISABLE_PLUGINS")))
        allowed = set(_split(environ.get("ENVFENCE_PLUGINS"))) or None
        seen: set[str] = set()
        for ep in entry_points(ENTRY_POINT_GROUP):
            if ep.name in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            meta = {
                "distribution": dist.name if dist else "",
                "version": dist.version if dist else "",
                "module": ep.value,
            }
            if ep.name in blocked:
                manager.records[ep.name] = PluginRecord(ep.name, "disabled", reason="blocked with -p no:NAME or ENVFENCE_DISABLE_PLUGINS", **meta)
                continue
            if allowed is not None and ep.name not in allowed:
                manager.records[ep.name] = PluginRecord(ep.name, "disabled", reason="not in ENVFENCE_PLUGINS", **meta)
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # a plugin's import may raise anything, SystemExit included
                if isinstance(exc, KeyboardInterrupt):
                    raise
                manager.records[ep.name] = PluginRecord(
                    ep.name, "failed", reason=f"import failed: {type(exc).__name__}: {exc}", **meta
                )
                continue
            manager.register(plugin, ep.name, **meta)
        for name, plugin in _inline.items():
            if name in blocked or (allowed is not None and name not in allowed):
                manager.records[name] = PluginRecord(name, "disabled", module="inline", reason="blocked or not allowed")
                continue
            manager.register(plugin, name, distribution="inline")
        return manager

    def raise_if_failed(self, why: str) -> None:
        """Raise :class:`~envfence.errors.ConfigurationError` when any plugin failed to load.

        :param why: what asked for strictness (``--strict-plugins``, a setting), for the message.
        """
        from .errors import ConfigurationError

        failed = self.failed
        if failed:
            listing = "; ".join(f"{r.name}: {r.reason}" for r in failed)
            raise ConfigurationError(
                f"plugin(s) failed to load and {why} makes that an error: {listing}",
                "fix or reinstall the plugin, or disable it with -p no:NAME (see `envfence plugins`)",
            )

    def register(self, plugin: Any, name: str, distribution: str = "", version: str = "", module: str = "") -> PluginRecord:
        """Register ``plugin`` under ``name``, checking it against the hookspecs.

        A plugin whose hooks do not fit is unregistered and recorded as
        failed, with the reason; nothing is raised.
        """
        module = module or getattr(plugin, "__name__", type(plugin).__name__)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, or a name clash
            record = PluginRecord(name, "failed", distribution, version, module, reason=f"invalid: {exc}")
        else:
            unknown = [
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or []
                if caller.spec is None
            ]
            if unknown:
                self.pm.unregister(plugin)
                record = PluginRecord(
                    name, "failed", distribution, version, module,
                    reason=f"implements unknown hook(s): {', '.join(unknown)}",
                )
            else:
                hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(plugin) or []))
                record = PluginRecord(name, "loaded", distribution, version, module, hooks)
        self.records[name] = record
        return record

    def unregister(self, name: str) -> None:
        """Remove a registered plugin by name."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)

    @property
    def failed(self) -> list[PluginRecord]:
        """The plugins that failed to load."""
        return [r for r in self.records.values() if r.status == "failed"]

    def missing(self, required: Iterable[str]) -> list[tuple[str, str]]:
        """``(name, why)`` for each required plugin that is not loaded."""
        result = []
        for name in required:
            record = self.records.get(name)
            if record is None:
                result.append((name, "not installed"))
            elif record.status != "loaded":
                result.append((name, f"{record.status}: {record.reason}"))
        return result

    def names(self) -> set[str]:
        """Every plugin name known, whatever its status."""
        return set(self.records)

    def implementations(self, hook: str) -> list[tuple[str, Any]]:
        """``(plugin name, hookimpl)`` pairs of ``hook``, in call order."""
        caller = getattr(self.pm.hook, hook)
        return [(impl.plugin_name, impl) for impl in reversed(caller.get_hookimpls())]

    # --- calling -------------------------------------------------------------

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` with keyword arguments, one plugin at a time.

        For a firstresult hook, returns the first non-None answer (or None).
        Otherwise returns ``(results, errors)``: the non-None answers of every
        plugin, and a :class:`PluginError` for each plugin that raised. An
        exception of envfence's own (:class:`envfence.EnvfenceError`) is a
        decision, not a fault, and is raised as it is.
        """
        from .errors import EnvfenceError

        caller = getattr(self.pm.hook, hook)
        spec_opts = caller.spec.opts if caller.spec else {}
        firstresult = spec_opts.get("firstresult", False)
        impls = list(reversed(caller.get_hookimpls()))
        if any(impl.hookwrapper or impl.wrapper for impl in impls):
            # Wrappers need pluggy's own loop; they lose per-plugin isolation.
            began = time.perf_counter()
            try:
                result = caller(**kwargs)
            finally:
                if self.trace:
                    names = ", ".join(impl.plugin_name for impl in impls)
                    self._trace(hook, impls, [f"{names} (through a wrapper: no per-plugin timings)"], began, wrapped=True)
            return result if firstresult else (list(result), [])
        results: list[Any] = []
        errors: list[PluginError] = []
        timings: list[str] = []
        began = time.perf_counter()
        try:
            for impl in impls:
                args = [kwargs[name] for name in impl.argnames]
                started = time.perf_counter()
                value, outcome = None, "no answer"
                try:
                    value = impl.function(*args)
                    if value is not None:
                        outcome = "answered"
                except EnvfenceError as exc:
                    outcome = f"raised {type(exc).__name__}"
                    raise
                except Exception as exc:
                    outcome = f"raised {type(exc).__name__}"
                    if firstresult:
                        raise PluginError(impl.plugin_name, hook, exc) from exc
                    errors.append(PluginError(impl.plugin_name, hook, exc))
                finally:
                    if self.trace:
                        took = (time.perf_counter() - started) * 1000
                        timings.append(f"{impl.plugin_name} {took:.2f} ms ({outcome})")
                if value is not None:
                    if firstresult:
                        return value
                    results.append(value)
        finally:
            if self.trace:
                self._trace(hook, impls, timings, began)
        return None if firstresult else (results, errors)

    def _trace(self, hook: str, impls: list[Any], timings: list[str], began: float, wrapped: bool = False) -> None:
        """Print one line for a hook call: every plugin in call order, its time and what it did."""
        total = (time.perf_counter() - began) * 1000
        skipped = [] if wrapped else [impl.plugin_name for impl in impls[len(timings):]]
        parts = timings + [f"{name} (not called)" for name in skipped]
        body = "; ".join(parts) if parts else "no plugin implements it"
        print(f"envfence: trace: {hook} [{total:.2f} ms]: {body}", file=sys.stderr)


_default: dict[tuple, PluginManager] = {}
_inline: dict[str, Any] = {}


def add_inline_plugin(plugin: Any, name: str | None = None) -> str:
    """Register ``plugin`` (a module or object with hookimpls) for every manager loaded from now on.

    For an embedding tool that brings its own hooks without an entry point,
    and for tests (``envfence.testing``'s ``envfence_plugin`` fixture). Inline
    plugins are registered after the entry-point plugins, so they are called
    first. Returns the name it was registered under.
    """
    name = name or getattr(plugin, "__name__", None) or f"inline-{id(plugin)}"
    _inline[name] = plugin
    reset_default_managers()
    return name


def remove_inline_plugin(name: str) -> None:
    """Undo :func:`add_inline_plugin`."""
    if _inline.pop(name, None) is not None:
        reset_default_managers()


def default_manager(disabled: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> PluginManager:
    """The process's plugin manager for these blocks, loaded once and reused.

    Entry points are scanned once per process: a cron job or an embedding tool
    that opens many sessions pays for plugin loading once.
    """
    environ = os.environ if environ is None else environ
    key = (
        frozenset(disabled),
        environ.get("ENVFENCE_DISABLE_PLUGINS", ""),
        environ.get("ENVFENCE_PLUGINS", ""),
        environ.get("ENVFENCE_TRACE_PLUGINS", ""),
    )
    if key not in _default:
        _default[key] = PluginManager.from_entry_points(disabled, environ)
    return _default[key]


def reset_default_managers() -> None:
    """Forget loaded plugin managers (tests that install plugins call it)."""
    _default.clear()
