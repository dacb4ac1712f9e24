"""A small threaded JSON-over-HTTP server that the fake services build on.

Each fake binds to 127.0.0.1 (a free port unless one is given), answers from
a background thread, and is started and stopped by a ``with`` block. The
requests it saw are kept (method, path, and the authorization scheme only,
never the token) so that tests can say what a client did.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

from .. import slotted

#: The address every fake binds to: the loopback interface only.
HOST = "127.0.0.1"


@slotted.frozen
class Request:
    """One request as the fake saw it (the token itself is never kept)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    scheme: str  #: the authorization scheme (``Bearer``, ``Token``) or ""


@slotted.frozen
class Response:
    """What a fake answers: a status, a JSON body, extra headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = slotted.field(factory=dict)


class HTTPError(Exception):
    """Raised inside a handler to answer with an error status and body."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.response = Response(status, body, dict(headers or {}))


class FakeService:
    """Base of the fakes: a server on 127.0.0.1 run from a ``with`` block.

    Subclasses implement :meth:`handle`. ``delay`` (seconds) makes every
    answer late, to exercise a client's timeout.
    """

    #: Shown by ``envfence emulate`` and in ``repr``.
    label = "fake service"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.delay = 0.0
        #: The clock rate limits count by; a test may freeze it (``fake.clock = lambda: 0.0``).
        self.clock = time.monotonic
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def over_rate(self, key: str, limit: int | None) -> bool:
        """Count a request against ``key``; True when it is past ``limit`` in the last second."""
        if limit is None:
            return False
        now = self.clock()
        hits = self._hits[key]
        while hits and now - hits[0] >= 1.0:
            hits.popleft()
        if len(hits) >= limit:
            return True
        hits.append(now)
        return False

    def forget_rate(self, key: str) -> None:
        """Forget the requests counted against ``key``."""
        self._hits.pop(key, None)

    # --- life cycle --------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (only while running)."""
        if self._server is None:
            raise RuntimeError(f"{self.label} is not running: use it in a `with` block or call start()")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> "FakeService":
        """Bind and serve from a background thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((HOST, self.port), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name=self.label, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``envfence emulate``)."""
        self._server = _Server((HOST, self.port), _handler_for(self))
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeService":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<{type(self).__name__} {where}>"

    # --- answering ---------------------------------------------------------------

    def handle(self, request: Request, token: str | None) -> Response:  # pragma: no cover - abstract
        """Answer one request; ``token`` is the credential from the Authorization header."""
        raise NotImplementedError

    def _dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], raw_body: bytes) -> Response:
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query, keep_blank_values=True)
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                return Response(400, {"error": {"type": "INVALID_REQUEST_UNKNOWN", "message": "Invalid request: the body is not valid JSON"}})
        request = Request(method, parts.path, query, body, scheme)
        with self.lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        try:
            return self.handle(request, token.strip() or None)
        except HTTPError as exc:
            return exc.response
        except Exception as exc:  # a fault in the fake: answer 500 rather than drop the connection
            return Response(500, {"error": {"type": "SERVER_ERROR", "message": f"{self.label} failed: {type(exc).__name__}"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def _handler_for(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "envfence-fake/1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            response = service._dispatch(self.command, self.path, self.headers, raw)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo read stdout
            pass

    return Handler


def registered_emulators(manager: Any = None) -> tuple[dict[str, type[FakeService]], list[Any]]:
    """The emulators plugins register, and the errors of plugins that raised.

    Returns ``({name: class}, [PluginError, ...])``. ``manager`` is a
    :class:`~envfence.plugins.PluginManager` (default: the process's). The
    one place the ``register_emulators`` hook is called.
    """
    if manager is None:
        from ..plugins import default_manager

        manager = default_manager()
    result = manager.register_emulators()
    answers, errors = result.values, result.errors
    found: dict[str, type[FakeService]] = {}
    for answer in answers:
        for name, cls in dict(answer).items():
            found.setdefault(name, cls)  # call order: the first answer wins
    return found, list(errors)
