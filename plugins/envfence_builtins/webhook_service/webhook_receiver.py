"""The webhook receiver: routes from the settings, verification first, then the durable queue.

Routes are declared in ``envfence.toml``::

    [webhooks.routes."/housecallpro"]
    provider = "housecallpro"                  # or standard, github, or a plugin's provider
    secret = "HOUSECALLPRO_WEBHOOK_SECRET"     # a credential, read through the environment's prefix
    automation = "import-job"                  # run for each accepted event
    events = ["job.created", "job.completed"]  # others are acknowledged and not run (default: all)
    max_body = 1048576                         # bytes (default 1 MiB)
    tolerance = 300                            # seconds a signed timestamp may be off
    max_attempts = 5                           # tries before the event is dead
    secret_overlap = 3600                      # seconds a rotated-out secret is still accepted (0: none)

Each request goes through, in this order, and is refused at the first
failure with a status that says no more than that: unknown route 404, not a
POST 405, content type other than JSON 415, body over the limit 413,
signature missing, wrong or stale 401, no event id or a body that is not a
JSON object 400, an event id already received on any route 409. Every refusal is logged
and audited (``webhook.refused``) with its reason, never with the secret.
An accepted event is synced to the queue before the 202.

This module is the plugin: it declares the routes' secrets, reports invalid
routes in ``envfence check``, and adds ``envfence serve``, ``envfence worker``
and ``envfence queue``. The server itself (waitress) is imported only by
``serve``. An event id is accepted once per environment, whatever the route.
``/readyz`` gives its detail (routes, configuration error codes, backlog) to
callers on this host only; others get the status alone.

A running receiver reads its routes, secrets and session from one
:class:`Live` value, which a reload (:mod:`.webhook_receiver_reload`)
replaces whole: a request sees the old configuration or the new one, never
half of each. After a secret is rotated, the previous one is still accepted
for the route's ``secret_overlap`` seconds (default one hour), so senders
can switch without losing deliveries.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Mapping

import attrs

from envfence import hookimpl
from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import Finding, SettingSpec, reveal

SECTION = "webhooks"
ROUTES = "routes"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_TOLERANCE = 300
DEFAULT_MAX_ATTEMPTS = 5
#: Seconds a rotated-out signing secret is still accepted: time to update the sender; 0 for a leaked secret.
DEFAULT_SECRET_OVERLAP = 3600
#: Headers never written to the queue: they may carry credentials of their own.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_JSON_TYPES = ("application/json",)
_ROUTE_KEYS = ("provider", "secret", "automation", "events", "max_body", "tolerance", "max_attempts", "secret_overlap")


@attrs.frozen
class Route:
    """One ``[webhooks.routes."/path"]`` table."""

    path: str
    provider: str
    secret: str  #: the plain name of the setting holding the signing secret
    automation: str
    events: tuple[str, ...] = ()  #: the event types that run the automation; empty means all
    max_body: int = DEFAULT_MAX_BODY
    tolerance: int = DEFAULT_TOLERANCE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    secret_overlap: int = DEFAULT_SECRET_OVERLAP  #: seconds the previous secret stays valid after a rotation

    def wants(self, event_type: str | None) -> bool:
        """True when an event of this type runs the route's automation."""
        return not self.events or event_type in self.events


