"""A JSON Schema for envfence.toml, so editors complete and check it, and the docs' settings reference.

Both are generated from the declarations (:data:`envfence.settings.CORE` and
the tables plugins hand in through ``declare_tables``), the same ones the
loader and ``envfence check`` read, so they cannot disagree. The package ships
the schema of the core and the built-in plugins as
``envfence/envfence.schema.json``; ``envfence config schema`` prints the one of
the plugins loaded (``-p no:NAME`` leaves a plugin's table out). A table no
loaded plugin declares is accepted as any table.

taplo and the editors built on it (VS Code's Even Better TOML) use it from a
first line ``#:schema ./envfence.schema.json`` in envfence.toml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .settings_tables import Table, combine, schema_of

#: Where the package keeps the generated schema.
SHIPPED = Path(__file__).with_name("envfence.schema.json")


def settings_schema(tables: Iterable[Table] = ()) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of envfence.toml: the core's keys and ``tables``."""
    from .settings import CORE

    root = schema_of(CORE)
    for table in combine(tables):
        root["properties"][table.name] = schema_of(table)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://envfence.invalid/envfence.schema.json",
        "title": "envfence.toml",
        **root,
        # A table of a plugin that is not loaded.
        "additionalProperties": {"type": "object"},
    }


def builtin_tables() -> list[Table]:
    """The tables the built-in plugins declare (what the shipped schema and the docs cover)."""
    from .plugins import default_manager

    others = [r.name for r in default_manager().records.values() if r.distribution != "envfence"]
    return default_manager(others).declare_tables().flat()


def render(tables: Iterable[Table] | None = None) -> str:
    """The schema as the text the package ships (``tables``: the built-ins' when None)."""
    chosen = builtin_tables() if tables is None else list(tables)
    return json.dumps(settings_schema(chosen), indent=2, sort_keys=False) + "\n"


def reference(tables: Iterable[Table] | None = None) -> str:
    """The docs' settings reference (reference/settings.md, generated at every docs build) in Markdown."""
    from .settings import CORE

    chosen = builtin_tables() if tables is None else list(tables)
    lines = [
        "# Settings reference",
        "",
        "Every key of `envfence.toml` (or `[tool.envfence]` in pyproject.toml) that the core and the",
        "built-in plugins declare. `envfence check` reports a value of the wrong kind as `SETTINGS_INVALID`",
        "and a key no declaration knows as `SETTINGS_UNKNOWN_KEY`; `envfence config schema` prints the same",
        "rules as a JSON Schema.",
        "",
    ]
    lines += _section("Top level", CORE)
    for table in sorted(combine(chosen), key=lambda t: t.name):
        lines += _section(f"[{table.name}]", table)
    return "\n".join(lines).rstrip() + "\n"


def _section(title: str, table: Table, names: str = "") -> list[str]:
    from .settings_kinds import toml

    if "" in table.each and not table.known():  # [settings.NAME]: the table is only its named tables
        each = table.each[""]
        return _section(f"[{each.table.name}]", each.table, each.names_hint)
    lines = [f"## {title}", "", table.description + (f" (`NAME`: {names})" if names else ""), ""]
    if table.keys:
        lines += ["| key | value | default | meaning |", "|---|---|---|---|"]
        for key in table.keys.values():
            default = "required" if key.required else ("—" if key.default is None else f"`{toml(key.default)}`")
            lines.append(f"| `{key.name}` | {key.kind.label} | {default} | {key.description} |")
        lines.append("")
    for sub in table.tables.values():
        lines += _section(f"[{sub.name}]", sub)
    for each in table.each.values():
        lines += _section(f"[{each.table.name}]", each.table, each.names_hint)
    return lines


if __name__ == "__main__":  # python -m envfence.schema: regenerate the shipped schema
    SHIPPED.write_text(render())
