"""Finding and loading plugins, in one fixed order.

Built-in and third-party plugins arrive the same way: through the ``envfence``
entry-point group. Each entry point is loaded on its own, so one that fails to
import or does not fit the hookspecs is recorded as failed and the rest work.

Registration order (pluggy calls the last registered first): the built-ins in
the order :data:`envfence_builtins.ORDER` declares, then third-party plugins
sorted by entry-point name, then inline plugins (:func:`add_inline_plugin`).
``envfence plugins`` lists them in that order. Hook calls are the typed
methods of :class:`~envfence.hookcalls.HookCalls`.
"""

from __future__ import annotations

import os
import types
from typing import Any, Iterable, Mapping

import pluggy

from . import slotted
from . import hookspecs
from .hookcalls import HookCalls, HookResult, PluginError, PluginFailed, guard_plugin, install_tracing
from .plugin_manifest import StandIn

__all__ = ["PluginManager", "PluginRecord", "PluginError", "PluginFailed", "HookResult", "hookimpl", "add_inline_plugin"]

ENTRY_POINT_GROUP = "envfence"
hookimpl = pluggy.HookimplMarker("envfence")


@slotted.frozen
class PluginRecord:
    """What ``envfence plugins`` shows for one plugin."""

    name: str
    status: str  #: ``loaded``, ``disabled`` or ``failed``
    distribution: str = ""
    version: str = ""
    module: str = ""
    hooks: tuple[str, ...] = ()
    reason: str = ""  #: why it is disabled or failed
    offers: tuple[str, ...] = ()  #: the hooks it declares for other plugins (``register_hookspecs``)


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


#: The package whose entry points are the built-in plugins.
BUILTIN_PACKAGE = "envfence_builtins"


def registration_order(found: Iterable[Any]) -> list[Any]:
    """Entry points in registration order: built-ins as :data:`envfence_builtins.ORDER` lists them, then the rest by name."""
    builtins, others = [], []
    for ep in found:
        (builtins if ep.value.split(".", 1)[0].split(":", 1)[0] == BUILTIN_PACKAGE else others).append(ep)
    if builtins:
        from envfence_builtins import ORDER

        rank = {name: i for i, name in enumerate(ORDER)}
        builtins.sort(key=lambda ep: (rank.get(ep.name, len(rank)), ep.name))
    return builtins + sorted(others, key=lambda ep: ep.name)


_HOOKABLE = (types.FunctionType, types.MethodType, staticmethod, classmethod)
#: Names a module's type may answer through a descriptor: left to pluggy's lookup.
_MODULE_TYPE_NAMES = frozenset(dir(types.ModuleType))


