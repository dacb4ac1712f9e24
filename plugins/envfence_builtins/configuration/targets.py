"""Environments own their external targets: a production base is not touched from development.

The ``[targets]`` settings table names, per environment, the identifiers that
belong to it (Airtable base IDs, a HousecallPro company, a host, a URL)::

    [targets]
    production = ["appLiveBase000001"]
    development = ["appSandboxBase001"]

Any configuration value this environment reads that names another
environment's target is an error (``TARGET_IN_OTHER_ENVIRONMENT``), secrets
and decrypted values included: they are compared by their real value, which
no message ever shows. :func:`owner_of` answers the same question for the
run-time guard.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding, Secret, reveal

SECTION = "targets"


def _targets_table():
    from envfence.settings_kinds import either, text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "the external targets each environment owns (Airtable bases...), so no other environment reaches them")
    table.add_free(either(texts(example="appXXXXXXXXXXXXXX"), text(example="appXXXXXXXXXXXXXX")),
                   "the identifiers that environment owns", names_hint="an environment's name or alias")
    return table


#: ``[targets]``, declared once for ``check``, the schema and the docs.
TABLE = _targets_table()


@hookimpl
def declare_tables():
    """The ``[targets]`` table."""
    return [TABLE]


def owned_targets(settings) -> dict[str, str]:
    """Every declared target identifier with the environment that owns it.

    :raises ConfigurationError: the ``[targets]`` table names an undeclared
        environment, holds something other than lists of strings, or gives
        one identifier to two environments.
    """
    table: Mapping[str, Any] = TABLE.read(settings).free()  # each value as the declaration says; the owners below
    where = f"{settings.source}: [{SECTION}]"
    owners: dict[str, str] = {}
    spelled: dict[str, str] = {}  # targets compare without case, so two spellings are one target
    for env_name, identifiers in table.items():
        env = settings.resolve(env_name)
        if env is None:
            declared = ", ".join(settings.environments)
            raise ConfigurationError(
                f"{where}: {env_name!r} is not a declared environment ({declared})",
                "name each environment's targets under its name, e.g. production = [\"app...\"]",
            )
        if isinstance(identifiers, str):
            identifiers = [identifiers]
        for identifier in identifiers:
            identifier = spelled.setdefault(identifier.strip().lower(), identifier.strip())
            other = owners.setdefault(identifier, env)
            if other != env:
                raise ConfigurationError(
                    f"{where}: {identifier!r} is listed for both {other} and {env} (targets compare without regard to case)",
                    "a target belongs to one environment: remove it from the other list",
                )
    return owners


def owner_of(settings, value: Any, owners: Mapping[str, str] | None = None) -> str | None:
    """The environment that owns ``value``, or a target named inside it; None when no one does.

    ``value`` is an identifier or a text holding one as a whole word (a URL
    with a base ID in its path). A :class:`Secret` is examined by its real
    value: a target held as a secret is still a target.

    :param owners: :func:`owned_targets` of ``settings``, when the caller asks
        about many values and has read the table once already.
    :raises ConfigurationError: the ``[targets]`` table is malformed.
    """
    if value is None:
        return None
    text = str(reveal(value))
    for identifier, env in (owned_targets(settings) if owners is None else owners).items():
        if identifier.lower() == text.lower() or _mentions(text, identifier):
            return env
    return None


def _shown(key: str, value: Any, with_key: bool = True) -> str:
    """``KEY=value`` (or the value) for a plain value; a secret is named by its key only, its value never shows."""
    if isinstance(value, Secret):
        return f"the value of {key} (a secret, not shown)"
    return f"{key}={value}" if with_key else str(value)


def _mentions(text: str, identifier: str) -> bool:
    # Case-insensitively: a host or a URL is the same target in any case, and
    # an identifier that differs only by case is too close to let through.
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(identifier)}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


def _readable(config) -> list[tuple[str, str, Any]]:
    """``(key, plain name, value)`` of every value this environment can read.

    Every key, not only the environment's view: a plain ``AIRTABLE_BASE_ID``
    (from ``--set``, the process or ``.env``) that the prefixed key shadows in
    a command's environment is still what ``ctx.config["AIRTABLE_BASE_ID"]``
    gives a function.
    """
    naming = config.naming
    return [
        (key, naming.split(key)[1], entry.value)
        for key, entry in config.entries.items()
        if naming.readable_in(key, config.environment)
    ]


@hookimpl
def validate(session) -> list[Finding]:
    """One error per configuration value, read in this environment, that names another environment's target."""
    settings = session.settings
    if not settings.section(SECTION):
        return []
    try:
        owners = owned_targets(settings)
    except ConfigurationError as exc:
        return [Finding("TARGETS_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin="targets",
                        file=str(settings.path) if settings.path else None)]
    here = session.environment.name
    config = session.config
    findings = []
    mine = sorted(t for t, env in owners.items() if env == here)
    for key, plain, value in _readable(config):
        owner = owner_of(settings, value, owners)
        if owner is None or owner == here:
            continue
        entry = config.entry(key)
        instead = f" (this environment's targets: {', '.join(mine)})" if mine else ""
        findings.append(
            Finding(
                code="TARGET_IN_OTHER_ENVIRONMENT",
                severity="error",
                message=f"{_shown(key, value)} is a {owner} target, configured for {here} (set in {entry.source if entry else 'configuration'})",
                remediation=f"point {plain} at a {here} target{instead}, or move the value to .env.{owner}",
                key=key,
                plugin="targets",
            )
        )
    return findings


@hookimpl
def pre_run_safety(session, request) -> list[Finding]:
    """Block a run that would touch another environment's target.

    The run touches what its configuration (runtime overrides included) and
    its command line name. Unlike the ``validate`` error, which blocks only
    in a strict profile, this guard blocks in every environment.
    """
    settings = session.settings
    if not settings.section(SECTION):
        return []
    here = session.environment.name
    config = session.config
    touched = [(key, value) for key, _, value in _readable(config)]
    touched += [("its command line", arg) for arg in request.automation.command or ()]
    owners = owned_targets(settings)
    findings = []
    for where, value in touched:
        owner = owner_of(settings, value, owners)
        if owner is None or owner == here:
            continue
        entry = config.entry(where)
        source = f"{where} from {entry.source}" if entry else where
        findings.append(
            Finding(
                code="TARGET_GUARD",
                severity="error",
                message=f"{request.automation.name} would touch {_shown(where, value, with_key=False)}, a {owner} target ({source}), while running in {here}",
                remediation=f"point it at a {here} target",
                key=where if entry else None,
                plugin="targets",
            )
        )
    return findings
