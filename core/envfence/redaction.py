"""Removing secret values from text before anyone sees it.

Used for error messages, tracebacks, log records, subprocess output and audit
records: every known secret value of a session is replaced by the mask, and
so is anything shaped like a token, known to the session or not.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping

from .models import MASK

#: Token shapes that are secret wherever they appear.
TOKEN_PATTERNS = (
    re.compile(r"\bpat[A-Za-z0-9]{14}\.[0-9a-fA-F]{64}\b"),  # Airtable personal access token
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"),  # Standard Webhooks secret
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{12,}"),  # Authorization header values
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"),  # Slack incoming webhook URL
)

# Values shorter than this are not replaced by value: masking every "1" or
# "yes" in a message would destroy it, and such values are no secret anyway.
_MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces a fixed set of secret values, and token shapes, with the mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        # No pattern is compiled: a session builds its redactor on every
        # command, and most texts it sees hold none of the values.
        self._values = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        for pattern in TOKEN_PATTERNS:
            text = pattern.sub(_mask_token, text)
        return text

    def data(self, value: Any) -> Any:
        """``value`` with every string inside it (dict values, list items) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self(str(value))


def record_patcher(redactor: Redactor, detailed: bool = False) -> Callable[[dict], None]:
    """A loguru patcher that redacts a record before any sink sees it.

    The message and the extra fields are redacted; an exception is formatted
    here (with each frame's local variables when ``detailed``), redacted, and
    appended to the message, so no sink formats the raw exception itself.
    """

    def patch(record: dict) -> None:
        exc = record.get("exception")
        message = record["message"]
        if exc is not None:
            import traceback

            args = (exc.type or BaseException, exc.value or BaseException(), exc.traceback)
            try:
                trace = traceback.TracebackException(*args, capture_locals=detailed)
            except Exception:  # a local whose repr() fails must not lose the record
                trace = traceback.TracebackException(*args)
            message = f"{message}\n{''.join(trace.format()).rstrip()}"
            record["exception"] = None
        record["message"] = redactor(message)
        for key, value in list(record["extra"].items()):
            record["extra"][key] = redactor.data(value)

    return patch


def _mask_token(match: re.Match[str]) -> str:
    word = match.group(1) if match.lastindex else None
    return f"{word} {MASK}" if word else MASK


def environ_secrets(environ, declared: Iterable[str] = ()) -> list[str]:
    """The values of an environment's secret variables: secret-named (``*_KEY``,
    ``*_TOKEN``…) or ``declared`` secret (settings' ``secrets``, declared settings)."""
    from .pipeline import is_secret_key

    declared = set(declared)
    return [value for key, value in environ.items() if is_secret_key(key, declared)]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with ``secrets`` and token-shaped strings masked."""
    return Redactor(secrets)(text)
