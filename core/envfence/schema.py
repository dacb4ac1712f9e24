"""A JSON Schema for envfence.toml, so editors complete and check it.

Generated from the settings the core reads (:mod:`envfence.settings`) and the
declared-setting types (:mod:`envfence.setting_types`). The package ships it
as ``envfence/envfence.schema.json``; ``envfence config schema`` prints it. A
plugin's own table (``[automations]``, ``[logging]``...) is accepted as any
table: its plugin checks it when the session opens.

taplo and the editors built on it (VS Code's Even Better TOML) use it from a
first line ``#:schema ./envfence.schema.json`` in envfence.toml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Where the package keeps the generated schema.
SHIPPED = Path(__file__).with_name("envfence.schema.json")

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}

_ENVIRONMENT = {
    "prefix": {"type": "string", "minLength": 1, "description": "credential prefix, e.g. STG for STG_AIRTABLE_API_KEY (default: the name in capitals)"},
    "aliases": {**_STRINGS, "description": "other names --env and ENVIRONMENT accept"},
    "hostname_patterns": {**_STRINGS, "description": "hostname tokens that mean this environment"},
    "based_on": {"enum": ["development", "production"], "description": "the base profile: development (verbose, lenient) or production (terse, strict)"},
    "profile": {"type": "object", "description": "profile fields this environment changes"},
}


def _setting() -> dict[str, Any]:
    from .setting_types import TYPES

    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "type": {"enum": list(TYPES), "default": "str", "description": "what the value must be, and what session.setting() returns"},
            "description": {"type": "string", "description": "shown by config template and in findings"},
            "default": {"type": ["string", "integer", "number", "boolean"], "description": "the value when no layer sets one"},
            "required": {
                "oneOf": [{"type": "boolean"}, _STRINGS],
                "description": "true: in every environment; a list: in these environments (or base profiles)",
            },
            "secret": {"type": "boolean", "description": "mask the value everywhere"},
            "pattern": {"type": "string", "format": "regex", "description": "a regular expression the whole value must match"},
            "credential": {"type": "boolean", "description": "read through the environment's prefix (PROD_NAME in production)"},
        },
    }


def settings_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of envfence.toml."""
    from .settings import _CORE_KEYS

    properties: dict[str, Any] = {
        "environment_variable": {"type": "string", "minLength": 1, "default": "ENVIRONMENT"},
        "default_environment": {"type": "string", "minLength": 1, "default": "development"},
        "secrets": _STRINGS,
        "environments": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": False, "properties": _ENVIRONMENT},
        },
        "strict_plugins": {"type": "boolean", "default": False},
        "required_plugins": _STRINGS,
        "timezone": {"type": "string", "minLength": 1, "examples": ["Europe/Paris", "UTC"]},
        "snapshots": {
            "type": "object", "additionalProperties": False,
            "properties": {"keep": {"type": "integer", "minimum": 1, "default": 20}},
        },
        "settings": {"type": "object", "additionalProperties": _setting()},
    }
    for key, text in _CORE_KEYS.items():
        properties.setdefault(key, {})["description"] = text
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://envfence.invalid/envfence.schema.json",
        "title": "envfence.toml",
        "description": "envfence project settings (also [tool.envfence] in pyproject.toml)",
        "type": "object",
        "properties": properties,
        # A plugin's table, named after the plugin.
        "additionalProperties": {"type": "object"},
    }


def render() -> str:
    """The schema as the text the package ships."""
    return json.dumps(settings_schema(), indent=2, sort_keys=False) + "\n"
