"""Classify the host by the tokens of its name, and detect the environment from it.

A hostname is split into tokens on ``-``, ``.``, ``_`` and digits, and each
token is compared, case-insensitively, with every environment's
``hostname_patterns`` (shell-style globs allowed: ``prod*``). Whole tokens
only, so ``web-prod-01`` is production while ``productivity-box`` is not.
"""

from __future__ import annotations

import fnmatch
import re

from envfence import hookimpl
from envfence.models import Environment, Finding, HostInfo

_SPLIT = re.compile(r"[-._\d]+")


def tokens(hostname: str) -> tuple[str, ...]:
    """The lower-case tokens of a hostname."""
    return tuple(t for t in _SPLIT.split(hostname.lower()) if t)


def classify(hostname: str, settings) -> HostInfo:
    """Match every token against every environment's patterns."""
    parts = tokens(hostname)
    matches: list[tuple[str, str]] = []
    for env in settings.environments.values():
        patterns = [p.lower() for p in env.hostname_patterns]
        for token in parts:
            if any(fnmatch.fnmatchcase(token, p) for p in patterns):
                matches.append((env.name, token))
                break
    return HostInfo(hostname=hostname, tokens=parts, matches=tuple(matches))


@hookimpl
def classify_host(hostname: str, settings) -> HostInfo:
    """The host's class from its name's tokens."""
    return classify(hostname, settings)


@hookimpl(trylast=True)
def detect_environment(host: HostInfo) -> Environment | None:
    """The host's class, when its name points at exactly one environment."""
    if host.environment is None:
        return None
    token = next(tok for env, tok in host.matches if env == host.environment)
    return Environment(host.environment, "hostname", f"{host.hostname} (token '{token}')")


@hookimpl
def pre_run_safety(session, request) -> list[Finding]:
    """Block a run whose intended environment disagrees with the host's class.

    Both directions: a development run on a host whose name says production,
    and a production run on a host whose name says development. An
    unclassified host, or one whose name matches several environments, is
    not blocked here (an ambiguous name is reported as a warning).
    """
    host, env = session.host, session.environment
    if host.ambiguous:
        return [
            Finding(
                code="HOSTNAME_AMBIGUOUS",
                severity="warning",
                message=f"host {host.hostname!r} carries markers of several environments: {host.describe()}",
                remediation="rename the host, or narrow hostname_patterns in the settings",
                plugin="hostname",
            )
        ]
    if host.environment is None or host.environment == env.name:
        return []
    token = next(tok for e, tok in host.matches if e == host.environment)
    return [
        Finding(
            code="HOSTNAME_MISMATCH",
            severity="error",
            message=(
                f"{request.automation.name} would run in {env.name} ({env.describe()}) on host "
                f"{host.hostname!r}, whose name says {host.environment} (token {token!r})"
            ),
            remediation=(
                f"run it on a {env.name} host, or choose the environment this host is for "
                f"(--env {host.environment})"
            ),
            plugin="hostname",
        )
    ]
