"""Turning what can go wrong on the wire into findings, for the live service checks.

A core service: the Airtable and HousecallPro validators share it. A failure
becomes a :class:`~envfence.models.Finding` with its own code and
remediation; exception texts are never copied into a message (they may
quote a URL or a header), only their kind.
"""

from __future__ import annotations

from typing import Mapping

from . import slotted
from .models import Finding, reveal

#: Seconds a live check waits for an answer unless ``<SERVICE>_TIMEOUT`` says otherwise.
DEFAULT_TIMEOUT = 10.0


@slotted.frozen
class Service:
    """How findings about one service are named and what to tell the user."""

    name: str  #: for people: ``Airtable``
    code: str  #: the finding code prefix: ``AIRTABLE``
    plugin: str
    url_key: str  #: the setting that holds the endpoint, e.g. ``AIRTABLE_ENDPOINT_URL``
    token_key: str  #: the key the token was read from, e.g. ``DEV_AIRTABLE_API_KEY``
    token: str  #: how to name the token in messages: ``DEV_AIRTABLE_API_KEY (kind, N chars)``
    url: str
    #: Extra remediation per HTTP status, replacing the generic one.
    remediation: Mapping[int, str] = slotted.field(factory=dict)

    def finding(self, suffix: str, severity: str, message: str, remediation: str, key: str | None = None) -> Finding:
        """A finding of this service's plugin."""
        return Finding(f"{self.code}_{suffix}", severity, message, remediation, key=key or self.token_key, plugin=self.plugin)


def announce(session, service: Service, timeout: float) -> None:
    """Say on stderr which service is being called and how long it may take.

    A live check waits up to ``timeout`` seconds per service; in a verbose
    (development) profile the person at the terminal is told what is being
    waited for. A terse (production) profile says nothing: cron mails output.
    """
    if session.profile.verbose:
        import sys

        line = f"checking {service.name} at {service.url} (up to {timeout:g} s)..."
        print(session.redactor()(line), file=sys.stderr, flush=True)


def timeout_setting(config, name: str) -> tuple[float, Finding | None]:
    """The live-check timeout from ``name`` (seconds), or the default with a finding for a bad value."""
    key = config.credential_key(name)
    if key is None:
        return DEFAULT_TIMEOUT, None
    raw = reveal(config[key]).strip()
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError
    except ValueError:
        return DEFAULT_TIMEOUT, Finding(
            "SETTING_FORMAT", "error", f"{key}={raw!r} is not a number of seconds",
            f"write it as {key}=10, or remove it for the default ({DEFAULT_TIMEOUT:g} s)", key=key,
        )
    return value, None


def http_status_finding(service: Service, status: int, during: str) -> Finding:
    """The finding for an HTTP error status answered to ``during`` (``whoami``, ``GET /company``)."""
    where = f"{service.url} ({service.url_key})"
    extra = service.remediation.get(status)
    if status == 401:
        return service.finding(
            "TOKEN_REJECTED", "error",
            f"{service.name} rejected {service.token} with 401 Unauthorized on {during}",
            extra or f"the token is wrong, expired or revoked: create a new one and set {service.token_key}",
        )
    if status == 403:
        return service.finding(
            "FORBIDDEN", "error",
            f"{service.name} answered 403 Forbidden on {during} for {service.token}",
            extra or "the token lacks a permission or scope this check needs: grant it and try again",
        )
    if status == 404:
        return service.finding(
            "NOT_FOUND", "error",
            f"{service.name} answered 404 Not Found on {during} at {where}",
            extra or f"check that {service.url_key} points at the {service.name} API (no extra path)",
            key=service.url_key,
        )
    if status == 429:
        return service.finding(
            "RATE_LIMITED", "warning",
            f"{service.name} answered 429 Too Many Requests on {during}: the credentials could not be verified now",
            extra or "another process is using the rate limit; wait 30 seconds and run `envfence check --live` again",
        )
    if status >= 500:
        return service.finding(
            "SERVER_ERROR", "error",
            f"{service.name} answered {status} on {during} at {where}",
            "the service is failing; check its status page, then run `envfence check --live` again",
            key=service.url_key,
        )
    return service.finding(
        "HTTP_ERROR", "error",
        f"{service.name} answered {status} on {during} at {where}",
        f"check {service.url_key} and {service.token_key}",
    )


def network_finding(service: Service, error: BaseException, during: str, timeout: float) -> Finding:
    """The finding for a request that got no HTTP answer (timeout, refused, bad URL, TLS)."""
    import requests

    where = f"{service.url} ({service.url_key})"
    if isinstance(error, requests.Timeout):
        return service.finding(
            "TIMEOUT", "error",
            f"{service.name} did not answer {during} within {timeout:g} s at {where}",
            f"check the network path to {service.url}; raise {service.code}_TIMEOUT if the link is slow",
            key=service.url_key,
        )
    if isinstance(error, requests.exceptions.SSLError):
        return service.finding(
            "TLS_ERROR", "error",
            f"the TLS handshake with {where} failed on {during}",
            "check the system's certificate store and any intercepting proxy",
            key=service.url_key,
        )
    if isinstance(error, requests.ConnectionError):
        return service.finding(
            "UNREACHABLE", "error",
            f"cannot connect to {service.name} at {where} on {during} (connection refused or no route)",
            f"check {service.url_key}, the network and any proxy; is the service (or `envfence emulate`) running?",
            key=service.url_key,
        )
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return service.finding(
            "URL_INVALID", "error",
            f"{service.url_key}={service.url!r} is not a usable URL",
            "write it as https://host[:port], e.g. the service's default",
            key=service.url_key,
        )
    return service.finding(
        "LIVE_CHECK_FAILED", "error",
        f"the live {service.name} check failed on {during}: {type(error).__name__}",
        "run again with -v; if it persists, report it with the output (secrets are masked)",
    )
