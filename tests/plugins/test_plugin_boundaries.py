"""The built-ins are plugins like any other: one list of them, and no plugin imports another's modules.

``envfence_builtins.ORDER`` is the one list of the built-ins and their
registration order; the ``[project.entry-points.envfence]`` table in
pyproject.toml must name the same plugins, in the same order, each at a
module that exists. A plugin meets another through hooks and core services,
so ``-p no:NAME`` really removes NAME: the import graph of the built-ins
(read with ``ast``) holds no import of another registered plugin's module,
and no two built-in modules import each other.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILTINS = REPO / "plugins" / "envfence_builtins"
PACKAGE = "envfence_builtins"


def _entry_points() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["entry-points"]["envfence"]


def test_the_entry_points_are_the_builtins_list_in_its_order():
    from envfence_builtins import ORDER

    declared = [name for name, value in _entry_points().items() if value.startswith(PACKAGE + ".")]
    assert declared == list(ORDER), "pyproject.toml's [project.entry-points.envfence] must list ORDER, in its order"
    assert len(set(ORDER)) == len(ORDER)
    for name, value in _entry_points().items():
        module = value.split(":", 1)[0]
        assert (REPO / "plugins" / Path(*module.split("."))).with_suffix(".py").is_file(), f"{name} = {value}: no such module"


# --- the import graph -----------------------------------------------------------------------


def _modules() -> dict[str, Path]:
    found = {}
    for path in BUILTINS.rglob("*.py"):
        parts = (PACKAGE, *path.relative_to(BUILTINS).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {t for t in found if t in modules and t != name}


def owners() -> dict[str, str]:
    """Module -> the registered plugin it belongs to: its entry module, ``<entry>_…`` beside it,
    and every module of a subpackage that holds that plugin alone."""
    plugins = {value.split(":", 1)[0]: name for name, value in _entry_points().items() if value.startswith(PACKAGE + ".")}
    per_package: dict[str, list[str]] = {}
    for module in plugins:
        per_package.setdefault(module.rsplit(".", 1)[0], []).append(module)
    owned = {}
    for module in _modules():
        package, _, stem = module.rpartition(".")
        if module in plugins:
            owned[module] = plugins[module]
        elif len(per_package.get(package, [])) == 1:
            owned[module] = plugins[per_package[package][0]]
        else:
            for entry in per_package.get(package, []):
                if stem.startswith(entry.rsplit(".", 1)[1] + "_"):
                    owned[module] = plugins[entry]
    return owned


def crossings() -> set[tuple[str, str]]:
    """``(importing module, imported module)`` where the two belong to different registered plugins."""
    modules, owned = _modules(), owners()
    found = set()
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            if target in owned and owned.get(name) != owned[target]:
                found.add((name.removeprefix(PACKAGE + "."), target.removeprefix(PACKAGE + ".")))
    return found


def test_no_plugin_imports_another_plugins_module():
    assert sorted(crossings()) == [], "a plugin imports another registered plugin's module: meet through a hook or a core service"


def test_the_audit_trail_and_its_commands_import_no_other_plugin():
    assert not {(a, b) for a, b in crossings() if a.startswith("audit.")}
    assert ("store.postgres_store", "audit.audit_trail") not in crossings()  # the chain comes from envfence.audit_chain


def _cycles() -> list[list[str]]:
    """The built-in modules that import each other, directly or round a longer loop (Tarjan's strongly connected components)."""
    modules = _modules()
    graph = {name: sorted(_imports(name, path, modules)) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(m.removeprefix(PACKAGE + ".") for m in component))

    for node in graph:
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_builtin_modules_import_each_other():
    """A plugin's entry module holds its hooks; its commands and its logic are modules it imports, never the reverse."""
    assert _cycles() == [], "modules import each other: move what both need into a module of its own"


def test_the_import_cycle_finder_finds_a_loop(tmp_path, monkeypatch):
    """The finder itself: two modules importing each other, and three in a ring, are found; a chain is not."""
    package = tmp_path / "envfence_builtins"
    (package / "ops").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "ops" / "__init__.py").write_text("")
    (package / "ops" / "a.py").write_text("def f():\n    from .a_cli import g\n")
    (package / "ops" / "a_cli.py").write_text("from envfence_builtins.ops.a import f\n")
    (package / "ops" / "b.py").write_text("from . import c\n")
    (package / "ops" / "c.py").write_text("from .d import x\n")
    (package / "ops" / "d.py").write_text("import envfence_builtins.ops.b\n")
    (package / "ops" / "e.py").write_text("from .a import f\n")
    monkeypatch.setitem(globals(), "BUILTINS", package)
    assert _cycles() == [["ops.a", "ops.a_cli"], ["ops.b", "ops.c", "ops.d"]]


