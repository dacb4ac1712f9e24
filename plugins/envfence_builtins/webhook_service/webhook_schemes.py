"""Signature schemes described by settings: a provider's scheme configurable without code.

Not a plugin: :func:`configured_providers` turns each
``[webhooks.providers.<name>]`` table into a provider with one of these
schemes (:func:`providers_for` gives a session's providers, the registered
ones and the settings' together), and ``envfence webhooks verify`` checks a captured delivery against
one, part by part. A table names what a sender does::

    [webhooks.providers.housecallpro]      # the built-in's own name: its scheme, changed where the table says
    signature_header = "api-signature"     # where the signature is
    signature_prefix = ""                  # text before it ("sha256=", "v1,")
    timestamp_header = "api-timestamp"     # where the signed timestamp is (none: no timestamp is signed)
    timestamp_unit = "auto"                # seconds, milliseconds, or auto (13 digits read as milliseconds)
    signed = "{timestamp}.{body}"          # the signed string: {timestamp}, {body}, {header:NAME}, literal text between
    algorithm = "sha256"                   # HMAC with sha256, sha1 or sha512
    encoding = "hex"                       # of the signature: hex, base64 or base64url
    secret_encoding = "text"               # text (its UTF-8 bytes) or base64 (after secret_prefix, e.g. "whsec_")
    id_header = ""                         # the delivery's id; none: a digest of the signed string
    event_type = "body:event"              # body:FIELD or header:NAME

A table under another name defines a new provider (``signature_header`` is
then required); routes name it in ``provider = "..."``.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from typing import Any, Mapping

from envfence import slotted
from envfence.errors import ConfigurationError

from envfence_builtins.webhook_service.provider_hooks import WebhookProvider, collect_providers, payload_field
from envfence_builtins.webhook_service.signature_checks import SignatureError, check_timestamp

KEYS = ("signature_header", "signature_prefix", "timestamp_header", "timestamp_unit", "signed", "algorithm", "encoding",
        "secret_encoding", "secret_prefix", "id_header", "event_type")
CHOICES = {"timestamp_unit": ("seconds", "milliseconds", "auto"), "algorithm": ("sha256", "sha1", "sha512"),
           "encoding": ("hex", "base64", "base64url"), "secret_encoding": ("text", "base64")}
PLACEHOLDERS = ("timestamp", "body", "header:NAME")
#: What each key of a ``[webhooks.providers.<name>]`` table says (the settings reference shows it).
MEANINGS = {
    "signature_header": "where the signature is (required for a provider of a new name)",
    "signature_prefix": 'text before the signature ("sha256=", "v1,")',
    "timestamp_header": "where the signed timestamp is (none: no timestamp is signed)",
    "timestamp_unit": "seconds, milliseconds, or auto (13 digits read as milliseconds)",
    "signed": "the signed string: {timestamp}, {body}, {header:NAME}, literal text between",
    "algorithm": "the HMAC's hash",
    "encoding": "the signature's encoding",
    "secret_encoding": 'text (its UTF-8 bytes) or base64 (after secret_prefix, e.g. "whsec_")',
    "secret_prefix": "text before the secret's encoded bytes",
    "id_header": "the delivery's id (none: a digest of the signed string)",
    "event_type": "body:FIELD or header:NAME",
}


def declare(table: Any) -> None:
    """Declare the ``providers`` part of a ``[webhooks]`` table: one ``[webhooks.providers.<name>]`` per provider."""
    from envfence.settings_kinds import text

    one = table.add_each("providers", "a signing scheme described in the settings, over a built-in of the same name",
                         noun="provider name")
    for key in KEYS:
        kind = text(choices=CHOICES[key]) if key in CHOICES else text(empty=key != "signature_header", example="x-signature")
        one.add(key, kind, None, MEANINGS[key])


@slotted.frozen
class Scheme:
    """How one sender signs a delivery (see the module's documentation for each field)."""

    signature_header: str
    signature_prefix: str = ""
    timestamp_header: str = ""
    timestamp_unit: str = "seconds"
    signed: str = "{body}"
    algorithm: str = "sha256"
    encoding: str = "hex"
    secret_encoding: str = "text"
    secret_prefix: str = ""
    id_header: str = ""
    event_type: str = "body:type"

    def parts(self) -> list[tuple[str, str]]:
        """The signed string as ``(kind, text)``: ``literal``, ``timestamp``, ``body`` or ``header`` (text: its name)."""
        found = []
        for literal, field, spec, conversion in string.Formatter().parse(self.signed):
            if literal:
                found.append(("literal", literal))
            if field is None:
                continue
            if conversion or (field != "header" and spec) or (field == "header" and not spec) or field not in ("timestamp", "body", "header"):
                raise ValueError(f"{{{field}{':' + spec if spec else ''}}}")
            found.append((field, spec.lower()))
        return found

    def key(self, secret: str) -> bytes:
        """The HMAC key of a configured secret."""
        if self.secret_encoding == "text":
            return secret.encode()
        import base64
        import binascii

        body = secret.removeprefix(self.secret_prefix)
        try:
            return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"the secret (after {self.secret_prefix!r}) is not valid base64") from None

    def message(self, headers: Mapping[str, str], body: bytes) -> bytes:
        """The signed string of a delivery; :class:`SignatureError` names a header it needs and lacks."""
        out = b""
        for kind, text in self.parts():
            if kind == "literal":
                out += text.encode()
            elif kind == "body":
                out += body
            else:
                name = self.timestamp_header if kind == "timestamp" else text
                value = headers.get(name.lower())
                if value is None or not value.strip():
                    raise SignatureError(f"the {name} header is missing")
                out += value.strip().encode()
        return out

    def digest(self, secret: str, message: bytes) -> bytes:
        """The HMAC of ``message`` under the secret's key."""
        return hmac.new(self.key(secret), message, getattr(hashlib, self.algorithm)).digest()

    def encode(self, digest: bytes) -> str:
        """A digest written as the sender writes it (without the prefix)."""
        import base64

        if self.encoding == "hex":
            return digest.hex()
        encoded = base64.b64encode(digest) if self.encoding == "base64" else base64.urlsafe_b64encode(digest)
        return encoded.decode()

    def given(self, headers: Mapping[str, str]) -> list[bytes]:
        """The signatures the delivery carries, decoded to bytes (one header may hold several, space-separated)."""
        raw = (headers.get(self.signature_header.lower()) or "").strip()
        if not raw:
            raise SignatureError(f"the {self.signature_header} header is missing")
        found = []
        for part in raw.split():
            if self.signature_prefix and not part.lower().startswith(self.signature_prefix.lower()):
                continue
            decoded = _decode(part[len(self.signature_prefix):], self.encoding)
            if decoded is not None:
                found.append(decoded)
        if not found:
            prefix = f"{self.signature_prefix!r} and then " if self.signature_prefix else ""
            raise SignatureError(f"the {self.signature_header} header holds no signature of the scheme's form ({prefix}{self.encoding})")
        return found

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes, tolerance: int, *, now: float | None = None,
               fresh: bool = True) -> None:
        """Raise :class:`SignatureError` saying which part fails; ``fresh=False`` skips the timestamp's age."""
        given = self.given(headers)
        if self.timestamp_header:
            stamp = (headers.get(self.timestamp_header.lower()) or "").strip()
            if not stamp:
                raise SignatureError(f"the {self.timestamp_header} header is missing")
            if fresh:
                check_timestamp(stamp, now, tolerance, self.timestamp_unit)
        expected = self.digest(secret, self.message(headers, body))
        matched = False
        for candidate in given:  # every candidate compared: the time taken does not say which matched
            matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureError(f"the {self.signature_header} does not match the signed string {self.signed!r}")

    def sign(self, secret: str, headers: Mapping[str, str], body: bytes) -> str:
        """The header value this scheme's sender would write (for tests and fakes)."""
        return self.signature_prefix + self.encode(self.digest(secret, self.message({k.lower(): v for k, v in headers.items()}, body)))