class _Pluggy(pluggy.PluginManager):
    """pluggy's manager, with a quick answer for the names of a plugin module that cannot be hooks.

    pluggy looks every name of a module up with ``inspect.getattr_static``,
    imported names and constants included: on every command that was most of
    the cost of registering the built-in plugins. A module's own value that
    is no function, or a plain function without the marker, is no hook;
    every other name goes through pluggy's own check.
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str):
        if type(plugin) is StandIn:  # its hookimpls are its own functions, marked as the real ones are
            value = plugin.__dict__.get(name)
            return value.__dict__.get("envfence_impl") if type(value) is types.FunctionType else None
        if type(plugin) is types.ModuleType and name not in _MODULE_TYPE_NAMES:
            value = plugin.__dict__.get(name)
            if not isinstance(value, _HOOKABLE):
                return None
            if type(value) is types.FunctionType and not (
                "envfence_impl" in value.__dict__ or "__func__" in value.__dict__
            ):
                return None
        return super().parse_hookimpl_opts(plugin, name)

    def parse_hookspec_opts(self, module_or_class: Any, name: str):
        # The same quick answer for a hookspec module: the core's and each
        # plugin's hookspecs modules import names that are no hookspecs, and
        # every manager (one per command, one per session in a process) adds them.
        # A class of hookspecs: most of its dir() is object's dunders, which no hook is named like.
        if type(module_or_class) is types.ModuleType and name not in _MODULE_TYPE_NAMES:
            value = module_or_class.__dict__.get(name)
            if type(value) is not types.FunctionType or "envfence_spec" not in value.__dict__:
                return None
        elif isinstance(module_or_class, type) and name.startswith("__") and name.endswith("__"):
            return None
        return super().parse_hookspec_opts(module_or_class, name)


class PluginManager(HookCalls):
    """The set of plugins a session calls, and the record of how each loaded.

    ``records`` keeps registration order (see the module's docstring); each
    hook is called through its typed method (:class:`~envfence.hookcalls.HookCalls`).
    """

    def __init__(self, trace: bool = False) -> None:
        self.pm = _Pluggy("envfence")
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.trace = trace
        #: Names that ``-p no:``, ``ENVFENCE_DISABLE_PLUGINS`` or ``ENVFENCE_PLUGINS`` gave and no plugin has.
        self.unknown: tuple[str, ...] = ()
        self._disabled_by_hook: dict[str, list[PluginRecord]] = {}
        #: The hooks plugins declared (``register_hookspecs``), with the plugin that declared each.
        self.declared: dict[str, str] = {}
        self._registering = ""
        #: The hookspecs objects each plugin declared, for the manifest; the hooks of disabled plugins it knows.
        self._specs_by: dict[str, list[Any]] = {}
        self._known_hooks: dict[str, list[str] | None] = {}
        #: Each registered plugin's hook callers until its unknown hooks are checked (:meth:`_fail_unknown`).
        self._callers: dict[str, list[Any]] = {}
        # Historic: each plugin's register_hookspecs is called as it registers, as pytest calls pytest_addhooks.
        self.pm.hook.register_hookspecs.call_historic(kwargs={"register": self._add_hookspecs})
        if trace:
            install_tracing(self.pm)

    def _add_hookspecs(self, specs: Any) -> None:
        """Add a plugin's hookspecs (``register_hookspecs``'s callback): each new, each with a failure policy."""
        names = [n for n in dir(specs) if self.pm.parse_hookspec_opts(specs, n) is not None]
        for name in names:
            if not hasattr(getattr(specs, name), "envfence_policy"):
                raise ValueError(f"hookspec {name} declares no failure_policy")
            caller = getattr(self.pm.hook, name, None)
            if caller is not None and caller.spec is not None:
                raise ValueError(f"hook {name} is declared already (by {self.declared.get(name, 'envfence')})")
        self.pm.add_hookspecs(specs)
        self.declared.update(dict.fromkeys(names, self._registering))
        self._specs_by.setdefault(self._registering, []).append(specs)

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
        manager = cls(trace=environ.get("ENVFENCE_TRACE_PLUGINS", "") not in ("", "0"))
        blocked = set(disabled) | set(_split(environ.get("ENVFENCE_DISABLE_PLUGINS")))
        allowed = set(_split(environ.get("ENVFENCE_PLUGINS"))) or None
        found = registration_order(entry_points(ENTRY_POINT_GROUP))
        manifest = _manifest(environ, found)
        seen: set[str] = set()
        manager._loading = True  # a hook one plugin declares may be implemented by one registered before it
        for ep in found:
            if ep.name in seen:  # the same distribution seen twice on sys.path
                if manifest is not None:
                    manifest.not_cached(ep)
                continue
            seen.add(ep.name)
            _load_entry_point(manager, ep, blocked, allowed, manifest)
        for name, plugin in _inline.items():
            if name in blocked or (allowed is not None and name not in allowed):
                manager.records[name] = PluginRecord(name, "disabled", module="inline", reason="blocked or not allowed")
                continue
            manager.register(plugin, name, distribution="inline")
        if manifest is not None:
            manifest.save()
        manager._loading = False
        for name in [n for n, r in manager.records.items() if r.status == "loaded"]:
            manager._fail_unknown(name)
        manager.unknown = tuple(sorted((blocked | (allowed or set())) - set(manager.records)))
        manager.pm.check_pending()  # every plugin left registered implements known (or optional) hooks
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
        failed, with the reason; nothing is raised. The hooks it declares
        (``register_hookspecs``) are added as it registers.
        """
        module = module or getattr(plugin, "__name__", type(plugin).__name__)
        self._registering = name
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, a name clash, or hookspecs it could not declare
            if self.pm.get_name(plugin) is not None:  # left half registered by its register_hookspecs
                self.pm.unregister(plugin)
            record = PluginRecord(name, "failed", distribution, version, module, reason=f"invalid: {exc}")
        else:
            # pluggy finds a plugin's callers by walking every hook: once per registration, not once per use,
            # and a stand-in names its own.
            callers = ([getattr(self.pm.hook, h) for h in plugin.hook_names()] if type(plugin) is StandIn
                       else self.pm.get_hookcallers(plugin) or [])
            guard_plugin(plugin, callers)
            self._callers[name] = callers
            hooks = tuple(sorted(c.name for c in callers if c.spec is not None))
            offers = tuple(sorted(h for h, by in self.declared.items() if by == name))
            record = PluginRecord(name, "loaded", distribution, version, module, hooks, offers=offers)
        finally:
            self._registering = ""
        self.records[name] = record
        if record.status == "loaded" and not self._loading:
            self._fail_unknown(name)
        return self.records[name]

    #: True while :meth:`from_entry_points` registers: unknown hooks are checked once all are in.
    _loading = False

    def _fail_unknown(self, name: str) -> None:
        """Fail plugin ``name`` when it implements a hook nothing declares (pluggy's ``check_pending`` rule).

        An implementation marked ``optionalhook=True`` is left alone: it
        implements a hook of a plugin that may not be there.
        """
        plugin = self.pm.get_plugin(name)
        callers = self._callers.pop(name, None)
        unknown = [
            caller.name
            for caller in (self.pm.get_hookcallers(plugin) if callers is None else callers) or []
            if caller.spec is None and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
        ]
        if unknown:
            self.pm.unregister(plugin)
            self.records[name] = slotted.evolve(
                self.records[name], status="failed", hooks=(),
                reason=f"implements unknown hook(s): {', '.join(unknown)} (no loaded plugin declares them)",
            )

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

    def disabled_guards(self) -> list[PluginRecord]:
        """The disabled plugins that implement ``pre_run_safety``: the guards a run would go without.

        A disabled plugin is not loaded; its module is imported here, once and
        only when a run asks, to look for the hook. One whose module cannot be
        imported counts as a guard: nothing shows that it is not one.
        """
        # A guard loaded and then unregistered behind the manager's back (by another plugin) is gone too.
        vanished = [
            slotted.evolve(r, status="disabled", reason="unregistered after loading")
            for r in self.records.values()
            if r.status == "loaded" and "pre_run_safety" in r.hooks and self.pm.get_plugin(r.name) is None
        ]
        return self.disabled_implementing("pre_run_safety") + vanished

    def disabled_implementing(self, hook: str) -> list[PluginRecord]:
        """The disabled plugins that implement ``hook`` (or cannot be inspected), as :meth:`disabled_guards` finds them."""
        if hook not in self._disabled_by_hook:
            self._disabled_by_hook[hook] = [
                r for r in self.records.values()
                if r.status == "disabled" and _implements(r, hook, self._known_hooks.get(r.name))
            ]
        return self._disabled_by_hook[hook]

    def failed_late(self, name: str, reason: str) -> None:
        """Record plugin ``name``, registered from the manifest, as failed when its module would not import."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        if name in self.records:
            self.records[name] = slotted.evolve(self.records[name], status="failed", hooks=(), reason=reason)

    def load_all(self) -> None:
        """Import every plugin registered from the manifest, so that one whose import fails shows as failed."""
        for name in list(self.records):
            target = getattr(self.pm.get_plugin(name), "envfence_stand_in", None)
            if target is not None and target.functions is None:
                try:
                    target.functions = target.load()
                except Exception:  # recorded as failed by failed_late
                    pass

    def names(self) -> set[str]:
        """Every plugin name known, whatever its status."""
        return set(self.records)

    def implementations(self, hook: str) -> list[tuple[str, Any]]:
        """``(plugin name, hookimpl)`` pairs of ``hook``, in call order."""
        caller = getattr(self.pm.hook, hook)
        return [(impl.plugin_name, impl) for impl in reversed(caller.get_hookimpls())]


def _implements(record: PluginRecord, hook: str, known: list[str] | None = None) -> bool:
    """True when the disabled plugin of ``record`` implements ``hook`` (or cannot be inspected).

    ``known`` are its hooks by the plugin manifest, when it holds them: then nothing is imported.
    """
    if known is not None:
        return hook in known
    if record.module == "inline":
        plugin = _inline.get(record.name)
    else:
        from importlib.metadata import EntryPoint

        try:
            plugin = EntryPoint(record.name, record.module, ENTRY_POINT_GROUP).load()
        except BaseException as exc:  # its import may raise anything; it stays unknown, so a guard
            if isinstance(exc, KeyboardInterrupt):
                raise
            return True
    return getattr(getattr(plugin, hook, None), "envfence_impl", None) is not None


def _manifest(environ: Mapping[str, str], found: list[Any]) -> Any:
    """The plugin manifest for ``found`` (:mod:`envfence.plugin_manifest`), or None when it is off."""
    from . import plugin_manifest

    path = plugin_manifest.cache_file(environ)
    return None if path is None else plugin_manifest.Manifest(path, found)


def _load_entry_point(manager: PluginManager, ep: Any, blocked: set[str], allowed: set[str] | None, manifest: Any) -> None:
    """Register the plugin of ``ep``: from the manifest when it holds, else imported; or record why not."""
    dist = getattr(ep, "dist", None)
    meta = {"distribution": dist.name if dist else "", "version": dist.version if dist else "", "module": ep.value}
    why = "blocked with -p no:NAME or ENVFENCE_DISABLE_PLUGINS" if ep.name in blocked else (
        "not in ENVFENCE_PLUGINS" if allowed is not None and ep.name not in allowed else "")
    if why:
        manager.records[ep.name] = PluginRecord(ep.name, "disabled", reason=why, **meta)
        if manifest is not None:
            manager._known_hooks[ep.name] = manifest.hooks(ep)
            manifest.not_cached(ep)
        return
    stand_in = manifest.stand_in(ep, manager.failed_late) if manifest is not None else None
    if stand_in is not None:
        manager.register(stand_in, ep.name, **meta)
        return
    try:
        plugin = ep.load()
    except BaseException as exc:  # a plugin's import may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        manager.records[ep.name] = PluginRecord(ep.name, "failed", reason=f"import failed: {type(exc).__name__}: {exc}", **meta)
        if manifest is not None:
            manifest.not_cached(ep)
        return
    record = manager.register(plugin, ep.name, **meta)
    if manifest is not None:
        if record.status == "loaded":
            manifest.describe(ep, plugin, manager.pm, manager._specs_by.get(ep.name, []))
        else:
            manifest.not_cached(ep)


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
