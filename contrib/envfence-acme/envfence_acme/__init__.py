"""Acme's envfence plugin: what one company adds to every project that opts in.

It acts only in a project whose settings have an ``[acme]`` table::

    [acme]
    table_prefix = "acme_"                                      # naming policy
    host_codes = { p = "production", d = "development" }        # server names
    keep_days = 30                                               # tidy-processed

- **Naming policy** (``validate``): every Airtable table named in the
  configuration (a key ``AIRTABLE_..._TABLE...``) carries the company
  prefix. Table IDs (``tbl...``) carry no name and pass.
- **Server names** (``classify_host``): Acme names its servers
  ``<site>-<code><number>`` (``nyc-p01``, ``ber-d12.acme.internal``). The
  code letter is the environment, which the built-in token matcher cannot
  see (``p`` alone is no environment word elsewhere). So this plugin answers
  ``classify_host`` first (``tryfirst``) for names of that shape only, and
  returns None for every other name, leaving it to the built-in matcher.
  Adding words to ``hostname_patterns`` would not do: the built-in matcher
  compares whole tokens, and making ``p`` a production token would misclassify
  any host with a stray ``p`` in its name.
- **An automation** (``register_automations``): ``acme-tidy-processed`` moves
  processed CSV files older than ``keep_days`` into the environment's archive.
- **A webhook provider** (``register_webhook_providers``): ``acme``, for
  Acme's internal services, which sign ``Acme-Signature: t=<unix time>,v1=<hex
  HMAC-SHA256 of "<t>.<body>">`` and name each delivery in ``Acme-Delivery``.
  A route opts in with ``provider = "acme"``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from envfence import hookimpl
from envfence.models import Automation, Finding, HostInfo

NAME = "acme"
DEFAULT_PREFIX = "acme_"
DEFAULT_HOST_CODES = {"p": "production", "d": "development"}
DEFAULT_KEEP_DAYS = 30

# Patterns compiled by re's own cache on first use: importing this module compiles nothing.
_SERVER = r"(?i)^(?P<site>[a-z]{3})-(?P<code>[a-z])(?P<number>\d{2,})(\.acme\.internal)?$"
_TABLE_KEY = r"^AIRTABLE_(\w+_)?TABLES?(_\w+)?$"
#: An Airtable table id (``tbl`` and 14 letters or digits): named by id, a table needs no prefix.
#: Written here, not imported from the built-in airtable plugin, so ``-p no:airtable`` removes that plugin.
_TABLE_ID = r"tbl[A-Za-z0-9]{14}"


def _section(settings) -> dict[str, Any] | None:
    """The ``[acme]`` table, or None when the project has not opted in."""
    return dict(settings.section(NAME)) if NAME in settings.raw else None


@hookimpl(tryfirst=True)
def classify_host(hostname: str, settings) -> HostInfo | None:
    """Classify Acme server names by their code letter; leave every other name alone."""
    section = _section(settings)
    if section is None:  # a project that has not opted in: no name is looked at
        return None
    match = re.match(_SERVER, hostname)
    if match is None:
        return None
    codes = {**DEFAULT_HOST_CODES, **_host_codes(section)}
    environment = codes.get(match["code"].lower())
    if environment not in settings.environments:
        return None
    token = f"{match['code']}{match['number']}".lower()
    return HostInfo(hostname=hostname, tokens=(match["site"].lower(), token), matches=((environment, token),))


def _host_codes(section: dict[str, Any]) -> dict[str, str]:
    """The valid part of ``acme.host_codes`` (``validate`` reports the rest)."""
    codes = section.get("host_codes", {})
    if not isinstance(codes, dict):
        return {}
    return {k.lower(): v for k, v in codes.items() if len(k) == 1 and isinstance(v, str)}


def _acme_table():
    from envfence.settings_kinds import mapping, text, whole
    from envfence.settings_tables import Table

    table = Table(NAME, "Acme's conventions: table prefixes, server names, the tidy job")
    table.add("table_prefix", text(example=DEFAULT_PREFIX), DEFAULT_PREFIX, "the prefix every Airtable table name carries")
    table.add("host_codes", mapping(text(example="production"), example={"p": "production"}), {},
              "server code letters and the environment each means (over p = production, d = development)",
              check=lambda codes: None if all(len(k) == 1 for k in codes) else "must map single letters to environment names")
    table.add("keep_days", whole(minimum=1, example=DEFAULT_KEEP_DAYS), DEFAULT_KEEP_DAYS,
              "days a processed CSV file stays before acme-tidy-processed archives it")
    return table


#: ``[acme]``, declared once: envfence check names a wrong value, envfence config schema and the reads below use it.
TABLE = _acme_table()


@hookimpl
def declare_tables():
    """The ``[acme]`` table."""
    return [TABLE]


def _setting(settings, key: str) -> Any:
    """``[acme] key`` through the declaration; a value of the wrong kind counts as its default (check names it)."""
    from envfence.errors import ConfigurationError

    try:
        return TABLE.read(settings)[key]
    except ConfigurationError:
        return TABLE.keys[key].default


@hookimpl
def validate(session) -> list[Finding] | None:
    """Every Airtable table name in the configuration carries the company prefix."""
    if _section(session.settings) is None:
        return None
    findings: list[Finding] = []
    prefix = _setting(session.settings, "table_prefix")
    severity = session.profile.escalate("warning")
    for key, value in session.config.environment_view().items():
        if not re.match(_TABLE_KEY, key) or not isinstance(value, str):
            continue
        for name in (v.strip() for v in value.split(",")):
            if name and not re.fullmatch(_TABLE_ID, name) and not name.startswith(prefix):
                entry = session.config.entry(key) or session.config.entry(session.config.key_for(key))
                findings.append(
                    Finding(
                        code="ACME_TABLE_PREFIX",
                        severity=severity,
                        message=f"Airtable table {name!r} in {key} does not carry the Acme prefix {prefix!r}",
                        remediation=f"rename the table to {prefix}{name} in Airtable and in the configuration, or use its tbl... ID",
                        key=key,
                        plugin=NAME,
                        file=entry.source if entry else None,
                    )
                )
    return findings


@hookimpl
def register_automations(session, register) -> None:
    """Ship ``acme-tidy-processed`` to projects that opted in."""
    if _section(session.settings) is None:
        return
    register(
        Automation(
            name="acme-tidy-processed",
            description="Move processed CSV files older than acme.keep_days into the archive",
            function=tidy_processed,
            schedule="30 2 * * *",
            plugin=NAME,
        )
    )


def tidy_processed(ctx) -> None:
    """Move ``csv/processed`` files older than ``keep_days`` to ``archive``; a dry run only lists them."""
    keep_days = _setting(ctx.session.settings, "keep_days")
    processed, archive = ctx.paths["csv/processed"], ctx.paths["archive"]
    cutoff = time.time() - keep_days * 86400
    old = sorted(p for p in processed.glob("*.csv") if p.is_file() and p.stat().st_mtime < cutoff) if processed.is_dir() else []
    for path in old:
        if ctx.dry_run:
            ctx.say(f"would archive {path.name}")
        else:
            archive.mkdir(parents=True, exist_ok=True)
            # EnvPaths.move keeps the file in this environment's tree and never overwrites.
            ctx.paths.move(path, "archive")
            ctx.say(f"archived {path.name}")
    ctx.say(f"{len(old)} file(s) older than {keep_days} days{' (dry run: nothing moved)' if ctx.dry_run else ' archived'}")


# --- the acme webhook provider ----------------------------------------------------


def sign_acme(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Acme-Signature`` header an Acme service sends for ``body`` at ``timestamp``."""
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_acme(secret: str, headers, body: bytes, tolerance: int) -> None:
    """Check ``Acme-Signature``; raises ``SignatureError`` saying why (never the secret)."""
    from envfence_builtins.webhook_service.webhook_signatures import SignatureError, constant_time_equal

    parts = dict(p.split("=", 1) for p in (headers.get("acme-signature") or "").split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        raise SignatureError("the Acme-Signature header is missing or has no t= and v1= parts")
    if not parts["t"].isdigit() or abs(time.time() - int(parts["t"])) > tolerance:
        raise SignatureError(f"the Acme-Signature time is not within {tolerance} s of now: stale or replayed")
    if not constant_time_equal(sign_acme(secret, body, int(parts["t"])), headers["acme-signature"].strip()):
        raise SignatureError("the Acme-Signature does not match the body")


@hookimpl(optionalhook=True)  # the webhook_providers plugin declares it
def register_webhook_providers(register) -> None:
    """The ``acme`` provider, for routes that name it."""
    from envfence_builtins.webhook_service.provider_hooks import WebhookProvider

    register(WebhookProvider(
        "acme", verify=verify_acme, event_id=lambda headers, body: headers.get("acme-delivery") or None,
        event_type=lambda headers, payload: payload.get("kind") if isinstance(payload, dict) else None, plugin=NAME,
    ))
