"""A cached manifest of each plugin distribution's hookimpls, so a plugin module is imported at its first call.

Registering a plugin needs only what pluggy reads from it: which hooks it
implements, under which attribute, with which markers (``tryfirst``,
``trylast``, ``wrapper``, ``optionalhook``, ``specname``) and argument names,
and the hookspecs it declares (``register_hookspecs``). The manifest keeps
that for every plugin of a distribution, so a later process registers a
*stand-in* for each plugin (an object holding one small function per
hookimpl, with the same markers and argument names) in the same order, and
pluggy orders and calls it exactly as it would the real module. A stand-in's
function imports the real module the first time any of its hooks is called.

Each distribution's entry is keyed by its name, its version, where its
metadata lives, its entry points, and the identity (inode, size, mtime, ctime)
of every file the entry was read from: the plugin modules, the modules their
hookimpls and declared hookspecs are defined in, and the distribution's
metadata. When any of them changed, the entry is not used: that
distribution's plugins are imported and registered as they are, and its entry
rebuilt. An entry is written only when every plugin of the distribution
loaded in this process (none failed, none disabled, none missing), so a
failure is never cached. A cache file that cannot be read, does not parse,
holds an entry whose checksum is wrong, or is not the user's own (another
user could drop a guard's hook from it) is ignored and rebuilt.

The cache lives in ``$ENVFENCE_PLUGIN_CACHE`` (a directory; ``off`` turns
the manifest off and imports every plugin at start, as without it), else
``$XDG_CACHE_HOME/envfence`` or ``~/.cache/envfence``, one file per
interpreter (its ``sys.prefix`` and version). It is written with
:mod:`marshal` (this interpreter's own format, read without importing
anything; the file is per interpreter anyway): a header naming the format,
the CRC-32 of the rest, then the distributions, each entry kept as its own
marshalled bytes with their CRC-32. A file whose header or CRC does not match
is never unmarshalled.
"""

from __future__ import annotations

import functools
import marshal
import os
import sys
import types
import zlib
from typing import Any, Callable, Iterable, Mapping

#: The manifest's format; a file of another format is rebuilt.
FORMAT = 3
_HEADER = b"envfence plugin manifest %d\n" % FORMAT
_OFF = ("0", "off", "no", "false")


class ManifestStale(Exception):
    """A plugin module no longer matches its cached hooks (changed in a way its files' identity did not show)."""


class PluginImportFailed(Exception):
    """A plugin's module failed to import at its first call."""


def cache_file(environ: Mapping[str, str]) -> str | None:
    """The manifest's path for this interpreter, or None when the manifest is off."""
    chosen = environ.get("ENVFENCE_PLUGIN_CACHE", "")
    if chosen.strip().lower() in _OFF:
        return None
    if not chosen:
        base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
        chosen = os.path.join(base, "envfence")
    tag = zlib.adler32(f"{sys.prefix}\0{sys.version}".encode())
    return os.path.join(chosen, f"plugins-py{sys.version_info[0]}{sys.version_info[1]}-{tag:08x}.manifest")


def identity(path: str) -> list[int] | None:
    """What tells a file's version without reading it: inode, size, mtime and ctime (None when absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def encode_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A distribution's entry as the file keeps it: its marshalled bytes and their CRC-32."""
    blob = marshal.dumps(entry)
    return {"entry": blob, "checksum": zlib.crc32(blob)}


def decode_entry(held: Any) -> dict[str, Any] | None:
    """The entry :func:`encode_entry` kept, or None when it is not one or its CRC-32 is wrong."""
    try:
        blob, checksum = held["entry"], held["checksum"]
        if not isinstance(blob, bytes) or zlib.crc32(blob) != checksum:
            return None
        entry = marshal.loads(blob)
    except (KeyError, TypeError, ValueError, EOFError):
        return None
    return entry if isinstance(entry, dict) else None


def file_bytes(distributions: Mapping[str, Any]) -> bytes:
    """The manifest file holding ``distributions`` (each held as :func:`encode_entry` makes it)."""
    payload = marshal.dumps({"format": FORMAT, "distributions": dict(distributions)})
    return _HEADER + zlib.crc32(payload).to_bytes(4, "big") + payload


