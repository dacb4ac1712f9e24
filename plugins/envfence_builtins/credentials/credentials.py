"""Credentials across environments: prefixes kept, no secret shared between environments.

- ``CREDENTIAL_UNPREFIXED``: a credential read under its plain name
  (``AIRTABLE_API_KEY`` instead of ``PROD_AIRTABLE_API_KEY``) is shared by
  every environment that has no prefixed one. A warning in development, an
  error in production.
- ``CREDENTIAL_OTHER_PREFIX``: another environment's credential written in
  this environment's own file (``DEV_...`` in ``.env.production``) is never
  read here; the real one is probably missing. Warning, error in production.
- ``CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS``: the same secret value read by two
  environments under different keys; the environments are not isolated.
  Always an error. The finding names both keys, never the value.

The shape checks the service validators share (placeholders, entropy, how a
value is named) are the core's :mod:`envfence.credential_shapes`.
"""

from __future__ import annotations

from typing import Any

from envfence import hookimpl
from envfence.credential_shapes import describe
from envfence.models import Finding, Secret, reveal


def credential_names(session) -> set[str]:
    """The plain names of every credential the session knows: declared, or secret-shaped keys."""
    names = {s.name for s in session.settings_specs if s.credential}
    split = session.config.naming.split
    names.update(split(key)[1] for key, entry in session.config.entries.items() if isinstance(entry.value, Secret))
    return names


def _reads(session) -> dict[str, dict[str, tuple[str, Any]]]:
    """For every declared environment: plain name -> (key it reads, value), from that environment's own layers.

    Each environment's configuration comes from :meth:`Session.config_for`
    (its ``.env.<environment>`` files included); one that cannot be loaded
    is left out here, its own session reports why.
    """
    from envfence.errors import ConfigurationError

    views = {}
    for env in session.settings.environments:
        try:
            config = session.config_for(env)
        except ConfigurationError:
            continue
        pairs = {key: (key, entry.value) for key, entry in config.entries.items()}
        views[env] = config.naming.view(pairs, env)
    return views


def _shared_reads(views: dict[str, dict[str, tuple[str, Any]]]) -> list[tuple[str, str, str, str]]:
    """Pairs of environments that read one secret value under two keys: (first, second, key_a, key_b).

    ``views`` is :func:`_reads`. Each environment's secrets are revealed once
    and grouped by value, whatever the keys are called (``DEV_API_PASSWORD``
    and ``PROD_DB_PASSWORD`` holding one secret are shared too); within a
    group, each pair of keys read by two environments is reported at the first
    such pair (in name order): linear in environments times keys, not in
    pairs of environments.
    """
    names = sorted(views)
    groups: dict[str, dict[str, list[int]]] = {}
    for index, env in enumerate(names):
        for key, value in views[env].values():
            if isinstance(value, Secret):
                groups.setdefault(reveal(value), {}).setdefault(key, []).append(index)
    pairs = []
    for readers in groups.values():
        keys = list(readers)
        for n, key_a in enumerate(keys):
            for key_b in keys[n + 1 :]:
                # Two keys of one environment holding one value are no sharing between environments.
                across = sorted((min(i, j), max(i, j), i > j) for i in readers[key_a] for j in readers[key_b] if i != j)
                if across:
                    first, second, swapped = across[0]
                    pairs.append((first, second, *((key_b, key_a) if swapped else (key_a, key_b))))
    return [(names[i], names[j], a, b) for i, j, a, b in sorted(pairs, key=lambda pair: pair[:2])]


@hookimpl
def validate(session) -> list[Finding]:
    """Prefix discipline and isolation between environments."""
    findings: list[Finding] = []
    config = session.config
    here = session.environment.name
    escalate = session.profile.escalate

    for name in sorted(credential_names(session)):
        key = config.credential_key(name)
        if key is not None and key == name and isinstance(config[key], Secret):
            entry = config.entry(key)
            findings.append(
                Finding(
                    "CREDENTIAL_UNPREFIXED",
                    escalate("warning"),
                    f"{describe(key, entry.value)} is read without an environment prefix (set in {entry.source}); "
                    "every environment without its own prefixed key shares it",
                    f"rename it {config.key_for(name)} (and give other environments their own key)",
                    key=key,
                    plugin="credentials",
                )
            )

    own_files = {f".env.{here}", f".env.{here}.local"}
    for key, entry in config.entries.items():
        if entry.prefix_environment not in (None, here) and entry.source in own_files:
            plain = config.naming.split(key)[1]
            findings.append(
                Finding(
                    "CREDENTIAL_OTHER_PREFIX",
                    escalate("warning"),
                    f"{key} is set in {entry.source} but {here} never reads {entry.prefix_environment} credentials",
                    f"name it {config.key_for(plain)} in {entry.source}",
                    key=key,
                    file=entry.source,
                    plugin="credentials",
                )
            )

    reported: set[frozenset[str]] = set()
    for first, second, key_a, key_b in _shared_reads(_reads(session)):
        pair = frozenset((key_a, key_b))
        if pair in reported:
            continue
        reported.add(pair)
        findings.append(
            Finding(
                "CREDENTIAL_SHARED_ACROSS_ENVIRONMENTS",
                "error",
                f"{key_a} ({first}) and {key_b} ({second}) hold the same secret: the environments are not isolated",
                "issue a separate credential for each environment and revoke the shared one",
                key=key_a,
                plugin="credentials",
            )
        )
    return findings
