"""Webhook secrets: one per configured source, present, long, random and in the source's form.

Each table under ``[webhooks]`` is a source::

    [webhooks.housecallpro]              # scheme defaults to the source's name when it is one
    [webhooks.github]
    [webhooks.orders]
    scheme = "standard"                  # Standard Webhooks: whsec_ + base64 of 24 to 64 bytes
    secret = "ORDERS_SIGNING_SECRET"     # default: <SOURCE>_WEBHOOK_SECRET

The secret is a credential, read through the environment's prefix, and
required in every environment (``required_in`` narrows that). Signatures are
checked by :mod:`envfence_builtins.webhook_service.webhook_signatures`.

The receiver's routes (``[webhooks.routes."/path"]``) have their secrets
checked the same way, and two routes sharing a secret are a warning: a
delivery captured on one verifies on the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from envfence import slotted
from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.credential_shapes import PLACEHOLDER, describe, entropy_bits, text_problem
from envfence.models import Finding, SettingSpec, reveal

# The scheme names only: the signing code (and OpenSSL under hmac) is for validate, not for every session's declarations.
from envfence_builtins.webhook_service.signature_checks import SCHEMES, SignatureError

if TYPE_CHECKING:
    from envfence.redaction import SecretShape

SECTION = "webhooks"
#: A shared secret shorter than this is too easy to guess.
MIN_LENGTH = 24
#: Estimated bits of randomness below which a secret is called weak.
MIN_BITS = 96


@slotted.frozen
class Source:
    """A configured webhook source."""

    name: str
    scheme: str
    secret: str  #: the plain name of the setting holding its secret
    required_in: tuple[str, ...]


def _webhooks_table() -> Any:
    from envfence.settings_kinds import text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "webhook sources, one [webhooks.NAME] each, and their signing secrets")
    # Places kept for the parts the webhook service's plugins declare (each gives way to its declaration when loaded).
    table.add_table("routes", "the webhook receiver's routes (declared by webhook_receiver)", extra=True)
    table.add_table("providers", "signing schemes described in the settings (declared by webhook_providers)", extra=True)
    source = table.add_each("", "one webhook source", noun="source name", defaults={s: {"scheme": s} for s in SCHEMES})
    source.add("scheme", text(choices=SCHEMES), None,
               "how its deliveries are signed (default: the source's name, when it names a scheme)", required=True)
    source.add("secret", text(example="ORDERS_SIGNING_SECRET"), None,
               "the setting holding its signing secret (default <SOURCE>_WEBHOOK_SECRET)")
    source.add("required_in", texts(example="production"), None, "the environments that need the secret (default: all)")
    return table


#: ``[webhooks]``'s sources, declared once: loading, ``check``, ``config schema`` and the docs read it.
TABLE = _webhooks_table()


@hookimpl
def declare_tables():
    """The ``[webhooks]`` sources."""
    return [TABLE]


def sources(settings) -> tuple[list[Source], list[Finding]]:
    """The sources of ``[webhooks]``, read through :data:`TABLE`.

    A source its declaration refuses is left out: ``check`` names it (``SETTINGS_INVALID``, with the file
    and the key), once; the list of findings stays for callers that report what only the reader sees.
    """
    try:
        tables = TABLE.read(settings).each("")
    except ConfigurationError:
        return [], []
    found = []
    for name, body in tables.items():
        if TABLE.each[""].one(name, body.raw, f"{SECTION}.{name}"):
            continue
        scheme = body["scheme"] or name
        secret = body["secret"] or f"{name.upper().replace('-', '_')}_WEBHOOK_SECRET"
        required = body["required_in"]
        found.append(Source(name, scheme, secret, tuple(required if required is not None else settings.environments)))
    return found, []


def route_sources(settings) -> list[Source]:
    """The receiver's routes as sources, so their secrets are checked alike; a malformed route is the receiver's to report."""
    table = settings.section(SECTION).get("routes", {})
    found = []
    for path, body in table.items() if isinstance(table, Mapping) else ():
        provider = body.get("provider") if isinstance(body, Mapping) else None
        if not isinstance(provider, str) or not provider:
            continue
        secret = body.get("secret", f"{provider.upper().replace('-', '_')}_WEBHOOK_SECRET")
        if isinstance(secret, str) and secret:
            found.append(Source(f"route {path}", provider if provider in SCHEMES else "other", secret, ()))
    return found


def _shared(session, routes: list[Source]) -> list[Finding]:
    """A warning for each secret (by name or by value) that more than one route verifies with."""
    config, by_value = session.config, {}
    for route in routes:
        key = config.credential_key(route.secret)
        ident = str(reveal(config[key])) if key is not None else route.secret
        by_value.setdefault(ident, []).append(route)
    return [
        Finding("WEBHOOK_SECRET_SHARED", "warning",
                f"{' and '.join(r.name for r in group)} verify with the same signing secret "
                f"({', '.join(dict.fromkeys(r.secret for r in group))}): a delivery captured on one is valid on the other",
                'give each route its own secret = "..." (and the sender one per endpoint); an event id is still accepted '
                "once per environment whatever the route", key=group[0].secret, plugin="webhooks")
        for group in by_value.values() if len(group) > 1
    ]


@hookimpl
def secret_shapes() -> list[SecretShape]:
    """A Standard Webhooks secret is secret wherever it appears."""
    from envfence.redaction import SecretShape

    return [SecretShape(r"\bwhsec_[A-Za-z0-9+/=]{16,}", "Standard Webhooks secret")]


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """One secret setting per source."""
    return [
        SettingSpec(s.secret, f"signing secret of the {s.name} webhooks, {s.scheme} scheme", secret=True,
                    credential=True, required_in=s.required_in, plugin="webhooks")
        for s in sources(settings)[0]
    ]


@hookimpl
def validate(session) -> list[Finding]:
    """Each source's and route's secret: not a placeholder, long and random enough, in its scheme's form; routes sharing one."""
    found, findings = sources(session.settings)
    config = session.config
    routes = route_sources(session.settings)
    findings += _shared(session, routes)
    checked = {s.secret: s for s in found}
    for route in routes:  # a route's secret is checked once, as a source's is
        checked.setdefault(route.secret, route)
    for source in checked.values():
        key = config.credential_key(source.secret)
        if key is None:
            continue  # a missing required secret is the declared-settings check's finding
        value = str(reveal(config[key]))
        shown = describe(key, config[key])

        def add(code: str, severity: str, problem: str, remediation: str) -> None:
            findings.append(Finding(code, severity, f"{shown}, the {source.name} webhook secret, {problem}",
                                    remediation, key=key, plugin="webhooks"))

        problem = text_problem(value)
        if problem is not None:
            add("WEBHOOK_SECRET_PLACEHOLDER" if problem == PLACEHOLDER else "WEBHOOK_SECRET_FORMAT", "error", problem,
                f"copy the signing secret from {source.name}'s webhook settings into {key}")
            continue
        if source.scheme == "standard":
            from envfence_builtins.webhook_service.webhook_signatures import decode_standard_secret

            try:
                decode_standard_secret(value)
            except SignatureError as exc:
                add("WEBHOOK_SECRET_FORMAT", "error", f"is not a Standard Webhooks secret: {exc}",
                    "use the whsec_... value the sender shows, or make one: "
                    "python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\"")
            continue
        if len(value) < MIN_LENGTH:
            add("WEBHOOK_SECRET_SHORT", "error", f"is shorter than {MIN_LENGTH} characters",
                "generate a long random secret (python -c \"import secrets;print(secrets.token_hex(32))\") "
                "and set it on both sides")
        elif entropy_bits(value) < MIN_BITS:
            add("WEBHOOK_SECRET_WEAK", session.profile.escalate("warning"),
                "repeats too few characters to be random (guessable)",
                "generate one with python -c \"import secrets;print(secrets.token_hex(32))\" and set it on both sides")
    return findings
