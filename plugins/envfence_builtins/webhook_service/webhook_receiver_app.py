"""The webhook receiver as a WSGI application: verification first, then the durable queue.

Part of the ``webhook_receiver`` plugin, started by ``envfence serve``
(:mod:`.webhook_receiver_cli`). :class:`Live` holds what a running receiver
or worker reads (routes, secrets, session), replaced whole on a reload
(:mod:`.webhook_receiver_reload`). The order of the checks, and what each
refusal answers, is described in :mod:`.webhook_receiver`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Mapping

from envfence import slotted
from envfence.errors import EnvfenceError

from envfence_builtins.webhook_service.webhook_receiver_routes import Route

#: Headers never written to the queue: they may carry credentials of their own.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_JSON_TYPES = ("application/json",)

_REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable",
}


@slotted.frozen
class Live:
    """The configuration a running receiver or worker uses, replaced whole on a reload.

    :param session: the environment's prepared session (settings, thresholds, redaction, audit).
    :param routes: the routes, by path.
    :param secrets: each route's signing secret, by path (never logged).
    :param previous: rotated-out secrets by path, each with the ``time.monotonic()`` it stops being accepted.
    :param automations: the automations the routes name, by name.
    """

    session: Any
    routes: dict[str, Route]
    secrets: dict[str, str] = slotted.field(factory=dict, repr=False)
    previous: dict[str, tuple[tuple[str, float], ...]] = slotted.field(factory=dict, repr=False)
    automations: dict[str, Any] = slotted.field(factory=dict)

    @property
    def errors(self) -> tuple[str, ...]:
        """The codes of the configuration's error findings (a strict profile starts with none; a reload adds none)."""
        return tuple(sorted({f.code for f in self.session.report.findings if f.severity == "error"}))

    def previous_secrets(self, path: str) -> list[str]:
        """The rotated-out secrets of route ``path`` still in their overlap, newest first."""
        now = time.monotonic()
        return [secret for secret, until in self.previous.get(path, ()) if until > now]