def routes(settings) -> list[Route]:
    """The routes of ``[webhooks.routes]``; a :class:`ConfigurationError` names the first bad key."""
    table = settings.section(SECTION).get(ROUTES, {})
    where = f"{settings.source}: [{SECTION}.{ROUTES}"
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where}] must be a table of routes", f'write [{SECTION}.{ROUTES}."/path"] tables')
    found = []
    for path, body in table.items():
        here = f'{where}."{path}"]'
        if not isinstance(body, Mapping):
            raise ConfigurationError(f"{here} must be a table", 'with provider = "...", automation = "..."')
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ConfigurationError(f"{here}: a route is a URL path starting with /", 'e.g. [webhooks.routes."/housecallpro"]')
        unknown = sorted(set(body) - set(_ROUTE_KEYS))
        if unknown:
            raise ConfigurationError(f"{here}: unknown key {unknown[0]!r}", f"known keys: {', '.join(_ROUTE_KEYS)}")
        for key in ("provider", "automation"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ConfigurationError(f"{here}: {key} is required (a name)", f'e.g. {key} = "..."')
        secret = body.get("secret", f"{body['provider'].upper().replace('-', '_')}_WEBHOOK_SECRET")
        events = body.get("events", [])
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f"{here}: secret must name a setting", 'e.g. secret = "HOUSECALLPRO_WEBHOOK_SECRET"')
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ConfigurationError(f"{here}: events must be a list of event types", 'e.g. events = ["job.created"]')
        numbers = {}
        for key, default in (("max_body", DEFAULT_MAX_BODY), ("tolerance", DEFAULT_TOLERANCE), ("max_attempts", DEFAULT_MAX_ATTEMPTS)):
            value = body.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{here}: {key} must be a positive whole number, not {value!r}", f"e.g. {key} = {default}")
            numbers[key] = value
        overlap = body.get("secret_overlap", DEFAULT_SECRET_OVERLAP)
        if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0:
            raise ConfigurationError(f"{here}: secret_overlap must be a whole number of seconds (0 or more), not {overlap!r}",
                                     f"e.g. secret_overlap = {DEFAULT_SECRET_OVERLAP}, or 0 when the old secret leaked")
        found.append(Route(path, body["provider"], secret, body["automation"], tuple(events), **numbers, secret_overlap=overlap))
    return found


# --- the plugin ---------------------------------------------------------------


@hookimpl
def declare_settings(settings) -> list[SettingSpec]:
    """Each route's signing secret (a credential), and where the receiver listens."""
    try:
        declared = routes(settings)
    except ConfigurationError:
        return []  # validate() reports it
    if not declared:
        return []
    specs = [
        SettingSpec("WEBHOOK_PORT", "port of this environment's webhook receiver (envfence serve)", plugin="webhook_receiver"),
        SettingSpec("WEBHOOK_HOST", "address the webhook receiver listens on", default="127.0.0.1", plugin="webhook_receiver"),
    ]
    for secret in dict.fromkeys(r.secret for r in declared):
        specs.append(SettingSpec(secret, "signing secret of a webhook route", secret=True, credential=True,
                                 required_in=tuple(settings.environments), plugin="webhook_receiver"))
    return specs


def scaling(settings, environment: str):
    """Environment ``environment``'s ``[scaling.<environment>]`` (see :mod:`.webhook_receiver_scaling`).

    :raises ConfigurationError: a ``[scaling]`` table cannot be used.
    """
    from envfence_builtins.webhook_service.webhook_receiver_scaling import scaling_for

    return scaling_for(settings, environment)


def _scaling_findings(settings) -> list[Finding]:
    if "scaling" not in settings.raw:
        return []
    from envfence_builtins.webhook_service.webhook_receiver_scaling import problems

    return [Finding("SCALING_INVALID", "error", exc.message, exc.hint, key="scaling", plugin="webhook_receiver")
            for exc in problems(settings)]


