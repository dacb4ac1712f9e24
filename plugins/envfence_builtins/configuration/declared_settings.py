"""Settings a project declares in envfence.toml, and checks against every declared setting.

A project declares its own settings, as plugins do through ``declare_settings``::

    [settings.JOBS_CSV]
    type = "path"                  # str, int, float, bool, url, path, port, cron, email
    description = "the day's jobs export"
    required = ["production"]      # or true (everywhere); default false
    default = "var/jobs.csv"
    secret = false                 # true masks it everywhere
    pattern = '.*\\.csv'           # a regular expression the whole value must match
    credential = false             # true reads it through the environment's prefix (PROD_...)

A declared setting is a known key: the process environment sets it (``JOBS_CSV``
exported in a container), ``config template`` lists it, and
``session.setting("JOBS_CSV")`` returns it typed.

Checks:

- ``SETTING_REQUIRED_MISSING``: a setting required in this environment is
  not set (or empty). Error.
- ``SETTING_FORMAT``: a value does not match its declared format. Error.
- ``SETTING_TYPE``: a value is not of its declared type (``PORT=eighty``). Error.
- ``SETTING_MISSPELLED``: a key no plugin declares that is one typo away
  from a declared one (``DEV_AIRTABLE_API_KY``). Warning; error in production,
  where the real setting is then usually missing too.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding, SettingSpec, reveal

NAME = "declared_settings"

#: The keys of a ``[settings.NAME]`` table.
SETTING_KEYS = ("type", "description", "default", "required", "secret", "pattern", "credential")


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """The settings of the project's ``[settings.NAME]`` tables.

    Raises :class:`ConfigurationError` naming the file and the key for a table
    that cannot work (an unknown type, a default of the wrong type, a pattern
    that is no regular expression).
    """
    from envfence.setting_types import TYPES, convert

    table = settings.raw.get("settings", {})
    source = settings.source

    def fail(key: str, problem: str, hint: str) -> ConfigurationError:
        return ConfigurationError(f"{source}: settings.{key}: {problem}", hint)

    if not isinstance(table, dict):
        raise fail("", "must be a table of [settings.NAME] tables", 'write [settings.JOBS_CSV] with type = "path"')
    specs = []
    for name, body in table.items():
        if not isinstance(body, dict):
            raise fail(name, "must be a table", f'write [settings.{name}] with type, description, default, required')
        for key in body:
            if key not in SETTING_KEYS:
                guess = close_match(key, SETTING_KEYS)
                raise fail(f"{name}.{key}", "unknown key", f"did you mean {guess[0]!r}?" if guess else f"known keys: {', '.join(SETTING_KEYS)}")
        type_name = body.get("type", "str")
        if type_name not in TYPES:
            raise fail(f"{name}.type", f"unknown type {type_name!r}", f"use one of: {', '.join(TYPES)}")
        required = body.get("required", False)
        if required is True:
            required_in = tuple(settings.environments)
        elif required is False:
            required_in = ()
        elif isinstance(required, list) and all(isinstance(r, str) for r in required):
            required_in = tuple(settings.require(r, f"{source}: settings.{name}.required") for r in required)
        else:
            raise fail(f"{name}.required", f"must be true, false or a list of environments, not {required!r}", 'write required = ["production"]')
        default = body.get("default")
        if default is not None:
            # TOML gives 8080 or true; the configuration holds text, as a .env file would.
            default = ("true" if default else "false") if isinstance(default, bool) else str(default)
            try:
                convert(type_name, default)
            except ValueError as exc:
                raise fail(f"{name}.default", f"{default!r} {exc}", f"give a default of type {type_name}") from None
        pattern = body.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise fail(f"{name}.pattern", f"is not a regular expression ({exc})", "fix the expression (a TOML literal string '...' keeps backslashes)") from None
        for flag in ("secret", "credential"):
            if not isinstance(body.get(flag, False), bool):
                raise fail(f"{name}.{flag}", f"must be true or false, not {body[flag]!r}", f"write {flag} = true")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise fail(f"{name}.description", "must be a string", 'write description = "what it is for"')
        specs.append(SettingSpec(
            name, description, secret=body.get("secret", False), credential=body.get("credential", False),
            required_in=required_in, format=pattern, default=default, plugin=NAME, type=type_name,
        ))
    return specs


def required_here(spec, environment) -> bool:
    """True when ``spec`` is required in ``environment`` (by name or by its base profile)."""
    return environment.name in spec.required_in or environment.based_on in spec.required_in


#: How alike a key and a declared name must be to call the key a misspelling (difflib's ratio).
CUTOFF = 0.85


def close_match(word: str, names: Iterable[str]) -> list[str]:
    """The declared name ``word`` is most likely a misspelling of, as ``[name]``, or ``[]``.

    difflib's ratio counts matching characters, and a character of ``word``
    that a name does not contain can never match; that bound, computed in C
    by ``str.translate``, rules out most names before difflib's slower checks,
    which would otherwise run for every key of the configuration against every
    declared name. The answer is difflib's own.
    """
    size = len(word)
    candidates = [
        name for name, length, absent in _prepared(tuple(names))
        if 2 * min(length, size - len(word.translate(absent))) >= CUTOFF * (length + size)
    ]
    import difflib

    return difflib.get_close_matches(word, candidates, n=1, cutoff=CUTOFF) if candidates else []


@functools.lru_cache(maxsize=8)
def _prepared(names: tuple[str, ...]) -> list[tuple[str, int, dict[int, None]]]:
    """Each name with its length and a ``str.translate`` table deleting its characters."""
    return [(name, len(name), str.maketrans("", "", name)) for name in names]


@hookimpl
def validate(session) -> list[Finding]:
    """Missing required settings, malformed values and likely misspellings."""
    config = session.config
    env = session.settings.environments[session.environment.name]
    findings: list[Finding] = []
    declared = {spec.name: spec for spec in session.settings_specs}

    for spec in session.settings_specs:
        key = config.credential_key(spec.name) if spec.credential else (spec.name if spec.name in config else None)
        value = None if key is None else str(reveal(config[key]))
        if value is None or not value.strip():
            if required_here(spec, env):
                target = config.key_for(spec.name) if spec.credential else spec.name
                what = f" ({spec.doc})" if spec.doc else ""
                findings.append(Finding(
                    "SETTING_REQUIRED_MISSING", "error",
                    f"{target} is required in {env.name} and is {'empty' if value is not None else 'not set'}{what}",
                    f"set {target} in .env.{env.name} (or .env.{env.name}.local for a secret kept out of version control)",
                    key=target, plugin=spec.plugin,
                ))
            continue
        shown = "a value" if config.entry(key).secret else repr(value)
        if spec.format and not re.fullmatch(spec.format, value):
            findings.append(Finding(
                "SETTING_FORMAT", "error", f"{key} holds {shown} that does not match the format {spec.format}",
                f"fix {key}{': ' + spec.doc if spec.doc else ''}", key=key, plugin=spec.plugin,
            ))
        if spec.type:
            from envfence.setting_types import convert

            try:
                convert(spec.type, value)
            except ValueError as exc:
                findings.append(Finding(
                    "SETTING_TYPE", "error", f"{key} (set in {config.entry(key).source}) holds {shown} that {exc}",
                    f"set {key} to a value of type {spec.type}{': ' + spec.doc if spec.doc else ''}", key=key, plugin=spec.plugin,
                ))

    if not declared:
        return findings
    names = sorted(declared)
    naming = config.naming
    for key, entry in config.entries.items():
        owner, plain = naming.split(key)
        if plain in declared or entry.source == "defaults":
            continue
        guess = close_match(plain, names)
        if guess:
            fixed = guess[0] if owner is None else naming.key(owner, guess[0])
            findings.append(Finding(
                "SETTING_MISSPELLED", session.profile.escalate("warning"),
                f"{key} (set in {entry.source}) is not a known setting; it looks like a misspelling of {fixed}",
                f"rename it {fixed}", key=key, plugin=declared[guess[0]].plugin,
            ))
    return findings