def _decode(text: str, encoding: str) -> bytes | None:
    import base64
    import binascii

    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, validate=True) if encoding == "base64" else base64.urlsafe_b64decode(padded)
    except (ValueError, binascii.Error):
        return None


#: HousecallPro as envfence assumes it signs (HousecallPro publishes no description): the built-in's scheme.
HOUSECALLPRO = Scheme("api-signature", timestamp_header="api-timestamp", timestamp_unit="auto", signed="{timestamp}.{body}",
                      event_type="body:event")


def from_table(where: str, table: Any, base: Scheme | None = None) -> Scheme:
    """A scheme from a ``[webhooks.providers.<name>]`` table, over ``base`` (a built-in's scheme) when given.

    :raises ConfigurationError: naming the table and the key that cannot be used.
    """
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where} must be a table", 'e.g. signature_header = "x-signature"')
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {unknown[0]!r}", f"known keys: {', '.join(KEYS)}")
    for name, value in table.items():
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: {name} must be text, not {value!r}", f'e.g. {name} = "..."')
        if name in CHOICES and value not in CHOICES[name]:
            raise ConfigurationError(f"{where}: {name} = {value!r} is not one of {', '.join(CHOICES[name])}",
                                     f'e.g. {name} = "{CHOICES[name][0]}"')
    values = dict(table)
    if base is None and not values.get("signature_header"):
        raise ConfigurationError(f"{where}: signature_header is required (the header holding the signature)",
                                 'e.g. signature_header = "x-signature"')
    if base is None and "signed" not in values and values.get("timestamp_header"):
        values["signed"] = "{timestamp}.{body}"
    scheme = slotted.evolve(base, **values) if base is not None else Scheme(**values)
    _check_shape(where, scheme)
    return scheme


