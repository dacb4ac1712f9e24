"""Service isolation: each environment binds its own ports.

An environment's ports are the values of its configuration keys named
``PORT`` or ending in ``_PORT`` (``WEBHOOK_PORT``, ``API_PORT``), read through
its prefix (``DEV_WEBHOOK_PORT`` wins in development). The ``[services]``
table can name the keys instead::

    [services]
    ports = ["WEBHOOK_PORT", "METRICS_PORT"]

``envfence check`` reports two environments that would bind the same port
(``SERVICE_PORT_COLLISION``) and a value that is no port number
(``SERVICE_PORT_INVALID``). Other environments are read from their files and
declared defaults only: this process's environment variables and ``--set``
belong to the current environment.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from envfence import hookimpl
from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import Finding, Secret

_PORT_KEY = re.compile(r"(^|_)PORT$")


def _services_table():
    from envfence.settings_kinds import texts
    from envfence.settings_tables import Table

    table = Table("services", "the services each environment runs, kept apart")
    table.add("ports", texts(example="WEBHOOK_PORT"), None,
              "the settings that hold ports (default: every key ending in PORT)")
    return table


#: ``[services]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _services_table()


@hookimpl
def declare_tables():
    """The ``[services]`` table."""
    return [TABLE]


def _port_keys(settings) -> set[str] | None:
    keys = TABLE.read(settings)["ports"]
    return None if keys is None else set(keys)


def ports(view: Mapping[str, Any], keys: set[str] | None) -> dict[str, Any]:
    """The port settings of one environment's view (plain key names)."""
    return {
        k: v
        for k, v in view.items()
        if not isinstance(v, Secret) and (k in keys if keys is not None else bool(_PORT_KEY.search(k)))
    }


def file_view(session, name: str) -> dict[str, Any] | None:
    """Environment ``name``'s values from its files and declared defaults, under plain names.

    None when its files cannot be read (the environment's own session reports why).
    """
    try:
        return session.config_for(name).environment_view()
    except EnvfenceError:
        return None


@hookimpl
def validate(session) -> list[Finding]:
    """Ports that are no numbers here, and ports two environments would both bind."""
    keys = _port_keys(session.settings)
    current = session.environment.name
    findings: list[Finding] = []
    own = ports(session.config.environment_view(), keys)
    for key, value in own.items():
        if not str(value).strip().isdigit() or not 0 < int(str(value).strip()) < 65536:
            findings.append(
                Finding(
                    "SERVICE_PORT_INVALID", "error", f"{key}={value!r} is not a port number (1-65535)",
                    f"set {key} to this environment's own port, e.g. {key}=8001", key=key, plugin="services",
                )
            )
    bound: dict[int, list[tuple[str, str]]] = {}
    for name in session.settings.environments:
        view = own if name == current else ports(file_view(session, name) or {}, keys)
        for key, value in view.items():
            text = str(value).strip()
            if text.isdigit():
                bound.setdefault(int(text), []).append((name, key))
    for port, users in sorted(bound.items()):
        envs = sorted({env for env, _ in users})
        if len(envs) < 2:
            continue
        who = ", ".join(f"{env} ({key})" for env, key in users)
        findings.append(
            Finding(
                "SERVICE_PORT_COLLISION", "error",
                f"port {port} is bound by more than one environment: {who}",
                "give each environment its own port in its .env.<environment> file (or its prefixed key)",
                key=users[0][1], plugin="services",
            )
        )
    return findings