@hookimpl
def validate(session) -> list[Finding]:
    """A route table that cannot be used, one naming an unknown provider, a ``[scaling]`` table that cannot be used."""
    scaled = _scaling_findings(session.settings)
    try:
        declared = routes(session.settings)
        if not declared:
            return scaled
        from envfence_builtins.webhook_service.webhook_schemes import providers_for

        providers = providers_for(session)
    except ConfigurationError as exc:
        return [Finding("WEBHOOK_ROUTE_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin="webhook_receiver"), *scaled]
    return scaled + [
        Finding("WEBHOOK_ROUTE_INVALID", "error",
                f"route {r.path}: no webhook provider named {r.provider!r} (known: {', '.join(sorted(providers))})",
                "name a known provider, or install the plugin that provides it", key=SECTION, plugin="webhook_receiver")
        for r in declared if r.provider not in providers
    ]


@hookimpl
def on_run_start(session, request, run_id) -> None:
    """Note on the queue which run a webhook event started: a worker killed after that run succeeded never runs it again."""
    if getattr(request, "event", None) is not None:
        from envfence_builtins.webhook_service.webhook_worker import note_start

        note_start(request.event, run_id)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence serve``, ``envfence worker``, ``envfence queue`` and ``envfence webhooks verify``."""
    from envfence_builtins.webhook_service.webhook_cli import queue, serve, worker
    from envfence_builtins.webhook_service.webhook_verify import webhooks

    for command in (serve, worker, queue, webhooks):
        cli.add_command(command)


# --- the WSGI application ---------------------------------------------------------

_REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 503: "Service Unavailable",
}


@attrs.frozen
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
    secrets: dict[str, str] = attrs.field(factory=dict, repr=False)
    previous: dict[str, tuple[tuple[str, float], ...]] = attrs.field(factory=dict, repr=False)
    automations: dict[str, Any] = attrs.field(factory=dict)

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
            self._refused(environ, _printable(path), refused)
        except EnvfenceError as exc:  # the queue cannot take it now (its store is away): the sender delivers again
            status, body = 503, {"error": "unavailable"}
            self.log.warning(f"webhook on {_printable(path)} not accepted now: {exc.message}")
        except Exception as exc:  # never a traceback to the caller; the log keeps the redacted detail
            status, body = 503, {"error": "unavailable"}
            self.log.opt(exception=exc).error(f"webhook receiver error on {_printable(path)}: {type(exc).__name__}: {exc}")
        data = json.dumps(body).encode()
        start_response(f"{status} {_REASONS.get(status, '')}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        self.access.add(
            f'{environ.get("REMOTE_ADDR", "-")} "{_printable(method)} {_printable(path)}" {status} {len(data)} '
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
        self.log.warning(f"webhook refused on {path}: {refused.status} {_printable(refused.reason)} (from {remote})")
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


def _printable(text: str) -> str:
    """``text`` for a log line: a line break or another control character a caller sent shows as an escape, never starts a line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _headers(environ) -> dict[str, str]:
    """The request's headers, lower-cased, as the sender wrote their names (``webhook-id``)."""
    found = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        found["content-type"] = environ["CONTENT_TYPE"]
    return found


def route_secrets(session, declared: list[Route]) -> dict[str, str]:
    """Each route's signing secret, read through the environment's prefix (the access is audited)."""
    found = {}
    for route in declared:
        value = session.credential(route.secret, by="webhook receiver")
        if value is None or not str(reveal(value)).strip():
            raise ConfigurationError(
                f"route {route.path}: its signing secret {route.secret} is not set in {session.environment.name}",
                f"set {session.settings.naming.key(session.environment.name, route.secret)} "
                f"(or {route.secret} in .env.{session.environment.name})",
            )
        found[route.path] = str(reveal(value))
    return found


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``open_webhook_queue``: a shared store keeps the queue every receiver and worker uses."""
    from envfence_builtins.webhook_service.queue_hooks import QueueHookspecs

    register(QueueHookspecs)


def start_reloading(live: Live, apply, what: str, providers_of, *, watch: bool, secrets: bool, echo):
    """Keep a running ``serve`` or ``worker`` current: returns the started
    :class:`~envfence_builtins.webhook_service.webhook_receiver_reload.Reloader`
    (``request("SIGHUP")`` reloads; ``watch`` also reloads on a change to a configuration file)."""
    from envfence_builtins.webhook_service.webhook_receiver_reload import Parts, Reloader

    parts = Parts(providers_of, routes, route_secrets if secrets else None)
    reloader = Reloader(live, apply, what, parts, echo=echo)
    reloader.start(watch)
    return reloader
