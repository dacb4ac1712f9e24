"""The shape checks every credential validator shares: placeholders, randomness, how a finding names a value.

A core service, so that the ``credentials`` plugin and the service plugins
(``airtable``, ``housecallpro``, ``webhooks``) judge a token alike without
importing one another: :func:`placeholder`, :func:`entropy_bits`,
:func:`describe`, :func:`text_problem` and :func:`required_in`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from .models import Secret

#: Values people leave in place of a real credential (compared lower-case).
PLACEHOLDERS = frozenset(
    {
        "changeme", "change-me", "change_me", "change me", "your-token-here", "your_token_here", "your-key-here",
        "your_key_here", "your-api-key", "your_api_key", "your-secret-here", "insert-token-here", "replace-me",
        "replaceme", "todo", "tbd", "fixme", "placeholder", "secret", "password", "token", "apikey", "api_key",
        "test", "dummy", "example", "sample", "none", "null", "undefined", "xxx", "default",
    }
)
#: Compiled on first use (``re``'s own cache keeps them): most commands never judge a credential.
_PLACEHOLDER_SHAPES = (
    (r"^(.)\1*$", 0),  # xxxx, 0000, ****
    (r"^<[^>]*>$|^\$\{[^}]*\}$|^\{\{.*\}\}$", 0),  # <token>, ${TOKEN}, {{token}}
    (r"(changeme|change[-_ ]me|replace[-_ ]?me|your[-_ ]?(api[-_ ]?)?(token|key|secret)|[-_ ]here$)", re.I),
)


def placeholder(value: str) -> bool:
    """True when ``value`` is a stand-in (``changeme``, ``your-token-here``, ``xxx``...), not a credential."""
    text = value.strip()
    return text.lower() in PLACEHOLDERS or any(re.search(p, text, flags) for p, flags in _PLACEHOLDER_SHAPES)


def entropy_bits(value: str) -> float:
    """An estimate of the randomness in ``value``: Shannon entropy per character times length."""
    if not value:
        return 0.0
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def describe(key: str, value: Any, kind: str | None = None) -> str:
    """``KEY (kind, N chars)``: how a finding names a credential without showing it.

    Of a value shorter than 8 characters nothing is said: its kind and length
    would go a long way to guessing it.

    :param kind: what the value is, when the calling plugin knows its service's shapes.
    """
    from .redaction import MIN_SECRET_LENGTH

    secret = value if isinstance(value, Secret) else Secret(str(value))
    if len(secret.reveal()) < MIN_SECRET_LENGTH:
        return f"{key} (secret, under {MIN_SECRET_LENGTH} chars)"
    return f"{key} ({secret.fingerprint(kind)})"


#: What :func:`text_problem` says of a placeholder; validators compare with it to pick their code.
PLACEHOLDER = "is a placeholder, not a real credential"


def text_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a token whatever the service, or None."""
    if not value.strip():
        return "is empty"
    if value != value.strip():
        return "has leading or trailing whitespace"
    if any(ch.isspace() for ch in value):
        return "contains whitespace"
    if placeholder(value):
        return PLACEHOLDER
    return None


def required_in(settings, table) -> tuple[str, ...]:
    """Where a service's credentials are required: nowhere without its settings table, else
    the table's ``required_in`` list (default: every environment).

    ``table`` is the :class:`~envfence.settings_tables.Table` the service's plugin declares, with a
    ``required_in`` key: the core reads no plugin's table by name. A table or a ``required_in`` of the
    wrong kind counts as every environment (``check`` names it, SETTINGS_INVALID).
    """
    from .errors import ConfigurationError

    try:
        values = table.read(settings)
        if not values.present:
            return ()
        listed = values["required_in"]
    except ConfigurationError:
        listed = None
    return tuple(str(e) for e in listed) if listed is not None else tuple(settings.environments)
