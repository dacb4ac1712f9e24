"""Secrets that output cannot protect: pasted into a non-secret value, or too short.

- ``SECRET_IN_VALUE``: a non-secret value holds a secret's value (in any form
  the redactor knows: as it is, escaped, URL-encoded), as in
  ``DATABASE_URL=postgres://u:<DB_PASSWORD>@h/db``, or something shaped like a
  secret (a plugin's ``secret_shapes``). envfence masks it wherever it shows
  the value, but every other tool prints it. The finding names both keys,
  never the value. A warning in every profile: envfence's own output is
  masked, and a connection string holding its password is common practice.
- ``SECRET_UNMASKABLE``: a secret under 4 characters is never masked in
  output (masking every ``1`` or ``no`` would wreck messages and point at the
  secret), so it cannot be a secret: an error in every environment, and the
  run is refused.
- ``SECRET_TOO_SHORT``: a secret of 4 to 7 characters: guessable. The
  finding says neither the value nor its length. Warning; error in strict
  profiles.
"""

from __future__ import annotations

import bisect

from envfence import hookimpl
from envfence.models import Finding, Secret
from envfence.redaction import MIN_MASKED_LENGTH, MIN_SECRET_LENGTH

NAME = "secret_hygiene"


def _holders(session) -> dict[str, list[str]]:
    """Secret value -> the keys holding it (configuration first, then the process environment)."""
    from envfence.pipeline import is_secret_key

    holders: dict[str, list[str]] = {}
    for key, entry in session.config.entries.items():
        if isinstance(entry.value, Secret):
            holders.setdefault(entry.value.reveal(), []).append(key)
    declared = set(session.settings.secrets) | {s.name for s in session.settings_specs if s.secret}
    for key, value in session.environ.items():
        if key not in session.config.entries and is_secret_key(key, declared):
            holders.setdefault(value, []).append(f"{key} (process environment)")
    return holders


def unmaskable(session) -> list[Finding]:
    """An error for each secret of this environment under 4 characters: never masked, so it cannot be a secret."""
    here = session.environment.name
    findings = []
    for key, entry in sorted(session.config.entries.items()):
        if not isinstance(entry.value, Secret) or entry.prefix_environment not in (None, here):
            continue
        if 0 < len(entry.value.reveal()) < MIN_MASKED_LENGTH:
            findings.append(Finding(
                "SECRET_UNMASKABLE", "error",
                f"{key} (set in {entry.source}) is a secret under {MIN_MASKED_LENGTH} characters: it cannot be masked, "
                "so run output and logs would show it; nothing runs in this environment until it is longer",
                f"issue a real secret (at least {MIN_SECRET_LENGTH} random characters) and set it in {entry.source}, "
                f"or, if {key} is no secret, take it out of `secrets` in envfence.toml",
                key=key, plugin=NAME,
            ))
    return findings


@hookimpl
def pre_run_safety(session, request) -> list[Finding]:
    """Refuse a run in an environment holding a secret too short to mask, in every profile.

    A credential's is refused already, as a malformed credential
    (``CREDENTIAL_INVALID`` names this finding): said once, not twice.
    """
    return [f for f in unmaskable(session) if not session.config.holds_credential(f.key)]


@hookimpl
def validate(session) -> list[Finding]:
    """Secrets inside non-secret values; secrets too short to keep."""
    findings: list[Finding] = unmaskable(session)
    escalate = session.profile.escalate
    here = session.environment.name
    entries = session.config.entries
    plain: list[str] = []
    for key in sorted(entries):
        entry = entries[key]
        if not isinstance(entry.value, Secret):
            plain.append(key)
            continue
        value = entry.value.reveal()
        if value and MIN_MASKED_LENGTH <= len(value) < MIN_SECRET_LENGTH and entry.prefix_environment in (None, here):
            findings.append(Finding(
                "SECRET_TOO_SHORT", escalate("warning"),
                f"{key} (set in {entry.source}) is a secret shorter than {MIN_SECRET_LENGTH} characters: easy to guess, "
                f"and a secret under {MIN_MASKED_LENGTH} characters is never masked in output",
                f"issue a longer secret (at least {MIN_SECRET_LENGTH} random characters) and set it in {entry.source}",
                key=key, plugin=NAME,
            ))
    # One pass over every non-secret value, joined by a character no secret holds
    # and no word continues through, instead of one call per key.
    starts, at = [], 0
    for key in plain:
        starts.append(at)
        at += len(str(entries[key].value)) + 1
    matches = session.redactor().find("\0".join(str(entries[key].value) for key in plain))
    found: dict[str, list] = {}
    for m in matches:
        found.setdefault(plain[bisect.bisect_right(starts, m.start) - 1], []).append(m)
    holders = _holders(session) if found else {}
    for key, matches in sorted(found.items()):
        entry = entries[key]
        named = sorted({k for m in matches if m.secret is not None for k in holders.get(m.secret, [])})
        kinds = sorted({m.kind for m in matches if m.kind is not None})
        what = " and ".join(
            ([f"the value of {', '.join(named)}"] if named else []) + [f"what looks like {'an' if k[0].lower() in 'aeiou' else 'a'} {k}" for k in kinds]
        ) or "a secret's value"
        findings.append(Finding(
            "SECRET_IN_VALUE", "warning",
            f"{key} (set in {entry.source}) is not secret but holds {what}: "
            "envfence masks it, every other tool that shows it prints it",
            f"mark {key} secret (add it to `secrets` in envfence.toml), or build it from "
            f"{named[0] if named else 'a secret setting'} in code where it is used",
            key=key, plugin=NAME,
        ))
    return findings
