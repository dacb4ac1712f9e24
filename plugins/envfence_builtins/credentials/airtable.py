"""Airtable credentials and targets: checked offline, and live through pyairtable.

Configuration (each read through the environment's prefix, ``DEV_`` or ``PROD_``
first): ``AIRTABLE_API_KEY`` (a personal access token), ``AIRTABLE_BASE_ID``,
``AIRTABLE_TABLE``, ``AIRTABLE_ENDPOINT_URL`` (default
``https://api.airtable.com``; point it at ``envfence emulate airtable``) and
``AIRTABLE_TIMEOUT`` (seconds for a live check). The ``[airtable]`` settings
table makes the token and base required and lists more tables::

    [airtable]
    tables = ["Jobs", "tblAbCdEfGhIjKlMn"]
    required_in = ["production"]        # default: every environment

pyairtable is imported only when a live check runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from envfence import slotted
from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.credential_shapes import PLACEHOLDER, describe, required_in, text_problem
from envfence.models import Finding, SettingSpec, reveal

if TYPE_CHECKING:
    from envfence.redaction import SecretShape

SECTION = "airtable"


def _airtable_table():
    from envfence.settings_kinds import texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "Airtable: its presence makes the token and the base required")
    table.add("tables", texts(example="Jobs"), [], "more tables the project uses (names or tbl... ids)")
    table.add("required_in", texts(example="production"), None, "the environments that need the token and base (default: all)")
    return table


#: ``[airtable]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _airtable_table()


@hookimpl
def declare_tables():
    """The ``[airtable]`` table."""
    return [TABLE]


DEFAULT_ENDPOINT = "https://api.airtable.com"
# Patterns, compiled on first use by re's own cache: every session imports this plugin to ask what it declares.
TOKEN_RE = r"pat[A-Za-z0-9]{14}\.[0-9a-f]{64}"
LEGACY_KEY_RE = r"key[A-Za-z0-9]{14}"
BASE_RE = r"app[A-Za-z0-9]{14}"
TABLE_ID_RE = r"tbl[A-Za-z0-9]{14}"


def token_kind(value) -> str | None:
    """What an Airtable credential is, by its shape, for messages (None: not one of Airtable's)."""
    text = str(reveal(value))
    if text.startswith("pat") and "." in text:
        return "Airtable personal access token"
    if re.fullmatch(LEGACY_KEY_RE, text):
        return "legacy Airtable API key"
    return None
CREATE_TOKEN = (
    "create a personal access token at https://airtable.com/create/tokens with the scopes "
    "data.records:read, data.records:write and schema.bases:read and access to the base"
)


def _finding(code: str, severity: str, message: str, remediation: str, key: str | None) -> Finding:
    return Finding(code, severity, message, remediation, key=key, plugin="airtable")


@hookimpl
def secret_shapes() -> list[SecretShape]:
    """A personal access token is secret wherever it appears."""
    from envfence.redaction import SecretShape

    return [SecretShape(r"\bpat[A-Za-z0-9]{14}\.[0-9a-fA-F]{64}\b", "Airtable personal access token")]


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """The Airtable settings; the token and base are required where ``[airtable]`` says."""
    required = required_in(settings, TABLE)
    return [
        SettingSpec("AIRTABLE_API_KEY", "Airtable personal access token (pat...)", secret=True, credential=True,
                    required_in=required, plugin="airtable"),
        SettingSpec("AIRTABLE_BASE_ID", "the Airtable base this environment works on (app...)", credential=True,
                    required_in=required, plugin="airtable"),
        SettingSpec("AIRTABLE_TABLE", "the table the automations read and write (name or tbl... ID)", plugin="airtable"),
        SettingSpec("AIRTABLE_ENDPOINT_URL", f"the Airtable API endpoint (default {DEFAULT_ENDPOINT})", credential=True, plugin="airtable"),
        SettingSpec("AIRTABLE_TIMEOUT", "seconds a live check waits for Airtable (default 10)", plugin="airtable"),
    ]


def _tables(session) -> list[tuple[str, str]]:
    """(table, where it was configured) pairs."""
    tables = []
    key = session.config.credential_key("AIRTABLE_TABLE")
    if key is not None:
        tables.append((reveal(session.config[key]).strip(), key))
    try:
        listed = TABLE.read(session.settings)["tables"]
    except ConfigurationError:
        listed = []  # a value of the wrong kind: check names it (SETTINGS_INVALID), and the other checks go on
    for name in (t.strip() for t in listed):
        if name not in (t for t, _ in tables):
            tables.append((name, f"[{SECTION}] tables"))
    return tables


@hookimpl
def validate(session, live: bool) -> list[Finding]:
    """Token, base, tables and endpoint offline; with ``live``, whoami and the base schema."""
    config = session.config
    token_key = config.credential_key("AIRTABLE_API_KEY")
    base_key = config.credential_key("AIRTABLE_BASE_ID")
    in_use = SECTION in session.settings.raw or token_key is not None or base_key is not None
    if not in_use:
        return []
    findings, token_ok = _token_findings(session, token_key)
    base_found, base = _base_findings(config, base_key)
    tables = _tables(session)
    url_key = config.credential_key("AIRTABLE_ENDPOINT_URL")
    url = reveal(config[url_key]).strip().rstrip("/") if url_key else DEFAULT_ENDPOINT
    url_found = _endpoint_findings(session, url_key, url)
    findings += base_found + _table_findings(tables) + url_found
    url_ok = all(f.code != "AIRTABLE_ENDPOINT_URL_INVALID" for f in url_found)
    if live and token_ok and url_ok:
        findings += _live(session, token_key, base_key, base, tables, url_key or "AIRTABLE_ENDPOINT_URL", url)
    elif live:
        findings.append(_finding(
            "AIRTABLE_LIVE_SKIPPED", "info", "the live Airtable check did not run: the offline problems above come first",
            "fix them and run `envfence check --live` again", token_key,
        ))
    return findings


def _token_findings(session, token_key: str | None) -> tuple[list[Finding], bool]:
    """What is wrong with the token (missing, legacy, a placeholder, malformed), and whether it is usable."""
    config = session.config
    if token_key is None:
        if SECTION in session.settings.raw:  # the declared-settings check reports it
            return [], False
        return [_finding(
            "AIRTABLE_TOKEN_MISSING", "error",
            f"AIRTABLE_BASE_ID is set but no Airtable token is configured for {session.environment.name}",
            f"set {config.key_for('AIRTABLE_API_KEY')}: {CREATE_TOKEN}", config.key_for("AIRTABLE_API_KEY"),
        )], False
    token = str(reveal(config[token_key]))
    shown = describe(token_key, config[token_key], token_kind(config[token_key]))
    problem = text_problem(token)
    if re.fullmatch(LEGACY_KEY_RE, token):
        return [_finding(
            "AIRTABLE_LEGACY_API_KEY", "error",
            f"{shown} is a legacy Airtable API key; such keys stopped working on 1 February 2024",
            f"{CREATE_TOKEN}, then put it in {token_key}", token_key,
        )], False
    if problem == PLACEHOLDER:
        return [_finding("AIRTABLE_TOKEN_PLACEHOLDER", "error", f"{shown} {problem}", CREATE_TOKEN, token_key)], False
    if problem is not None or not re.fullmatch(TOKEN_RE, token):
        detail = problem or "is not shaped like a personal access token ('pat' + 14 letters or digits + '.' + 64 hex digits)"
        return [_finding(
            "AIRTABLE_TOKEN_FORMAT", "error", f"{shown} {detail}",
            f"copy the whole token again (it is shown once, when created), or {CREATE_TOKEN}", token_key,
        )], False
    return [], True


def _base_findings(config, base_key: str | None) -> tuple[list[Finding], str | None]:
    """A base ID that is not one; and the base ID when it is."""
    if base_key is None:
        return [], None
    base = reveal(config[base_key]).strip()
    if re.fullmatch(BASE_RE, base):
        return [], base
    return [_finding(
        "AIRTABLE_BASE_ID_FORMAT", "error",
        f"{base_key}={base!r} is not an Airtable base ID ('app' + 14 letters or digits)",
        "copy the base ID from the base's URL (airtable.com/appXXXXXXXXXXXXXX/...) or its API page", base_key,
    )], None


def _table_findings(tables: list[tuple[str, str]]) -> list[Finding]:
    """A table that starts like a table ID but is not one."""
    return [
        _finding(
            "AIRTABLE_TABLE_ID_FORMAT", "warning",
            f"{where}={table!r} starts like a table ID but is not one ('tbl' + 14 letters or digits)",
            "copy the table ID from the table's URL, or use the table's name", where if not where.startswith("[") else SECTION,
        )
        for table, where in tables if table.startswith("tbl") and not re.fullmatch(TABLE_ID_RE, table)
    ]


def _endpoint_findings(session, url_key: str | None, url: str) -> list[Finding]:
    """An endpoint that is no http(s) URL (an error: nothing is sent), or plain http to another host."""
    if url_key is None:
        return []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [_finding(
            "AIRTABLE_ENDPOINT_URL_INVALID", "error", f"{url_key}={url!r} is not an http(s) URL",
            f"remove it to use {DEFAULT_ENDPOINT}, or write the full URL, e.g. http://127.0.0.1:8765", url_key,
        )]
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return [_finding(
            "AIRTABLE_ENDPOINT_INSECURE", session.profile.escalate("warning"),
            f"{url_key}={url} sends the token unencrypted to a host other than this machine",
            "use https, or point it at a local emulator (127.0.0.1)", url_key,
        )]
    return []


def _live(session, token_key, base_key, base, tables, url_key, url) -> list[Finding]:
    import requests
    from pyairtable import Api

    from envfence.live_checks import Service, announce, http_status_finding, network_finding, timeout_setting

    config = session.config
    timeout, bad_timeout = timeout_setting(config, "AIRTABLE_TIMEOUT")
    service = Service(
        "Airtable", "AIRTABLE", "airtable", url_key, token_key, describe(token_key, config[token_key], token_kind(config[token_key])), url,
        remediation={401: f"the token is wrong, expired or revoked: {CREATE_TOKEN}, then set {token_key}"},
    )
    announce(session, service, timeout)
    findings = [bad_timeout] if bad_timeout else []
    # No retries: a live check reports a 429 instead of waiting it out.
    api = Api(reveal(config[token_key]), endpoint_url=url, timeout=(timeout, timeout), retry_strategy=None)

    def attempt(during, call):
        try:
            return call(), None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            return None, http_status_finding(service, status, during)
        except requests.RequestException as exc:
            return None, network_finding(service, exc, during, timeout)

    user, failure = attempt("whoami", api.whoami)
    if failure:
        return findings + [failure]
    facts = [f"{token_key} accepted (user {user.get('id', '?')})"]
    if base is not None:
        schema, failure = attempt(f"the schema of base {base}", lambda: api.base(base).schema())
        if failure is not None and failure.code == "AIRTABLE_FORBIDDEN":
            failure = slotted.evolve(
                failure,
                code="AIRTABLE_BASE_INACCESSIBLE",
                key=base_key,
                message=f"Airtable answered 403 for base {base} ({base_key}): the base does not exist, "
                f"or {service.token} cannot see it",
                remediation=f"check {base_key}; at https://airtable.com/create/tokens give the token access to that "
                "base and the schema.bases:read scope",
            )
        if failure:
            return findings + [failure]
        names = [t.name for t in schema.tables]
        for table, where in tables:
            if table not in names and table not in [t.id for t in schema.tables]:
                findings.append(_finding(
                    "AIRTABLE_TABLE_NOT_FOUND", "error",
                    f"table {table!r} ({where}) is not in base {base}; its tables are: {', '.join(names) or 'none'}",
                    "fix the table's name or ID (names are case-sensitive), or create the table", base_key,
                ))
        facts.append(f"base {base} readable")
        if tables and not any(f.code == "AIRTABLE_TABLE_NOT_FOUND" for f in findings):
            facts.append("tables " + ", ".join(t for t, _ in tables) + " found")
    findings.append(_finding("AIRTABLE_LIVE_OK", "info", "; ".join(facts), "", token_key))
    return findings


@hookimpl
def register_emulators() -> dict[str, type]:
    """The fake Airtable, for ``envfence emulate airtable`` and tests."""
    from envfence_builtins.fakes.airtable_emulator import FakeAirtable

    return {"airtable": FakeAirtable}
