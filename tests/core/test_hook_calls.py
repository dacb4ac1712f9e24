"""The typed hook calls match the hookspecs, both ways, for the core's hooks and for those plugins offer."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest

import envfence
from envfence import hookspecs
from envfence.cli.plugins import hookspec_names
from envfence.hookcalls import HookCalls, OfferedHooks

CORE = Path(envfence.__file__).resolve().parent
PLUGINS = CORE.parent.parent / "plugins" / "envfence_builtins"


def _parameters(function) -> list[tuple[str, object]]:
    return [(p.name, p.annotation) for p in inspect.signature(function).parameters.values() if p.name != "self"]


def _result(spec) -> str:
    """The ``HookResult[T]`` a call of ``spec`` returns: its answer's type, without the None of "no answer"."""
    answer = inspect.signature(spec).return_annotation
    answer = re.sub(r" \| None$", "", answer) if answer != "None" else answer
    return f"HookResult[{answer}]"


def _methods(cls) -> dict[str, object]:
    return {n: f for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}


def _check(specs: dict[str, object], methods: dict[str, object], where: str) -> None:
    assert set(methods) == set(specs), f"{where}: methods without a hookspec {set(methods) - set(specs)}, hookspecs without a method {set(specs) - set(methods)}"
    for name, spec in specs.items():
        method = methods[name]
        params = inspect.signature(method).parameters.values()
        assert all(p.kind is p.KEYWORD_ONLY for p in params if p.name != "self"), f"{where}.{name}: keyword arguments only"
        assert _parameters(method) == _parameters(spec), f"{where}.{name} does not take the hookspec's parameters with their types"
        assert inspect.signature(method).return_annotation == _result(spec), f"{where}.{name} returns the wrong HookResult"


def test_every_core_hookspec_has_a_typed_method_and_every_method_a_hookspec():
    specs = {n: getattr(hookspecs, n) for n in hookspec_names(hookspecs)}
    # A historic hook is called by the manager as each plugin registers, never by a caller.
    calls = {n: f for n, f in specs.items() if not f.envfence_spec.get("historic")}
    assert set(calls) != set(specs) and "register_hookspecs" not in _methods(HookCalls)
    _check(calls, _methods(HookCalls), "HookCalls")


def test_no_method_takes_any_where_the_hookspec_has_a_type():
    for name, method in _methods(HookCalls).items():
        for param, annotation in _parameters(method):
            assert "Any" not in str(annotation) or "Any" in str(dict(_parameters(getattr(hookspecs, name)))[param]), (name, param)


@pytest.fixture(scope="module")
def offered() -> list[type[OfferedHooks]]:
    from envfence.plugins import PluginManager

    # Without the manifest, every built-in is imported with its typed calls (from the manifest, the hookspecs
    # are declared without importing their modules).
    manager = PluginManager.from_entry_points(environ={**os.environ, "ENVFENCE_PLUGIN_CACHE": "off"})
    found = [cls for cls in OfferedHooks.__subclasses__() if cls.__module__.startswith("envfence_builtins.")]
    assert {cls.declared_by for cls in found} >= {"alerts", "audit", "webhook_providers", "webhook_receiver"}
    assert manager.declared  # and declared their hooks
    return found


def test_every_hook_a_plugin_offers_has_a_typed_method_and_every_method_a_hookspec(offered):
    from envfence.plugins import PluginManager

    declared = PluginManager.from_entry_points().declared
    for cls in offered:
        specs = {n: getattr(cls.specs, n) for n in dir(cls.specs) if hasattr(getattr(cls.specs, n), "envfence_spec")}
        _check(specs, _methods(cls), cls.__name__)
        assert {declared[n] for n in specs} == {cls.declared_by}, f"{cls.__name__} names the wrong declaring plugin"


def test_no_hook_is_called_by_its_name_as_a_string():
    """Every call goes through a typed method: no ``getattr(plugins, hook)`` and no ``_call`` outside the typed calls."""
    for path in [*CORE.rglob("*.py"), *PLUGINS.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"getattr\([\w.]*plugins\b", text), path
        assert not re.search(r"getattr\([\w.]*\.hook\b", text) or path.name in ("plugins.py", "hookcalls.py"), path
        if re.search(r"\._call\(\"", text) and path.name != "hookcalls.py":
            assert "(OfferedHooks)" in text, f"{path}: a hook called around its typed method"