class Refused(Exception):
    """A request the receiver turns down: its status, and the reason kept for the log and the trail."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Receiver:
    """The receiver as a WSGI application for one environment.

    :param session: the environment's prepared session (logging, audit, redaction).
    :param routes: the routes, by path.
    :param providers: the providers, by name.
    :param secrets: each route's signing secret, by path (never logged).
    :param queue: the environment's :class:`~envfence_builtins.webhook_service.webhook_queue.WebhookQueue`.
    :param backlog_limit: ``/readyz`` answers 503 from this many pending events on, and
        while the configuration has errors (it also lists the files changed since the start).
    """

    def __init__(self, session, routes: Mapping[str, Route], providers, secrets: Mapping[str, str], queue,
                 backlog_limit: int = 1000) -> None:
        #: What requests are checked against; replaced whole by :meth:`swap`.
        self.live = Live(session, dict(routes), dict(secrets))
        self.providers = providers
        self.queue = queue
        self.backlog_limit = backlog_limit
        #: Set each time an event is queued, so a waiting worker starts at once.
        self.accepted = threading.Event()
        self.log = session.logger(component="webhooks")
        self.access = AccessLog(session.logger(component="webhooks", access=True))
        self._audit_lock = threading.Lock()

    @property
    def session(self):
        """The session of the configuration in use."""
        return self.live.session

    @property
    def routes(self) -> dict[str, Route]:
        """The routes in use, by path."""
        return self.live.routes

    def swap(self, live: "Live") -> None:
        """Serve ``live`` from the next request on (one assignment: a request sees one configuration)."""
        self.live = live

    def __call__(self, environ, start_response):
        began = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        try:
            if path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
                status, body = self._health(path, _loopback(environ.get("REMOTE_ADDR", "")))
            else:
                status, body = self._receive(path, method, environ)
        except Refused as refused:
            status, body = refused.status, {"error": _REASONS[refused.status].lower()}
            self._refused(environ, printable(path), refused)
        except EnvfenceError as exc:  # the queue cannot take it now (its store is away): the sender delivers again
            status, body = 503, {"error": "unavailable"}
            self.log.warning(f"webhook on {printable(path)} not accepted now: {exc.message}")
        except Exception as exc:  # never a traceback to the caller; the log keeps the redacted detail
            status, body = 503, {"error": "unavailable"}
            self.log.opt(exception=exc).error(f"webhook receiver error on {printable(path)}: {type(exc).__name__}: {exc}")
        data = json.dumps(body).encode()
        start_response(f"{status} {_REASONS.get(status, '')}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        self.access.add(
            f'{environ.get("REMOTE_ADDR", "-")} "{printable(method)} {printable(path)}" {status} {len(data)} '
            f"{(time.perf_counter() - began) * 1000:.1f}ms"
        )
        return [data]

    def _health(self, path: str, detailed: bool) -> tuple[int, dict]:
        if path == "/healthz":
            return 200, {"status": "alive"}
        live = self.live
        writable = self.queue.writable()
        backlog = self.queue.counts()["pending"]
        ready = writable and backlog < self.backlog_limit and not live.errors
        if not detailed:  # route names and error codes are for this host's probes, not for whoever can reach the port
            return (200 if ready else 503), {"status": "ready" if ready else "not ready"}
        return (200 if ready else 503), {
            "status": "ready" if ready else "not ready", "queue_writable": writable, "backlog": backlog,
            "backlog_limit": self.backlog_limit, "configuration_errors": list(live.errors),
            # Files changed since the configuration in use was loaded (a change refused by the reload stays listed).
            "configuration_changed": live.session.changed_layers(), "routes": sorted(live.routes),
        }

    def _receive(self, path: str, method: str, environ) -> tuple[int, dict]:
        live = self.live  # read once: a reload in the middle of this request does not mix two configurations
        route = live.routes.get(path)
        if route is None:
            raise Refused(404, "no route for this path")
        if method != "POST":
            raise Refused(405, f"method {method} (only POST)")
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in _JSON_TYPES:
            raise Refused(415, f"content type {content_type or 'none'!r} (only application/json)")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Refused(400, "Content-Length is not a number") from None
        if length > route.max_body:
            raise Refused(413, f"body of {length} bytes (limit {route.max_body})")
        body = environ["wsgi.input"].read(length) if length else b""
        headers = _headers(environ)
        provider = self.providers[route.provider]
        self._verify(live, route, provider, headers, body)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than any parser here (or the automation) goes
            raise Refused(400, "the body is not JSON (or nests too deep)") from None
        if not isinstance(payload, dict):
            raise Refused(400, "the body is not a JSON object")
        event_id = provider.event_id(headers, body)
        if not event_id:
            raise Refused(400, f"no event id ({route.provider} delivery without its id)")
        event_type = provider.event_type(headers, payload)
        wanted = route.wants(event_type)
        kept = {k: v for k, v in headers.items() if k not in DROPPED_HEADERS}
        if not self.queue.accept(route=path, event_id=event_id, provider=route.provider, event_type=event_type,
                                 automation=route.automation, body=body, headers=kept, max_attempts=route.max_attempts,
                                 ignored=not wanted):
            raise Refused(409, f"event {event_id} was already received (replay)")
        if wanted:
            self.accepted.set()
        return 202, {"status": "accepted" if wanted else "ignored", "event_id": event_id}

    def _verify(self, live: "Live", route: Route, provider, headers: dict[str, str], body: bytes) -> None:
        """Check the signature with the route's secret, then with a rotated-out one still in its overlap."""
        from envfence_builtins.webhook_service.webhook_signatures import SignatureError

        try:
            provider.verify(live.secrets[route.path], headers, body, route.tolerance)
            return
        except SignatureError as exc:
            first = exc
        for previous in live.previous_secrets(route.path):
            try:
                provider.verify(previous, headers, body, route.tolerance)
            except SignatureError:
                continue
            # The sender still signs with the old secret: worth a line, so it is switched before the overlap ends.
            self.log.info(f"webhook on {route.path} signed with the previous secret (accepted during its overlap)")
            return
        raise Refused(401, f"signature: {first}") from None

    def _refused(self, environ, path: str, refused: Refused) -> None:
        remote = environ.get("REMOTE_ADDR", "-")
        self.log.warning(f"webhook refused on {path}: {refused.status} {printable(refused.reason)} (from {remote})")
        with self._audit_lock:
            self.session.audit("webhook.refused", route=path, status=refused.status, reason=refused.reason, remote=remote)


class AccessLog:
    """The receiver's access log: one line per request, written through the environment's logger in batches.

    A log record costs far more than verifying and storing a delivery (the
    production strategy serialises it to JSON and hands it to a writer
    process), so the lines of up to :attr:`interval` seconds go out as one
    record, one line each. Refusals are also logged at once, as warnings.
    """

    interval = 0.25

    def __init__(self, logger) -> None:
        import queue

        self.logger = logger
        self._lines: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def add(self, line: str) -> None:
        """Queue one request's line."""
        self._lines.put(line)

    def close(self) -> None:
        """Write what is queued and stop."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        import queue

        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        if lines:
            self.logger.info("\n".join(lines))


def _loopback(address: str) -> bool:
    """True for a caller on this host (127.0.0.0/8, ::1)."""
    import ipaddress

    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def printable(text: str) -> str:
    """``text`` for a log line: a line break or another control character a caller sent shows as an escape, never starts a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _headers(environ) -> dict[str, str]:
    """The request's headers, lower-cased, as the sender wrote their names (``webhook-id``)."""
    found = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        found["content-type"] = environ["CONTENT_TYPE"]
    return found
