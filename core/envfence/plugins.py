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
    """The set of plugins a session calls, and the record of how each loaded."""

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
        from importlib.metadata import entry_points

        environ = os.environ if environ is None else environ
        manager = cls()
        manager.trace = environ.get("ENVFENCE_TRACE_PLUGINS", "") not in ("", "0")
        blocked = set(disabled) | set(_split(environ.get("ENVFENCE_DISABLE_PLUGINS")))
        allowed = set(_split(environ.get("ENVFENCE_PLUGINS"))) or None
        seen: set[str] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
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
        return manager

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
            result = caller(**kwargs)
            return result if firstresult else (list(result), [])
        results: list[Any] = []
        errors: list[PluginError] = []
        for impl in impls:
            args = [kwargs[name] for name in impl.argnames]
            started = time.perf_counter()
            try:
                value = impl.function(*args)
            except EnvfenceError:
                raise
            except Exception as exc:
                if firstresult:
                    raise PluginError(impl.plugin_name, hook, exc) from exc
                errors.append(PluginError(impl.plugin_name, hook, exc))
                value = None
            finally:
                if self.trace:
                    took = (time.perf_counter() - started) * 1000
                    print(f"envfence: trace: {hook} -> {impl.plugin_name} ({took:.2f} ms)", file=sys.stderr)
            if value is not None:
                if firstresult:
                    return value
                results.append(value)
        return None if firstresult else (results, errors)


_default: dict[tuple, PluginManager] = {}


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
