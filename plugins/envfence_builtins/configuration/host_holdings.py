"""What a host holds of a strict environment that is not its own (part of the ``encryption`` plugin).

A job's code, or anyone with the host's user, can read every file the user
can read: production's plaintext secrets in a checkout's ``.env.production``,
or production's key in ``.envfence/keys``. On a host whose class is not
production, ``check`` says so:

- ``PRODUCTION_SECRETS_ON_HOST``: a secret of that environment is readable in
  plaintext here, in one of its files or exported in the process environment;
- ``PRODUCTION_KEY_ON_HOST``: the key that opens its encrypted values is here
  (its symmetric key, or the private key of its key pair).

The fix is the same for both: keep production's values encrypted, with the
key pair's public key in the project (``envfence --env production secret
migrate``), and keep the key that opens them on production hosts only.
"""

from __future__ import annotations

from typing import Any

from envfence.errors import EnvfenceError
from envfence.models import Finding, Secret

#: The kinds of key that open an environment's values (see :mod:`envfence.keyring`).
OPENING_KINDS = ("encryption", "private")


def foreign_strict(session: Any) -> list[Any]:
    """The strict environments this host is not classified as (a host of several is none of them)."""
    host = session.host
    own = host.environment if not host.ambiguous else None
    return [spec for spec in session.settings.environments.values() if spec.based_on == "production" and spec.name != own]


def holdings(session: Any) -> list[Finding]:
    """The warnings for each strict environment that is not this host's."""
    findings: list[Finding] = []
    for spec in foreign_strict(session):
        findings += _keys(session, spec) + _plaintext(session, spec)
    return findings


def _remedy(env: str) -> str:
    return (
        f"keep {env}'s values encrypted with its key pair (`envfence --env {env} secret migrate` on a {env} host), "
        f"and keep the key that opens them on {env} hosts only"
    )


def _keys(session: Any, spec: Any) -> list[Finding]:
    from envfence import keyring

    found = []
    for kind in OPENING_KINDS:
        try:
            key = keyring.find(session.root.path, spec.name, spec.prefix, session.environ, kind)
        except EnvfenceError:
            key = None  # an unusable key file is the key ring's to report
        if key is not None:
            found.append(key.source)
    if not found:
        return []
    return [Finding(
        "PRODUCTION_KEY_ON_HOST", "warning",
        f"{spec.name}'s decryption key is on this host ({', '.join(found)}), which is not a {spec.name} host "
        f"({session.host.describe()})",
        _remedy(spec.name) + f": move {', '.join(found)} to a {spec.name} host", key=found[0], plugin="encryption",
    )]


def _own_file(source: str, environment: str) -> bool:
    name = source.rsplit("/", 1)[-1]
    return name in (f".env.{environment}", f".env.{environment}.local")


def _plaintext(session: Any, spec: Any) -> list[Finding]:
    naming = session.settings.naming
    try:
        config = session.config_for(spec.name)
    except EnvfenceError:
        return []  # its files cannot be read: loading reports that
    plain = sorted(
        f"{key} ({entry.source})" for key, entry in config.entries.items()
        if isinstance(entry.value, Secret) and not entry.value.reveal().startswith("enc:")
        # its own prefixed keys anywhere, and plain keys of its own files; a plain key of .env is everyone's
        and (naming.environment_of(key) == spec.name or (naming.environment_of(key) is None and _own_file(entry.source, spec.name)))
    )
    shell = sorted(
        f"{key} (process environment)" for key in session.environ
        if naming.environment_of(key) == spec.name and key in session.config and isinstance(session.config[key], Secret)
    )
    if not plain + shell:
        return []
    return [Finding(
        "PRODUCTION_SECRETS_ON_HOST", "warning",
        f"{spec.name}'s secrets are readable in plaintext on this host, which is not a {spec.name} host: "
        + ", ".join(plain + shell),
        _remedy(spec.name), key=(plain + shell)[0].split(" ")[0], plugin="encryption",
    )]