# --- -p no:NAME really removes NAME ------------------------------------------------------------

_PROBE = r"""
import json, os, sys
from envfence.cli import cli
from envfence.pipeline import reset_session
from envfence.plugins import reset_default_managers

# One run with every built-in disabled first: what each run needs besides the built-ins (the core, click, pluggy,
# the .env reader) is then loaded once here, not once per fork. It loads no built-in module, or nothing is proved.
quiet, kept = os.open(os.devnull, os.O_WRONLY), (os.dup(1), os.dup(2))
os.dup2(quiet, 1)
os.dup2(quiet, 2)
try:
    cli.main(args=[*(arg for name in sys.argv[1:] for arg in ("-p", f"no:{name}")), "--json", "detect"], prog_name="envfence")
except SystemExit:
    pass
os.dup2(kept[0], 1)
os.dup2(kept[1], 2)
reset_default_managers()
reset_session()
warm = sorted(m for m in sys.modules if m.startswith("envfence_builtins."))
assert not warm, f"with every built-in disabled, {warm} were loaded"

out = {}
for name in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # each run in a fresh copy of a process that has loaded no plugin yet
        os.close(r)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        try:
            cli.main(args=["-p", f"no:{name}", "--json", "detect"], prog_name="envfence")
            code = 0
        except SystemExit as exc:
            code = exc.code
        loaded = sorted(m for m in sys.modules if m.startswith("envfence_builtins."))
        os.write(w, json.dumps({"code": code, "modules": loaded}).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.waitpid(pid, 0)
    out[name] = json.loads(data)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def disabled_runs(tmp_path_factory, run_once):
    """For each built-in NAME: the exit code of ``envfence -p no:NAME detect`` and the built-in modules it loaded.

    Probed once per test run, whichever worker runs the first of these tests.
    """
    import json
    import subprocess
    import sys

    from envfence_builtins import ORDER

    def probe() -> dict:
        root = tmp_path_factory.mktemp("project")
        (root / "envfence.toml").write_text("")
        done = subprocess.run([sys.executable, "-c", _PROBE, *ORDER], cwd=root, capture_output=True, text=True, timeout=600,
                              env={**__import__("os").environ, "ENVFENCE_ROOT": str(root),
                                   # every plugin imported at start, as without a manifest: the module graph is what is checked
                                   "ENVFENCE_PLUGIN_CACHE": "off"})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run_once("disabled-builtins", probe)


@pytest.mark.heavy
@pytest.mark.parametrize("name", __import__("envfence_builtins").ORDER)
def test_disabling_a_builtin_leaves_its_modules_unloaded(disabled_runs, name):
    owned = owners()
    mine = {m for m, plugin in owned.items() if plugin == name}
    run = disabled_runs[name]
    assert run["code"] in (0, None), f"envfence -p no:{name} detect failed"
    assert sorted(mine & set(run["modules"])) == []


def test_what_needs_a_disabled_plugin_says_so(make_project, run_cli):
    root = make_project()
    no_tree = run_cli("-p", "no:directories", "audit", "show", cwd=root)
    assert no_tree.exit_code == 2 and "enable the directories plugin" in no_tree.stderr
    no_trail = run_cli("-p", "no:audit", "audit", "show", cwd=root)
    assert no_trail.exit_code == 2 and "No such command 'audit'" in no_trail.stderr
    encrypted = make_project({".env": "A=enc:fernet:abc\n"}, name="encrypted")
    no_key = run_cli("-p", "no:encryption", "config", "show", cwd=encrypted)
    assert no_key.exit_code == 4 and "no plugin can decrypt it" in no_key.stderr
