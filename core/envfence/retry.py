"""Retry with backoff for the network calls of automations.

Only failures that another try can cure are retried: HTTP 429 and 5xx
answers, timeouts and refused or dropped connections. Anything else (a 401,
a 422, a bug) is raised at once. The number of tries and the total wait are
bounded; a ``Retry-After`` header is honoured within the bound.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

#: Exception class names that mean "try again" whatever library raised them
#: (requests, urllib3, httpx, the standard library), matched by name so that
#: none of those libraries has to be imported here.
RETRYABLE_NAMES = frozenset(
    {
        "TimeoutError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "Timeout",
        "ReadTimeout",
        "ConnectTimeout",
        "ReadTimeoutError",
        "ProtocolError",
        "RemoteDisconnected",
        "ChunkedEncodingError",
    }
)


def status_code(error: BaseException) -> int | None:
    """The HTTP status an exception carries (``requests``' ``response.status_code``), or None."""
    response = getattr(error, "response", None)
    code = getattr(response, "status_code", None)
    if code is None:
        code = getattr(error, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(error: BaseException) -> bool:
    """True for 429, 5xx, timeouts and connection failures."""
    code = status_code(error)
    if code is not None:
        return code == 429 or 500 <= code <= 599
    return any(cls.__name__ in RETRYABLE_NAMES for cls in type(error).__mro__)


def retry_after(error: BaseException) -> float | None:
    """Seconds a ``Retry-After`` header asks for, or None."""
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def retry_call(
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)``, retrying retryable failures with exponential backoff.

    :param attempts: tries in all, the first included.
    :param base_delay: the first wait in seconds; each next wait doubles, with jitter.
    :param max_delay: no single wait is longer.
    :param retryable: decides whether an exception is worth another try.
    :param on_retry: called with (attempt number, exception, wait) before each wait.
    :returns: what ``fn`` returns.
    :raises: the last exception when every try failed, or the first one that is not retryable.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts or not retryable(exc):
                raise
            wait = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            asked = retry_after(exc)
            if asked is not None:
                wait = min(max_delay, max(wait, asked))
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
