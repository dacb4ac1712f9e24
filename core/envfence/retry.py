"""Retries for the network calls of automations that can never write twice.

A call is tried again only when another try cannot duplicate its effect:

- the request never reached the server (connection refused, name resolution
  failed, the connection could not be made in time);
- the server answered 429 or 503, which say it did nothing, after the wait a
  ``Retry-After`` header asks for (seconds or an HTTP date), up to a cap;
- the caller marked the call idempotent (a read, an upsert on a key field), in
  which case timeouts, dropped connections and other 5xx answers are tried
  again too.

A call that is not idempotent and may have reached the server (a read timeout,
a connection dropped mid-answer) is raised as :class:`AmbiguousWriteError`,
whose message says to upsert on a key field. Anything else (a 401, a 422, a
bug) is raised at once. The loop itself is tenacity's.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

#: Exception class names that mean "try again" whatever library raised them
#: (requests, urllib3, httpx, the standard library), matched by name so that
#: none of those libraries has to be imported here. Error classification uses
#: them too: such a failure is of class ``network``.
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

#: Failures that happen before a request is sent: a retry cannot duplicate it.
#: ``NewConnectionError`` is urllib3's refused or unreachable connection and
#: ``NameResolutionError`` its DNS failure; ``gaierror`` is the socket's.
NEVER_SENT_NAMES = frozenset(
    {"ConnectionRefusedError", "NewConnectionError", "NameResolutionError", "gaierror", "ConnectTimeout", "ConnectTimeoutError"}
)

#: Answers that say the server did nothing with the request.
NOTHING_DONE_STATUSES = frozenset({429, 503})

#: The longest wait a ``Retry-After`` header may impose by default (Airtable's
#: 429 penalty is 30 seconds).
MAX_RETRY_AFTER = 60.0


class AmbiguousWriteError(ConnectionError):
    """A call that may have reached the server failed, and was not retried because it is not idempotent."""


def status_code(error: BaseException) -> int | None:
    """The HTTP status an exception carries (``requests``' ``response.status_code``), or None."""
    response = getattr(error, "response", None)
    code = getattr(response, "status_code", None)
    if code is None:
        code = getattr(error, "status_code", None)
    return code if isinstance(code, int) else None


def is_retryable(error: BaseException) -> bool:
    """True for a transient failure: 429, 5xx, timeouts and connection failures.

    This says what kind of failure it is (error classification uses it), not
    whether a retry is safe: :func:`may_retry` decides that.
    """
    code = status_code(error)
    if code is not None:
        return code == 429 or 500 <= code <= 599
    return any(cls.__name__ in RETRYABLE_NAMES for cls in type(error).__mro__)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: causes, contexts, exception arguments and urllib3's ``reason``."""
    seen: set[int] = set()
    stack = [error]
    while stack and len(seen) < 32:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        stack.extend(e for e in wrapped if isinstance(e, BaseException))


def never_sent(error: BaseException) -> bool:
    """True when the request never reached the server (refused, DNS, connect timeout)."""
    return any(cls.__name__ in NEVER_SENT_NAMES for cause in _causes(error) for cls in type(cause).__mro__)


def may_retry(error: BaseException, idempotent: bool = False) -> bool:
    """True when another try is safe and may help (see the module's rules)."""
    code = status_code(error)
    if code is not None:
        return code in NOTHING_DONE_STATUSES or (idempotent and 500 <= code <= 599)
    if never_sent(error):
        return True
    return idempotent and is_retryable(error)


def retry_after(error: BaseException, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number of seconds or an HTTP date), or None."""
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    if value is None:
        return None
    value = str(value).strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None or moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN asks for nothing


def retry_call(
    fn: Callable[..., T],
    *args: Any,
    idempotent: bool = False,
    attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    max_retry_after: float = MAX_RETRY_AFTER,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn(*args, **kwargs)``, trying again only where that cannot duplicate a write.

    :param idempotent: the call may run twice with the same effect as once (a
        read, an upsert on a key field); timeouts and 5xx answers are then tried again too.
    :param attempts: tries in all, the first included.
    :param base_delay: the first wait in seconds; each next wait doubles, with jitter.
    :param max_delay: no backoff wait is longer.
    :param max_retry_after: no wait a ``Retry-After`` header asks for is longer.
    :param on_retry: called with (attempt number, exception, wait) before each wait.
    :returns: what ``fn`` returns.
    :raises AmbiguousWriteError: a call not marked idempotent failed after it may have reached the server.
    :raises: the last exception when every try failed, or the first one not worth another try.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt

    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def wait(state) -> float:
        error = state.outcome.exception()
        # The exponent is capped: 2 ** 1024 is no float, and max_delay caps the wait long before.
        seconds = min(max_delay, base_delay * 2 ** min(state.attempt_number - 1, 64)) * (0.5 + random.random() / 2)
        asked = retry_after(error)
        if asked is not None:
            seconds = min(max_retry_after, max(seconds, asked))
        return seconds

    def before_sleep(state) -> None:
        on_retry(state.attempt_number, state.outcome.exception(), state.next_action.sleep)  # type: ignore[misc]

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_exception(lambda error: may_retry(error, idempotent)),
        wait=wait,
        sleep=sleep,
        before_sleep=None if on_retry is None else before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn, *args, **kwargs)
    except Exception as exc:
        if idempotent or status_code(exc) is not None or never_sent(exc) or not is_retryable(exc):
            raise
        raise AmbiguousWriteError(
            f"{type(exc).__name__}: the call may have reached the server, so it was not tried again: "
            "a second try could write twice. Make it safe to repeat, e.g. an upsert on a key field "
            "(pyairtable: table.batch_upsert(records, key_fields=[\"Name\"])), and pass idempotent=True"
        ) from exc
