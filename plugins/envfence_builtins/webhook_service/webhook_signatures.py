"""Verifying and making webhook signatures: HousecallPro, Standard Webhooks, GitHub.

Not a plugin: helpers for whatever receives webhooks (the pieces every scheme
shares, :class:`SignatureError` among them, are in :mod:`.signature_checks`). Every comparison is
constant-time; every scheme that signs a timestamp checks it against a
tolerance (five minutes unless told otherwise), so an old delivery cannot be
replayed. A failure raises :class:`SignatureError` whose message never holds
the secret or the expected signature.

- HousecallPro: ``api-signature`` is the hex HMAC-SHA256 of
  ``"{api-timestamp}.{raw body}"`` keyed with the webhook secret, the
  timestamp in seconds or milliseconds. HousecallPro publishes no description
  of its signing scheme: this is envfence's assumption, described as a
  scheme (:data:`.webhook_schemes.HOUSECALLPRO`) that ``[webhooks.providers.housecallpro]``
  changes without code; ``envfence webhooks verify`` checks it against a
  captured delivery.
- Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``,
  ``webhook-timestamp`` (whole seconds) and ``webhook-signature``
  (space-separated ``v1,<base64>`` entries); the key is the base64 of the
  secret, with or without its ``whsec_`` prefix and padding, and the signed
  content ``"{id}.{timestamp}.{raw body}"``. It accepts and refuses what the
  reference libraries do: a millisecond timestamp is refused as too far ahead.
- GitHub: ``X-Hub-Signature-256`` is ``sha256=`` and the hex HMAC-SHA256 of the
  raw body. GitHub signs no timestamp.

::

    verify("github", secret, request.headers, raw_body)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

from envfence_builtins.webhook_service.signature_checks import (
    DEFAULT_TOLERANCE,
    SCHEMES,
    SignatureError,
    check_timestamp,
    constant_time_equal,
)

#: Standard Webhooks keys: the specification asks for this many bytes; ``envfence check``
#: holds configured secrets to it, while verifying accepts any key, as the reference libraries do.
STANDARD_SECRET_BYTES = (24, 64)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _body(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


# --- GitHub ------------------------------------------------------------------------


def sign_github(secret: str | bytes, body: str | bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return "sha256=" + hmac.new(_key(secret), _body(body), hashlib.sha256).hexdigest()


def verify_github(secret: str | bytes, body: str | bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256``; raises :class:`SignatureError` when it does not match."""
    header = (header or "").strip()  # whitespace around a header's value is not part of it (RFC 9110)
    if not header:
        raise SignatureError("the X-Hub-Signature-256 header is missing")
    if not header.startswith("sha256="):
        raise SignatureError("the X-Hub-Signature-256 header does not start with sha256=")
    if not constant_time_equal(sign_github(secret, body), header.lower()):
        raise SignatureError("the X-Hub-Signature-256 signature does not match the body")


# --- HousecallPro ------------------------------------------------------------------


def sign_housecallpro(secret: str | bytes, body: str | bytes, timestamp: str | int) -> str:
    """The ``api-signature`` HousecallPro would send for ``body`` at ``timestamp``."""
    from envfence_builtins.webhook_service.webhook_schemes import HOUSECALLPRO

    secret = secret.decode() if isinstance(secret, bytes) else secret
    return HOUSECALLPRO.sign(secret, {"api-timestamp": str(timestamp)}, _body(body))


def verify_housecallpro(
    secret: str | bytes,
    body: str | bytes,
    signature: str | None,
    timestamp: str | int | None,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check ``api-signature`` against ``api-timestamp`` and the raw body (the scheme :data:`.webhook_schemes.HOUSECALLPRO`)."""
    from envfence_builtins.webhook_service.webhook_schemes import HOUSECALLPRO

    headers = {"api-signature": signature or "", "api-timestamp": "" if timestamp is None else str(timestamp)}
    secret = secret.decode() if isinstance(secret, bytes) else secret
    HOUSECALLPRO.verify(secret, headers, _body(body), tolerance, now=now)


# --- Standard Webhooks --------------------------------------------------------------


def _standard_key(secret: str | bytes) -> bytes:
    """The key of a secret as the reference libraries read it: ``whsec_`` optional, padding optional."""
    if isinstance(secret, bytes):
        key = secret
    else:
        # base64 is loaded when a key is read, not on every command that registers the webhooks plugin.
        import base64
        import binascii

        body = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("the secret (after whsec_) is not valid base64") from None
    if not key:
        raise SignatureError("the secret is empty")
    return key


def decode_standard_secret(secret: str) -> bytes:
    """The key of a configured secret, held to the specification's 24 to 64 bytes.

    Raises :class:`SignatureError` for one that is not base64 or has a key of
    another length; ``whsec_`` and padding are optional, as in the reference libraries.
    """
    key = _standard_key(secret)
    low, high = STANDARD_SECRET_BYTES
    if not low <= len(key) <= high:
        raise SignatureError(f"the key is {len(key)} bytes; a Standard Webhooks key is {low} to {high} bytes")
    return key


def sign_standard(secret: str | bytes, msg_id: str, timestamp: int | str, body: str | bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one delivery."""
    import base64

    content = f"{msg_id}.{timestamp}.".encode() + _body(body)
    digest = hmac.new(_standard_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(
    secret: str,
    msg_id: str | None,
    timestamp: str | int | None,
    body: str | bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check ``webhook-signature``: any of its space-separated ``v1,`` entries may match."""
    import base64
    import binascii

    if not msg_id or timestamp is None or not header:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are all required")
    seconds = check_timestamp(timestamp, now, tolerance)
    expected = base64.b64decode(sign_standard(secret, msg_id, seconds, body)[3:])
    candidates = [part[3:] for part in header.split() if part.startswith("v1,")]
    if not candidates:
        raise SignatureError("webhook-signature holds no v1 signature")
    # Signatures compare as bytes, against every candidate so
    # the time taken does not say which one matched.
    matched = False
    for candidate in candidates:
        try:
            given = base64.b64decode(candidate, validate=True)
        except (binascii.Error, ValueError):
            continue
        matched |= constant_time_equal(expected, given)
    if not matched:
        raise SignatureError("no webhook-signature entry matches the id, timestamp and body")


# --- one entry point -----------------------------------------------------------------

def verify(
    scheme: str,
    secret: str,
    headers: Mapping[str, str],
    body: str | bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Verify a delivery by its scheme, reading the headers case-insensitively."""
    lower = {k.lower(): v for k, v in headers.items()}
    if scheme == "github":
        verify_github(secret, body, lower.get("x-hub-signature-256"))
    elif scheme == "housecallpro":
        verify_housecallpro(secret, body, lower.get("api-signature"), lower.get("api-timestamp"), now=now, tolerance=tolerance)
    elif scheme == "standard":
        verify_standard(
            secret, lower.get("webhook-id"), lower.get("webhook-timestamp"), body, lower.get("webhook-signature"),
            now=now, tolerance=tolerance,
        )
    else:
        raise ValueError(f"unknown webhook scheme {scheme!r}; known: {', '.join(SCHEMES)}")
