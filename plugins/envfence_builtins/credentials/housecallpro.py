"""HousecallPro credentials: checked offline, and live with ``GET /company``.

Configuration (read through the environment's prefix first):
``HOUSECALLPRO_API_KEY``, ``HOUSECALLPRO_API_URL`` (default
``https://api.housecallpro.com``; point it at ``envfence emulate housecallpro``)
and ``HOUSECALLPRO_TIMEOUT`` (seconds for a live check). A ``[housecallpro]``
settings table makes the key required (``required_in`` narrows where).

requests is imported only when a live check runs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from envfence import hookimpl
from envfence.credential_shapes import PLACEHOLDER, describe, required_in, text_problem
from envfence.models import Finding, SettingSpec, reveal

SECTION = "housecallpro"


def _housecallpro_table():
    from envfence.settings_kinds import texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "HousecallPro: its presence makes the API key required")
    table.add("required_in", texts(example="production"), None, "the environments that need the API key (default: all)")
    return table


#: ``[housecallpro]``, declared once for ``check``, the schema and the docs.
TABLE = _housecallpro_table()


@hookimpl
def declare_tables():
    """The ``[housecallpro]`` table."""
    return [TABLE]


DEFAULT_URL = "https://api.housecallpro.com"
#: HousecallPro's keys are 32 hex digits; anything far outside this is a paste error.
MIN_LENGTH, MAX_LENGTH = 20, 256
GET_KEY = "generate an API key in HousecallPro under App Store > API Key Management (MAX plan)"


def _finding(code: str, severity: str, message: str, remediation: str, key: str | None) -> Finding:
    return Finding(code, severity, message, remediation, key=key, plugin="housecallpro")


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """The HousecallPro settings; the key is required where ``[housecallpro]`` says."""
    required = required_in(settings, TABLE)
    return [
        SettingSpec("HOUSECALLPRO_API_KEY", "HousecallPro API key (sent as 'Authorization: Token ...')", secret=True,
                    credential=True, required_in=required, plugin="housecallpro"),
        SettingSpec("HOUSECALLPRO_API_URL", f"the HousecallPro API (default {DEFAULT_URL})", credential=True, plugin="housecallpro"),
        SettingSpec("HOUSECALLPRO_TIMEOUT", "seconds a live check waits for HousecallPro (default 10)", plugin="housecallpro"),
    ]


@hookimpl
def validate(session, live: bool) -> list[Finding]:
    """The key's shape offline; with ``live``, ``GET /company`` with it."""
    config = session.config
    key = config.credential_key("HOUSECALLPRO_API_KEY")
    if key is None:
        return []  # required-ness is the declared-settings check's business
    token = str(reveal(config[key]))
    shown = describe(key, config[key])
    problem = text_problem(token)
    findings = []
    if problem == PLACEHOLDER:
        findings.append(_finding("HOUSECALLPRO_TOKEN_PLACEHOLDER", "error", f"{shown} {problem}", GET_KEY, key))
    elif problem is not None:
        findings.append(_finding("HOUSECALLPRO_TOKEN_FORMAT", "error", f"{shown} {problem}",
                                 "copy the key again without spaces or line breaks", key))
    elif not MIN_LENGTH <= len(token) <= MAX_LENGTH:
        findings.append(_finding(
            "HOUSECALLPRO_TOKEN_LENGTH", "error",
            f"{shown} is not of a plausible length for a HousecallPro key ({MIN_LENGTH} to {MAX_LENGTH} characters)",
            f"copy the whole key again, or {GET_KEY}", key,
        ))

    url_key = config.credential_key("HOUSECALLPRO_API_URL")
    url = reveal(config[url_key]).strip().rstrip("/") if url_key else DEFAULT_URL
    parts = urlsplit(url)
    if url_key is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
        findings.append(_finding("HOUSECALLPRO_API_URL_INVALID", "error", f"{url_key}={url!r} is not an http(s) URL",
                                 f"remove it to use {DEFAULT_URL}, or write the full URL", url_key))
    elif url_key is not None and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        findings.append(_finding(
            "HOUSECALLPRO_API_URL_INSECURE", session.profile.escalate("warning"),
            f"{url_key}={url} sends the key unencrypted to a host other than this machine",
            "use https, or point it at a local emulator (127.0.0.1)", url_key,
        ))

    if not live:
        return findings
    if any(f.severity == "error" for f in findings):
        return findings + [_finding("HOUSECALLPRO_LIVE_SKIPPED", "info",
                                    "the live HousecallPro check did not run: the offline problems above come first",
                                    "fix them and run `envfence check --live` again", key)]
    return findings + _live(session, key, shown, token, url_key or "HOUSECALLPRO_API_URL", url)


def _live(session, key: str, shown: str, token: str, url_key: str, url: str) -> list[Finding]:
    import requests

    from envfence.live_checks import Service, announce, http_status_finding, network_finding, timeout_setting

    timeout, bad_timeout = timeout_setting(session.config, "HOUSECALLPRO_TIMEOUT")
    service = Service(
        "HousecallPro", "HOUSECALLPRO", "housecallpro", url_key, key, shown, url,
        remediation={401: f"the key is wrong or revoked: {GET_KEY}, then set {key}"},
    )
    announce(session, service, timeout)
    findings = [bad_timeout] if bad_timeout else []
    try:
        response = requests.get(
            f"{url}/company",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=(timeout, timeout),
        )
    except requests.RequestException as exc:
        return findings + [network_finding(service, exc, "GET /company", timeout)]
    if response.status_code >= 400:
        return findings + [http_status_finding(service, response.status_code, "GET /company")]
    try:
        company = response.json().get("name", "?")
    except (ValueError, AttributeError):
        return findings + [service.finding(
            "NOT_JSON", "error", f"{url_key}={url} answered GET /company with something other than JSON",
            f"check that {url_key} points at the HousecallPro API", key=url_key,
        )]
    return findings + [_finding("HOUSECALLPRO_LIVE_OK", "info", f"{key} accepted (company {company!r})", "", key)]


@hookimpl
def register_emulators() -> dict[str, type]:
    """The fake HousecallPro, for ``envfence emulate housecallpro`` and tests."""
    from envfence_builtins.fakes.housecallpro_emulator import FakeHousecallPro

    return {"housecallpro": FakeHousecallPro}