def read_file(raw: bytes) -> dict[str, Any]:
    """The distributions of a manifest file's bytes, or nothing when they are not a manifest of this format."""
    start = len(_HEADER) + 4
    if not raw.startswith(_HEADER) or zlib.crc32(raw[start:]) != int.from_bytes(raw[len(_HEADER):start], "big"):
        return {}
    try:
        data = marshal.loads(raw[start:])
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("distributions"), dict):
        return {}
    return data["distributions"]


def _read(path: str) -> dict[str, Any]:
    """The file's distributions, or nothing when it is missing, not the user's own, or not a manifest."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return {}  # another user could write it: never trusted
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read()
    except OSError:
        return {}
    finally:
        os.close(fd)
    return read_file(raw)


def _dist_key(ep: Any) -> tuple[str, str] | None:
    """``(name, where its metadata lives)`` of the entry point's distribution, or None when unknown."""
    dist = getattr(ep, "dist", None)
    where = getattr(dist, "path", None) or getattr(dist, "_path", None)
    if dist is None or not where or not dist.name:
        return None
    return dist.name, str(where)


class Manifest:
    """The cached hooks of the plugin distributions found, read once per plugin manager."""

    def __init__(self, path: str, found: Iterable[Any]) -> None:
        self.path = path
        self._cached = _read(path)
        self._eps: dict[tuple[str, str], list[Any]] = {}
        for ep in found:
            key = _dist_key(ep)
            if key is not None:
                self._eps.setdefault(key, []).append(ep)
        self._valid: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._built: dict[tuple[str, str], dict[str, Any]] = {}
        self._incomplete: set[tuple[str, str]] = set()

    # --- reading -----------------------------------------------------------------

    def _entry(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """The distribution's cached entry when every part of its key still holds, else None."""
        if key not in self._valid:
            self._valid[key] = self._check(key)
        return self._valid[key]

    def _check(self, key: tuple[str, str]) -> dict[str, Any] | None:
        entry = decode_entry(self._cached.get(_stored_name(key)))
        if entry is None:
            return None
        try:
            eps = self._eps[key]
            if (
                entry["where"] != key[1]
                or entry["version"] != eps[0].dist.version
                or entry["entry_points"] != [[ep.name, ep.value] for ep in eps]
                or any(identity(path) != known for path, known in entry["files"].items())
            ):
                return None
        except (KeyError, TypeError, AttributeError, IndexError):
            return None
        return entry

    def hooks(self, ep: Any) -> list[str] | None:
        """The hooks the plugin of ``ep`` implements, by the cache (None when its entry does not hold)."""
        plugin = self._plugin(ep)
        return None if plugin is None else sorted({h[1] for h in plugin["hooks"]})

    def _plugin(self, ep: Any) -> dict[str, Any] | None:
        key = _dist_key(ep)
        entry = self._entry(key) if key is not None else None
        return entry["plugins"].get(ep.name) if entry is not None else None

    def stand_in(self, ep: Any, on_failure: Callable[[str, str], None]) -> "StandIn | None":
        """A stand-in for the plugin of ``ep`` built from the cache, or None (import it instead)."""
        plugin = self._plugin(ep)
        if plugin is None:
            return None
        try:
            return _stand_in(ep, plugin, on_failure)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            self._valid[_dist_key(ep)] = None  # a malformed entry: rebuilt from the real modules
            return None

    # --- building ----------------------------------------------------------------

    def describe(self, ep: Any, plugin: Any, pm: Any, specs: list[Any]) -> None:
        """Record the plugin of ``ep``, just registered for real, for the next process."""
        key = _dist_key(ep)
        if key is None or key in self._incomplete:
            return
        try:
            hooks, files = _hookimpls(pm, plugin)
            tables = _declared_tables(plugin, hooks)
            declared = [_spec_reference(s, pm) for s in specs]
            files.update(_module_file(s) for s in specs)
        except ManifestStale:
            self._incomplete.add(key)
            return
        entry = self._built.setdefault(key, {
            "where": key[1], "version": ep.dist.version,
            "entry_points": [[e.name, e.value] for e in self._eps[key]], "files": {}, "plugins": {},
        })
        entry["plugins"][ep.name] = {"hooks": hooks, "specs": declared, "tables": tables}
        for path in {*files, *_metadata_files(key[1])} - {None}:
            entry["files"][path] = identity(path)

    def not_cached(self, ep: Any) -> None:
        """The plugin of ``ep`` did not load here (failed, disabled, skipped): its distribution is not written."""
        key = _dist_key(ep)
        if key is not None:
            self._incomplete.add(key)

    def save(self) -> None:
        """Write the entries built in this process whose distributions loaded whole (best effort)."""
        complete = {
            key: entry for key, entry in self._built.items()
            if key not in self._incomplete and set(entry["plugins"]) == {ep.name for ep in self._eps[key]}
        }
        if not complete:
            return
        from pathlib import Path

        from . import files
        from .errors import EnvfenceError

        # Entries of distributions no longer where they were (a removed environment, a temporary directory) go.
        merged = {
            name: held for name, held in self._cached.items()
            if isinstance(held, dict) and os.path.isdir(name.partition(" ")[2])
        }
        for key, entry in complete.items():
            merged[_stored_name(key)] = encode_entry(entry)
        directory, name = os.path.split(self.path)
        try:
            files.write_atomic(Path(directory), name, file_bytes(merged))
        except (EnvfenceError, OSError):
            pass  # a cache that cannot be written is rebuilt next time; the command goes on


def _stored_name(key: tuple[str, str]) -> str:
    """A distribution's name in the file: its name and where its metadata lives (two copies may be on the path)."""
    return f"{key[0]} {key[1]}"


def _metadata_files(where: str) -> list[str]:
    return [os.path.join(where, n) for n in ("METADATA", "PKG-INFO", "entry_points.txt") if os.path.exists(os.path.join(where, n))]


def _module_file(obj: Any) -> str | None:
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(getattr(obj, "__module__", "") or "")
    return getattr(module, "__file__", None)


def _hookimpls(pm: Any, plugin: Any) -> tuple[list[list[Any]], set[str | None]]:
    """``[attribute, hook, markers, argnames, kwargnames]`` of each hookimpl of ``plugin``, and the files they come from."""
    import pluggy

    hooks: list[list[Any]] = []
    files: set[str | None] = {_module_file(plugin)}
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        opts = dict(opts)
        function = getattr(plugin, attr)
        impl = pluggy.HookImpl(plugin, "", function, opts)
        if impl.hookwrapper:
            raise ManifestStale("old-style hookwrappers are registered as they are")
        if len(impl.argnames) + len(impl.kwargnames) > len(_TEMPLATES) - 1:
            raise ManifestStale("too many arguments for a stand-in")
        code = getattr(getattr(function, "__func__", function), "__code__", None)
        files.add(getattr(code, "co_filename", None))
        opts = {k: v for k, v in impl.opts.items() if isinstance(v, (bool, str, type(None)))}
        hooks.append([attr, opts.get("specname") or attr, opts, list(impl.argnames), list(impl.kwargnames)])
    return hooks, {f for f in files if f is None or os.path.isabs(f)}


def _declared_tables(plugin: Any, hooks: list[list[Any]]) -> list[str] | None:
    """The names of the settings tables the plugin declares (``declare_tables``), or None when it declares none.

    Kept so that judging a project's envfence.toml imports only the plugins whose
    tables it holds; a declaration is a constant of the plugin's code, which the
    cache key already covers.
    """
    attrs = [h[0] for h in hooks if h[1] == "declare_tables"]
    if not attrs:
        return None
    try:
        return sorted({table.name for attr in attrs for table in (getattr(plugin, attr)() or ())})
    except Exception as exc:  # a plugin's declaration may raise anything: it is then asked every time
        raise ManifestStale(f"declare_tables raised {type(exc).__name__}") from None


def _spec_reference(specs: Any, pm: Any) -> list[Any]:
    """``[module, qualified name, hooks]`` naming a hookspecs object, checked to resolve to it again.

    ``hooks`` is what pluggy reads of a class of hookspecs (:func:`_spec_hooks`), so a later process
    declares them without importing their module; None for a module of hookspecs, imported then.
    """
    if isinstance(specs, types.ModuleType):
        return [specs.__name__, "", None]
    reference = [getattr(specs, "__module__", ""), getattr(specs, "__qualname__", "")]
    if _resolve(*reference) is not specs:
        raise ManifestStale("hookspecs that cannot be found again by name")
    return [*reference, _spec_hooks(specs, pm)]


def _spec_hooks(specs: type, pm: Any) -> list[list[Any]]:
    """``[name, argnames, kwargnames, defaults, markers, failure policy]`` of each hookspec of class ``specs``."""
    hooks = []
    declared = vars(pm.hook)  # the hook callers pluggy made when the plugin declared them (read, never called)
    for name in dir(specs):
        opts = pm.parse_hookspec_opts(specs, name)
        if opts is None:
            continue
        spec = declared[name].spec
        policy = getattr(spec.function, "envfence_policy", None)
        defaults = list(getattr(spec.function, "__defaults__", None) or ())[-len(spec.kwargnames):] if spec.kwargnames else []
        if (opts.get("warn_on_impl") is not None or opts.get("warn_on_impl_args") or policy is None
                or len(spec.argnames) + len(spec.kwargnames) > len(_TEMPLATES) - 2
                or not all(isinstance(d, (str, int, float, bool, type(None))) for d in defaults)):
            raise ManifestStale(f"hookspec {name} is declared as it is")  # warnings, no policy, odd defaults
        markers = {"firstresult": bool(opts.get("firstresult")), "historic": bool(opts.get("historic"))}
        hooks.append([name, list(spec.argnames), list(spec.kwargnames), defaults, markers, policy.value])
    return hooks


def _spec_class(module: str, qualname: str, hooks: list[list[Any]]) -> type:
    """A class of hookspecs standing in for ``module``'s ``qualname``: the same names, parameters, markers and policies."""
    from .hookspecs import OnError

    body: dict[str, Any] = {"__module__": module, "__qualname__": qualname,
                            "__doc__": f"stand-in for the hookspecs {module}:{qualname}, read from the manifest"}
    for name, argnames, kwargnames, defaults, markers, policy in hooks:
        names = ["self", *argnames, *kwargnames]
        if not all(isinstance(n, str) and n.isidentifier() for n in names) or len(set(names)) != len(names):
            raise ValueError("bad argument names")
        code = _TEMPLATES[len(names)].__code__.replace(co_varnames=tuple(names), co_name=name, co_qualname=f"{qualname}.{name}")
        function = types.FunctionType(code, {}, name, tuple(defaults) or None)
        function.envfence_spec = {**markers, "warn_on_impl": None, "warn_on_impl_args": None}  # type: ignore[attr-defined]
        function.envfence_policy = OnError(policy)  # type: ignore[attr-defined]
        body[name] = function
    return type(qualname.rpartition(".")[2], (), body)


def _resolve(module: str, qualname: str) -> Any:
    try:
        __import__(module)
        found: Any = sys.modules[module]
        for part in filter(None, qualname.split(".")):
            found = getattr(found, part)
    except (ImportError, KeyError, AttributeError):
        return None
    return found


# --- stand-ins -----------------------------------------------------------------------

# Functions of 0..10 positional parameters: a stand-in's signature is one of them with its parameters renamed.
def _t0(): pass  # noqa: E704
def _t1(a): pass  # noqa: E704
def _t2(a, b): pass  # noqa: E704
def _t3(a, b, c): pass  # noqa: E704
def _t4(a, b, c, d): pass  # noqa: E704
def _t5(a, b, c, d, e): pass  # noqa: E704
def _t6(a, b, c, d, e, f): pass  # noqa: E704
def _t7(a, b, c, d, e, f, g): pass  # noqa: E704
def _t8(a, b, c, d, e, f, g, h): pass  # noqa: E704


_TEMPLATES = (_t0, _t1, _t2, _t3, _t4, _t5, _t6, _t7, _t8)


@functools.lru_cache(maxsize=None)
def _signature(name: str, argnames: tuple[str, ...], kwargnames: tuple[str, ...]) -> types.FunctionType:
    """A function whose parameters are the hookimpl's, for pluggy to read (it follows ``__wrapped__``).

    Built once per name and parameters in a process: many plugins implement ``validate(session)``.
    """
    names = [*argnames, *kwargnames]
    if not all(isinstance(n, str) and n.isidentifier() for n in names) or len(set(names)) != len(names):
        raise ValueError("bad argument names")
    code = _TEMPLATES[len(names)].__code__.replace(co_varnames=tuple(names), co_name=name, co_qualname=name)
    return types.FunctionType(code, {}, name, (None,) * len(kwargnames) or None)


class _Target:
    """The real plugin behind a stand-in, imported at the first call of one of its hooks."""

    def __init__(self, ep: Any, hooks: list[list[Any]], on_failure: Callable[[str, str], None]) -> None:
        self.ep, self.hooks, self.on_failure = ep, hooks, on_failure
        self.functions: dict[str, Any] | None = None

    def function(self, attr: str) -> Any:
        """The real hookimpl named ``attr`` (the module imported on first use)."""
        if self.functions is None:
            self.functions = self.load()
        return self.functions[attr]

    def load(self) -> dict[str, Any]:
        """Import the plugin and take its hookimpls, checked against the cached markers."""
        try:
            plugin = self.ep.load()
        except BaseException as exc:  # a plugin's import may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            reason = f"import failed: {type(exc).__name__}: {exc}"
            self.on_failure(self.ep.name, reason)
            raise PluginImportFailed(reason) from None
        functions = {}
        for attr, _hook, opts, _args, _kwargs in self.hooks:
            value = getattr(plugin, attr, None)
            marker = getattr(getattr(value, "__func__", value), "envfence_impl", None)
            if not isinstance(marker, dict) or any(marker.get(k) != v for k, v in opts.items()):
                reason = f"{attr} changed since its hooks were cached; run the command again"
                self.on_failure(self.ep.name, reason)
                raise ManifestStale(reason)
            functions[attr] = value
        return functions


class StandIn:
    """A plugin registered from the manifest in place of its module: one lazy function per cached hookimpl.

    A plain object rather than a module: pluggy reads a hookimpl of an object
    from its ``__dict__`` directly, where a module's every name goes through
    ``inspect.getattr_static`` (a third of registering the built-ins).
    """

    def __init__(self, name: str, target: "_Target", tables: list[str] | None) -> None:
        self.__name__ = name
        self.__doc__ = f"stand-in for the plugin {target.ep.name!r}, imported at its first call"
        self.envfence_stand_in = target
        self.envfence_tables = tables

    def hook_names(self) -> list[str]:
        """The hooks its cached hookimpls implement (what pluggy would find walking every hook)."""
        return list(dict.fromkeys(h[1] for h in self.envfence_stand_in.hooks))

    def __repr__(self) -> str:
        return f"<{self.__doc__}>"


def _stand_in(ep: Any, plugin: dict[str, Any], on_failure: Callable[[str, str], None]) -> StandIn:
    """A :class:`StandIn` for ``ep``'s plugin, from its cached hookimpls."""
    target = _Target(ep, plugin["hooks"], on_failure)
    stand_in = StandIn(ep.value.partition(":")[0], target, plugin.get("tables"))
    for attr, hook, opts, argnames, kwargnames in plugin["hooks"]:
        if hook == "register_hookspecs" and plugin["specs"]:
            function = _declaring(plugin["specs"], argnames)
        else:
            function = _lazy(target, attr, bool(opts.get("wrapper")))
            function.__wrapped__ = _signature(attr, tuple(argnames), tuple(kwargnames))  # type: ignore[attr-defined]
        function.envfence_impl = dict(opts)  # type: ignore[attr-defined]
        setattr(stand_in, attr, function)
    return stand_in


def _lazy(target: _Target, attr: str, wrapper: bool) -> types.FunctionType:
    if wrapper:
        def lazy_wrapper(*args: Any) -> Any:
            return (yield from target.function(attr)(*args))

        return lazy_wrapper  # type: ignore[return-value]

    def lazy(*args: Any) -> Any:
        return target.function(attr)(*args)

    return lazy  # type: ignore[return-value]


def _declaring(specs: list[list[Any]], argnames: list[str]) -> types.FunctionType:
    """A ``register_hookspecs`` that declares the cached hookspecs without importing the plugin or their module."""
    if argnames != ["register"]:
        raise ValueError("register_hookspecs takes register")

    def register_hookspecs(register: Callable[[Any], None]) -> None:
        for module, qualname, hooks in specs:
            found = _spec_class(module, qualname, hooks) if hooks is not None else _resolve(module, qualname)
            if found is None:
                raise ManifestStale(f"hookspecs {module}:{qualname} are gone; run the command again")
            register(found)

    return register_hookspecs  # type: ignore[return-value]