def _check_shape(where: str, scheme: Scheme) -> None:
    try:
        parts = scheme.parts()
    except ValueError as exc:
        raise ConfigurationError(f"{where}: signed = {scheme.signed!r}: {exc} is not a placeholder",
                                 f"use {{timestamp}}, {{body}} or {{header:NAME}}; write {{{{ and }}}} for braces") from None
    kinds = {kind for kind, _ in parts}
    if "body" not in kinds:
        raise ConfigurationError(f"{where}: signed = {scheme.signed!r} does not include {{body}}: the body would go unchecked",
                                 'e.g. signed = "{timestamp}.{body}"')
    if ("timestamp" in kinds) != bool(scheme.timestamp_header):
        raise ConfigurationError(f"{where}: signed and timestamp_header disagree: a signed {{timestamp}} needs timestamp_header, "
                                 "and a timestamp_header is only checked when signed", 'e.g. timestamp_header = "x-timestamp" '
                                 'with signed = "{timestamp}.{body}"')
    source = scheme.event_type.partition(":")
    if source[0] not in ("body", "header") or not source[2]:
        raise ConfigurationError(f"{where}: event_type = {scheme.event_type!r} is not body:FIELD or header:NAME",
                                 'e.g. event_type = "body:event"')


# --- providers from the settings ---------------------------------------------------


def scheme_provider(name: str, scheme: Scheme) -> WebhookProvider:
    """A provider verifying with ``scheme``, its event id and type found where the scheme says."""
    def event_id(headers: Mapping[str, str], body: bytes) -> str | None:
        if scheme.id_header:
            return headers.get(scheme.id_header.lower()) or None
        try:  # no id sent: the signed string names the delivery (the same one sent twice has the same id)
            return f"{name}_" + hashlib.sha256(scheme.message(headers, body)).hexdigest()[:32]
        except SignatureError:
            return None

    def event_type(headers: Mapping[str, str], payload: Any) -> str | None:
        source, _, key = scheme.event_type.partition(":")
        return (headers.get(key.lower()) or None) if source == "header" else payload_field(payload, key)

    return WebhookProvider(name, verify=lambda secret, headers, body, tolerance: scheme.verify(secret, headers, body, tolerance),
                           event_id=event_id, event_type=event_type, plugin="settings", scheme=scheme)


def _providers_table() -> Any:
    from envfence.settings_tables import Table

    table = Table("webhooks", "signing schemes described in the settings")
    declare(table)
    return table


#: The ``[webhooks.providers]`` part of ``[webhooks]`` (the ``webhook_providers`` plugin declares it): loading,
#: ``check``, the schema and the docs read it.
PROVIDERS_TABLE = _providers_table()


def configured_providers(settings, registered: Mapping[str, WebhookProvider]) -> dict[str, WebhookProvider]:
    """The providers of ``[webhooks.providers]``, checked by :data:`PROVIDERS_TABLE` first; a
    :class:`ConfigurationError` names the table and key that cannot be used."""
    values = PROVIDERS_TABLE.read(settings)
    values.refuse("providers")
    where = f"{settings.source}: [webhooks.providers"
    found = {}
    for name, body in {name: own.raw for name, own in values.each("providers").items()}.items():
        base = registered.get(name)
        if base is not None and base.scheme is None:
            raise ConfigurationError(
                f"{where}.{name}]: {name} (from {base.plugin or 'a plugin'}) verifies with code of its own, not a described scheme",
                f"give the table another name (e.g. [webhooks.providers.{name}-custom]) and name that in the route's provider")
        found[name] = scheme_provider(name, from_table(f"{where}.{name}]", body, base.scheme if base else None))
    return found


def providers_for(session) -> dict[str, WebhookProvider]:
    """The session's providers: the registered ones, then the settings' (which change a described built-in of their name)."""
    found = collect_providers(session.plugins)
    found.update(configured_providers(session.settings, found))
    return found
