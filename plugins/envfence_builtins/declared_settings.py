"""Check configuration against the settings plugins declare (``declare_settings``).

- ``SETTING_REQUIRED_MISSING``: a setting required in this environment is
  not set (or empty). Error.
- ``SETTING_FORMAT``: a value does not match its declared format. Error.
- ``SETTING_MISSPELLED``: a key no plugin declares that is one typo away
  from a declared one (``DEV_AIRTABLE_API_KY``). Warning; error in production,
  where the real setting is then usually missing too.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from envfence import hookimpl
from envfence.models import Finding, reveal


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
        if spec.format and not re.fullmatch(spec.format, value):
            shown = "a value" if config.entry(key).secret else repr(value)
            findings.append(Finding(
                "SETTING_FORMAT", "error", f"{key} holds {shown} that does not match the format {spec.format}",
                f"fix {key}{': ' + spec.doc if spec.doc else ''}", key=key, plugin=spec.plugin,
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
