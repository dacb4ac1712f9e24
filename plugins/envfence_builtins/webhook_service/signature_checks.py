"""What every webhook signature scheme shares: its error, a constant-time comparison, the timestamp's tolerance.

Not a plugin, and the bottom of the signature modules: :mod:`.webhook_schemes`
(schemes described by settings) and :mod:`.webhook_signatures` (the built-in
senders, which read HousecallPro's scheme from :mod:`.webhook_schemes`) both build on it.
"""

from __future__ import annotations

import math
import time

#: Seconds a signed timestamp may be away from now (either way).
DEFAULT_TOLERANCE = 300
#: The built-in schemes (:func:`.webhook_signatures.verify` knows them), named here so that the
#: settings that name one are read without the signing code (``hmac`` loads OpenSSL).
SCHEMES = ("housecallpro", "standard", "github")


class SignatureError(ValueError):
    """A delivery's signature is missing, malformed, stale or wrong."""


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare two signatures in time that does not depend on where they differ."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    import hmac

    return hmac.compare_digest(a, b)


def _seconds(value: str | int | float, now: float | None, tolerance: int, milliseconds: bool = False) -> int:
    """The whole seconds of a signed timestamp, checked against now; ``milliseconds`` also reads 13-digit stamps."""
    try:
        stamp = math.floor(float(str(value).strip()))
    except (ValueError, OverflowError):
        raise SignatureError("the timestamp is not a number of seconds") from None
    seconds = stamp / 1000 if milliseconds and stamp > 10**11 else stamp
    current = time.time() if now is None else now
    if abs(current - seconds) > tolerance:
        away = current - seconds
        # A stamp absurdly far off is not printed in full (a 300-digit number helps no one).
        how_far = f"{abs(int(away))} s" if abs(away) < 10**12 else "more than 30,000 years"
        if away < 0:
            raise SignatureError(
                f"the timestamp is {how_far} ahead of now (tolerance {tolerance} s): "
                "forged, or this machine's clock is behind (check NTP)"
            )
        raise SignatureError(
            f"the timestamp is {how_far} old (tolerance {tolerance} s): stale or replayed, "
            "or this machine's clock is ahead (check NTP)"
        )
    return stamp


def check_timestamp(value: str | int | float, now: float | None = None, tolerance: int = DEFAULT_TOLERANCE,
                    unit: str = "seconds") -> int:
    """Check a signed timestamp against now; ``unit`` is ``seconds``, ``milliseconds`` or ``auto`` (13 digits: milliseconds)."""
    if unit == "milliseconds":
        try:
            value = float(str(value).strip()) / 1000
        except (ValueError, OverflowError):
            raise SignatureError("the timestamp is not a number of milliseconds") from None
    return _seconds(value, now, tolerance, milliseconds=unit == "auto")
