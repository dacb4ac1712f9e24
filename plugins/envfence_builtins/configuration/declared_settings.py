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
from collections import Counter
from typing import Iterable

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding, SettingSpec, reveal

NAME = "declared_settings"



def _declared_table():
    from envfence.setting_types import TYPES
    from envfence.settings_kinds import either, flag, number, text, texts, whole
    from envfence.settings_tables import Table

    table = Table("settings", "declared settings, one [settings.NAME] table each (read by the declared_settings plugin)")
    setting = table.add_each("", "a setting of the project's configuration", names=r"[A-Za-z_][A-Za-z0-9_]*",
                             names_hint="a configuration key: letters, digits and _, not starting with a digit")
    setting.add("type", text(choices=TYPES), "str", "what the value must be, and what session.setting() returns")
    setting.add("description", text(empty=True, example="the day's jobs export"), "", "shown by config template and in findings")
    setting.add("default", either(text(empty=True, example="var/jobs.csv"), whole(), number(), flag()), None,
                "the value when no layer sets one")
    setting.add("required", either(flag(), texts(example="production")), False,
                "true: in every environment; a list: in these environments (or base profiles)")
    setting.add("secret", flag(), False, "mask the value everywhere")
    setting.add("pattern", text(example=r".*\.csv"), None, "a regular expression the whole value must match",
                check=_regex_problem)
    setting.add("credential", flag(), False, "read through the environment's prefix (PROD_NAME in production)")
    return table


def _regex_problem(value) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a regular expression ({exc})"
    return None


#: ``[settings.NAME]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _declared_table()


@hookimpl
def declare_tables():
    """The ``[settings]`` table."""
    return [TABLE]


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """The settings of the project's ``[settings.NAME]`` tables.

    Raises :class:`ConfigurationError` naming the file and the key for a table
    that cannot work (an unknown type or key, a default of the wrong type, a
    pattern that is no regular expression).
    """
    return [_spec(settings, name, body) for name, body in TABLE.read_strict(settings).each("").items()]


def _spec(settings, name: str, body) -> SettingSpec:
    """One ``[settings.NAME]`` table (its kinds already checked) as a :class:`SettingSpec`."""
    from envfence.setting_types import convert

    where = f"{settings.source}: settings.{name}"
    type_name = body["type"]
    required = body["required"]
    if required is True or required is False:
        required_in = tuple(settings.environments) if required else ()
    else:
        required_in = tuple(settings.require(r, f"{where}.required") for r in required)
    default = body["default"]
    if default is not None:
        # TOML gives 8080 or true; the configuration holds text, as a .env file would.
        default = ("true" if default else "false") if isinstance(default, bool) else str(default)
        try:
            convert(type_name, default)
        except ValueError as exc:
            raise ConfigurationError(f"{where}.default: {default!r} {exc}", f"give a default of type {type_name}") from None
    return SettingSpec(
        name, body["description"], secret=body["secret"], credential=body["credential"],
        required_in=required_in, format=body["pattern"], default=default, plugin=NAME, type=type_name,
    )


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
    declared name. difflib's own second bound (its ``quick_ratio``: the
    characters both words hold, counted) rules out most of the rest, before
    difflib is even loaded. The answer is difflib's own.
    """
    prepared, answers = _prepared(tuple(names))
    found = answers.get(word)
    if found is None:
        size, mine = len(word), None
        candidates = []
        for name, length, absent, counts in prepared:
            if 2 * min(length, size - len(word.translate(absent))) < CUTOFF * (length + size):
                continue
            mine = Counter(word) if mine is None else mine  # difflib's own quick_ratio: most fail it, and difflib stays unloaded
            if _ratio(sum((mine & counts).values()), length + size) >= CUTOFF:
                candidates.append(name)
        found = ()
        if candidates:
            import difflib

            found = tuple(difflib.get_close_matches(word, candidates, n=1, cutoff=CUTOFF))
        if len(answers) >= _ANSWERS_KEPT:
            answers.clear()
        answers[word] = found
    return list(found)


#: Words whose answer is kept, for each list of names (the same keys are checked again by every session).
_ANSWERS_KEPT = 100_000


def _ratio(matches: int, length: int) -> float:
    """difflib's ratio of ``matches`` characters in two words of ``length`` characters together (its own formula)."""
    return 2.0 * matches / length if length else 1.0


@functools.lru_cache(maxsize=8)
def _prepared(names: tuple[str, ...]) -> tuple[list[tuple[str, int, dict[int, None], Counter]], dict[str, tuple[str, ...]]]:
    """Each name with its length, a ``str.translate`` table deleting its characters and its characters counted;
    the answers given so far."""
    return [(name, len(name), str.maketrans("", "", name), Counter(name)) for name in names], {}


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
