"""``envfence serve``, ``envfence worker`` and ``envfence queue``: the webhook receiver's commands.

``serve`` and ``worker`` start only where a run of an automation could: the
same safety guards (the hostname guard above all) and the same overrides
(``--force``, with ``--reason`` in a strict profile), recorded in the audit
trail. ``serve`` also refuses a port another environment declares. The
server, waitress, is imported here only, and only by ``serve``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from envfence import slotted
from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.cli.output import dumps
from envfence.errors import EXIT_FINDINGS, ConfigurationError, EnvfenceError, SafetyError, UsageError

from envfence_builtins.webhook_service.queue_hooks import QueueHooks

if TYPE_CHECKING:  # the queue (sqlite3) and the receiver load only for the command that runs
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue
    from envfence_builtins.webhook_service.webhook_receiver_routes import Route

#: The automation name the safety guards see when deciding whether the receiver may start.
RECEIVER_NAME = "webhook-receiver"
#: Days after which a finished event's payload is pruned (its id stays for replay protection).
RETENTION_DAYS = 30.0


@slotted.frozen
class Setup:
    """What ``serve`` and ``worker`` share once the decision to start is made."""

    session: Any
    routes: dict[str, Route]
    queue: WebhookQueue
    automations: dict[str, Any]


def _decide(state: State, force: bool, reason: str | None, what: str) -> Any:
    """Open the session and apply the run guards to starting the receiver; returns the session."""
    from envfence.models import Automation, RunRequest
    from envfence.runner import Runner, current_user

    if reason is not None and not force:
        raise UsageError("--reason goes with --force", "add --force, or drop --reason")
    session = state.session()
    request = RunRequest(Automation(RECEIVER_NAME, description=f"envfence {what}"), force=force, reason=reason)
    blocking = [f for f in Runner(session).check(request) if f.severity == "error"]
    env = session.environment.name
    if blocking:
        codes = [f.code for f in blocking]
        refusal = None
        if not force:
            refusal = "; ".join(f.message for f in blocking)
        elif session.profile.strict and not (reason or "").strip():
            refusal = f"--force in {env} (a strict profile) needs --reason TEXT, which the audit trail records"
        if refusal is not None:
            # Recorded as the refused run it is (the trail keeps run.blocked even before the tree is prepared).
            session.audit("run.blocked", automation=RECEIVER_NAME, command=what, codes=codes,
                          host=session.host.hostname, user=current_user(), dry_run=False)
            override = "--force --reason TEXT" if session.profile.strict else "--force"
            raise SafetyError(f"{what} will not start in {env}: {refusal}",
                              f"to override: envfence {what} {override}; the override is recorded in the audit trail")
        session.audit("run.forced", automation=RECEIVER_NAME, command=what, user=current_user(),
                      host=session.host.hostname, reason=session.redactor()(reason or ""), overridden=codes, dry_run=False)
        click.echo(f"envfence: warning: {what} forced past {', '.join(codes)}; recorded in the audit trail", err=True)
    return session


def _setup(state: State, force: bool, reason: str | None, what: str) -> Setup:
    from envfence.runner import find_automation

    from envfence_builtins.webhook_service.webhook_schemes import providers_for
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue
    from envfence_builtins.webhook_service.webhook_receiver_routes import routes

    session = _decide(state, force, reason, what)
    declared = routes(session.settings)
    if not declared:
        raise UsageError(f"no webhook routes in {session.settings.source}",
                         'declare one: [webhooks.routes."/housecallpro"] with provider, secret and automation')
    providers = providers_for(session)
    for route in declared:
        if route.provider not in providers:
            raise ConfigurationError(f"route {route.path}: no webhook provider named {route.provider!r}",
                                     f"known: {', '.join(sorted(providers))}")
    automations = {r.automation: find_automation(session, r.automation) for r in declared}
    session.prepare()
    session.configure_logging(embedded=False)
    # A shared store's queue, else the one in the environment's tree.
    queue = QueueHooks(session.plugins).open_webhook_queue(session=session).first or WebhookQueue(session.paths)
    _prune(session, queue, RETENTION_DAYS)
    return Setup(session, {r.path: r for r in declared}, queue, automations)


def _port(session) -> tuple[str, int]:
    """The receiver's address and port in this environment; a port another environment declares is refused."""
    view = session.config.environment_view()
    host = str(view.get("WEBHOOK_HOST") or "127.0.0.1")
    raw = str(view.get("WEBHOOK_PORT") or "").strip()
    env = session.environment.name
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigurationError(f"WEBHOOK_PORT is {'not set' if not raw else repr(raw)} in {env}",
                                 f"set this environment's own port: WEBHOOK_PORT=8001 in .env.{env}")
    port = int(raw)
    for finding in session.report.findings:
        if finding.code == "SERVICE_PORT_COLLISION" and (f"port {port} " in finding.message or finding.key == "WEBHOOK_PORT"):
            session.audit("run.blocked", automation=RECEIVER_NAME, command="serve", codes=[finding.code], port=port,
                          host=session.host.hostname, dry_run=False)
            raise SafetyError(f"serve will not start in {env}: {finding.message}", finding.remediation or "")
    return host, port


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _echo(line: str) -> None:
    click.echo(line, err=True)


def _reloading(live, apply, what: str, watch: bool, secrets: bool):
    """Start reloading the configuration on SIGHUP and (``watch``) on a change to its files; returns the reloader."""
    from envfence_builtins.webhook_service.webhook_receiver_reload import Parts, Reloader
    from envfence_builtins.webhook_service.webhook_receiver_routes import route_secrets, routes
    from envfence_builtins.webhook_service.webhook_schemes import providers_for

    if watch:
        import watchfiles  # noqa: F401  (missing: the CLI names the extra that brings it; --no-watch does without)
    reloader = Reloader(live, apply, what, Parts(providers_for, routes, route_secrets if secrets else None), echo=_echo)
    reloader.start(watch)
    signal.signal(signal.SIGHUP, lambda *_: reloader.request("SIGHUP"))
    return reloader


_watch_option = click.option(
    "--watch/--no-watch", default=True, show_default=True,
    help="Reload the configuration when its files change (SIGHUP reloads either way); "
         "a change that does not validate is refused and the last good one kept.")


@examples(
    "envfence serve",
    "envfence --env production serve --threads 8 --workers 2",
    "envfence --env production serve --emit systemd > envfence-webhooks.service",
)
@click.command()
@click.option("--force", is_flag=True, help="Start despite a blocking safety finding (recorded in the audit trail).")
@click.option("--reason", metavar="TEXT", help="Why; required with --force in a strict (production) profile.")
@click.option("--threads", default=16, show_default=True, type=click.IntRange(1, 64), help="Request threads.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 16),
              help="Worker threads running queued events (0: leave them to `envfence worker`).")
@click.option("--backlog-limit", default=1000, show_default=True, type=click.IntRange(1),
              help="/readyz answers 503 from this many pending events on.")
@click.option("--retry-base", default=2.0, show_default=True, type=click.FloatRange(0),
              help="Seconds before a failed event's first retry; doubles on each try.")
@click.option("--drain-timeout", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Seconds SIGTERM waits for requests in flight.")
@click.option("--request-timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds a client has to send a whole request (headers and body); an idle connection is closed "
                   "after as long.")
@click.option("--connection-limit", default=1000, show_default=True, type=click.IntRange(10, 10000),
              help="Open connections served at once; more wait to be accepted.")
@click.option("--emit", type=click.Choice(["systemd", "kubernetes"]),
              help="Print a systemd unit, or a Kubernetes Deployment and Service, for this receiver and exit.")
@click.option("--image", default="envfence-project:latest", show_default=True, help="Container image (with --emit kubernetes).")
@_watch_option
@pass_state
def serve(state: State, force, reason, threads, workers, backlog_limit, retry_base, drain_timeout, request_timeout,
          connection_limit, emit, image, watch) -> None:
    """Receive this environment's webhooks on its own port.

    \b
    Each request is verified (signature, timestamp, replay, size, content
    type), then synced to the environment's queue before the 2xx; workers run
    the route's automation through the normal runner. SIGTERM stops accepting,
    finishes what is in flight, and exits 0.
    """
    if emit:
        _emit_receiver(state, emit, image)
        return
    # Missing, the CLI names the extra that brings it (envfence.extras).
    import waitress  # noqa: F401

    from envfence_builtins.webhook_service.webhook_receiver_app import Receiver
    from envfence_builtins.webhook_service.webhook_receiver_routes import route_secrets
    from envfence_builtins.webhook_service.webhook_schemes import providers_for

    setup = _setup(state, force, reason, "serve")
    session = setup.session
    host, port = _port(session)
    receiver = Receiver(session, setup.routes, providers_for(session),
                        route_secrets(session, list(setup.routes.values())), setup.queue, backlog_limit)
    server = _listen(receiver, setup, host, port, threads=threads, request_timeout=request_timeout,
                     connection_limit=connection_limit)
    stop, done = threading.Event(), threading.Event()
    _stop_on_signals(stop)
    pool, running = _start_workers(setup, workers, retry_base, done, receiver.accepted)
    threading.Thread(target=server.run, daemon=True).start()

    def apply(live) -> None:
        receiver.swap(live)
        for each in pool:
            each.swap(live.session, live.automations)

    reloader = _reloading(slotted.evolve(receiver.live, automations=setup.automations), apply, "serve", watch, secrets=True)
    env = session.environment.name
    session.audit("serve.started", host=host, port=port, routes=sorted(setup.routes), pid=os.getpid())
    receiver.log.info(f"receiving webhooks for {env} on http://{host}:{port} ({', '.join(sorted(setup.routes))})")
    _echo(f"envfence: receiving webhooks for {env} on http://{host}:{server.effective_port} "
          f"(routes {', '.join(sorted(setup.routes))}; queue {setup.queue.where})")
    while not stop.wait(0.2):
        pass
    receiver.log.info("SIGTERM: no longer accepting; finishing what is in flight")
    reloader.close()
    _drain(server, drain_timeout)
    done.set()
    receiver.accepted.set()
    for thread in running:
        thread.join()
    for worker in pool:
        worker.close()
    receiver.access.close()
    setup.queue.close()
    receiver.session.audit("serve.stopped", port=port)
    _echo(f"envfence: receiver for {env} stopped")


def _emit_receiver(state: State, emit: str, image: str) -> None:
    """Print the receiver's systemd unit or Kubernetes manifests (``serve --emit``)."""
    from envfence_builtins.webhook_service.webhook_deploy import render
    from envfence_builtins.webhook_service.webhook_receiver_scaling import scaling_for

    session = state.session()
    _, port = _port(session)
    click.echo(render(emit, session, port, image, scaling_for(session.settings, session.environment.name)), nl=False)


def _start_workers(setup: Setup, count: int, retry_base: float, done: threading.Event, wake: threading.Event):
    """``count`` worker threads of ``serve``, started: each runs queued events until ``done``, woken early by ``wake``."""
    from envfence_builtins.webhook_service.webhook_receiver_worker import Worker

    pool = [Worker(setup.session, setup.queue, setup.automations, echo=_echo, retry_base=retry_base) for _ in range(count)]
    running = [threading.Thread(target=w.loop, args=(done, wake), daemon=True) for w in pool]
    for thread in running:
        thread.start()
    return pool, running


def _listen(receiver, setup: Setup, host: str, port: int, *, threads: int, request_timeout: float, connection_limit: int):
    """The waitress server for ``receiver``, bound to ``host:port``; a port it cannot bind closes what ``serve`` opened."""
    from waitress.server import create_server

    try:
        # A body without Content-Length (chunked) is read whole before the application sees it:
        # the server stops it at the largest route's limit instead of spooling up to a gigabyte to disk.
        # Stalled clients are cut off (idle ones by waitress's channel_timeout, slow senders by
        # _cut_slow_senders), and connections are watched with poll(), not select() and its 1024 limit.
        server = create_server(receiver, host=host, port=port, threads=threads, ident="envfence",
                               clear_untrusted_proxy_headers=True,
                               max_request_body_size=max(r.max_body for r in setup.routes.values()),
                               channel_timeout=request_timeout, cleanup_interval=min(1.0, request_timeout / 2),
                               connection_limit=connection_limit, asyncore_use_poll=True)
    except OSError as exc:
        receiver.access.close()
        setup.queue.close()
        raise EnvfenceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                            f"stop what holds port {port}, or give {setup.session.environment.name} another WEBHOOK_PORT") from None
    _cut_slow_senders(server, request_timeout)
    return server


def _cut_slow_senders(server, timeout: float) -> None:
    """Close a connection whose request (headers and body) is not whole ``timeout`` seconds after its first byte.

    waitress closes only connections idle for ``channel_timeout``: a client
    sending a byte every few seconds would hold its connection for ever, and
    enough of them fill ``connection_limit`` so a genuine delivery waits.
    """
    from waitress.channel import HTTPChannel

    class Timed(HTTPChannel):
        began: float | None = None  #: when the request being read started, or None between requests

        def received(self, data):
            if data and self.request is None and self.began is None:
                self.began = time.monotonic()
            try:
                return super().received(data)
            finally:
                if self.request is None:
                    self.began = None

    idle = server.maintenance

    def maintenance(now: float) -> None:
        idle(now)
        cutoff = time.monotonic() - timeout
        for channel in list(server.active_channels.values()):
            if getattr(channel, "began", None) is not None and channel.began < cutoff:
                channel.will_close = True  # the loop closes it on its next turn

    server.channel_class = Timed
    server.maintenance = maintenance


def _drain(server, timeout: float) -> None:
    """Close the listening socket, then wait until every received request has its answer sent."""
    from waitress.channel import HTTPChannel

    def stop_listening() -> None:
        server.accepting = False
        server.del_channel()
        server.socket.close()

    server.trigger.pull_trigger(stop_listening)
    deadline = time.monotonic() + timeout
    dispatcher = server.task_dispatcher
    while time.monotonic() < deadline:
        channels = [c for c in list(server._map.values()) if isinstance(c, HTTPChannel)]
        busy = dispatcher.queue or dispatcher.active_count or any(
            c.requests or c.total_outbufs_len or (c.request is not None and c.request.headers_finished) for c in channels
        )
        if not busy:
            break
        time.sleep(0.05)


@examples(
    "envfence --env production worker",
    "envfence worker --once                # run what is queued, then stop",
    "envfence --env production worker --emit kubernetes --image registry.example.org/acme:1.4 > workers.yaml",
)
@click.command()
@click.option("--force", is_flag=True, help="Start despite a blocking safety finding (recorded in the audit trail).")
@click.option("--reason", metavar="TEXT", help="Why; required with --force in a strict (production) profile.")
@click.option("--once", is_flag=True, help="Run the events that are due now, then exit.")
@click.option("--retry-base", default=2.0, show_default=True, type=click.FloatRange(0),
              help="Seconds before a failed event's first retry; doubles on each try.")
@_watch_option
@click.option("--emit", type=click.Choice(["systemd", "kubernetes"]),
              help="Print systemd units (a worker@ template and a target starting [scaling] workers instances), or a "
                   "Kubernetes Deployment (and HorizontalPodAutoscaler), for this environment's workers and exit.")
@click.option("--image", default="envfence-project:latest", show_default=True, help="Container image (with --emit kubernetes).")
@pass_state
def worker(state: State, force, reason, once, retry_base, watch, emit, image) -> None:
    """Run this environment's queued webhook events (beside `envfence serve --workers 0`, or to catch up).

    A change to the configuration files (or SIGHUP) is validated and swapped
    in between two events; an invalid one is refused and the last good kept.
    """
    from envfence_builtins.webhook_service.webhook_receiver_app import Live
    from envfence_builtins.webhook_service.webhook_receiver_scaling import scaling_for
    from envfence_builtins.webhook_service.webhook_receiver_worker import Worker

    if emit:
        from envfence_builtins.webhook_service.webhook_deploy import render_worker

        session = state.session()
        click.echo(render_worker(emit, session, image, scaling_for(session.settings, session.environment.name)), nl=False)
        return
    setup = _setup(state, force, reason, "worker")
    runner = Worker(setup.session, setup.queue, setup.automations, echo=_echo, retry_base=retry_base)
    reloader = None
    try:
        if once:
            runner.recover()
            while runner.run_once() is not None:
                pass
            return
        stop = threading.Event()
        _stop_on_signals(stop)
        reloader = _reloading(Live(setup.session, setup.routes, automations=setup.automations),
                              lambda live: runner.swap(live.session, live.automations), "worker", watch, secrets=False)
        runner.loop(stop)
    finally:
        if reloader is not None:
            reloader.close()
        runner.close()
        setup.queue.close()


# --- envfence queue ------------------------------------------------------------------


@click.group()
def queue() -> None:
    """Look at and manage this environment's webhook queue."""


def _queue(state: State, write: bool = False) -> tuple[Any, WebhookQueue | None]:
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue, queue_path

    session = state.session()
    if session.paths is None:
        raise UsageError("no plugin computes the environment's directories", "enable the directories plugin")
    if write:
        session.prepare()
    q = QueueHooks(session.plugins).open_webhook_queue(session=session).first  # a shared store's queue
    if q is None and (write or queue_path(session.paths).exists()):
        q = WebhookQueue(session.paths)
    if getattr(q, "close", None) is not None:  # a plugin's read-only queue may have nothing to close
        # Closed with the command, not at the process's exit: a process that runs commands in turn (click's
        # test runner, a tool calling the CLI) would otherwise keep SQLite connections that a worker's
        # checkpoint leaves reading a removed WAL ("disk I/O error").
        click.get_current_context().call_on_close(q.close)
    return session, q


def _find(state: State, ref: str, write: bool = False):
    session, q = _queue(state, write)
    found = q.find(ref) if q is not None else []
    if not found:
        raise UsageError(f"no webhook event {ref!r} in {session.environment.name}'s queue",
                         "see `envfence queue list` for event ids")
    if len(found) > 1:  # one id on two routes: acting on either would be a guess
        raise UsageError(f"{len(found)} events have the id {ref!r} in {session.environment.name}'s queue "
                         f"(routes {', '.join(e.route for e in found)})",
                         f"name one by its queue number: {', '.join(str(e.seq) for e in found)} (see `envfence queue list`)")
    return session, q, found[0]


def _when(stamp: float | None) -> str:
    import datetime as dt

    return "-" if stamp is None else dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")


@examples(
    "envfence queue list",
    "envfence --env production queue list --status dead",
)
@queue.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "succeeded", "dead", "ignored", "dropped"]),
              help="Only events in this state.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1), help="At most this many, newest first.")
@json_option
@pass_state
def list_events(state: State, status, limit) -> None:
    """List queued events, newest first."""
    session, q = _queue(state)
    events = q.list(status, limit) if q is not None else []
    counts = q.counts() if q is not None else {}
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "counts": counts, "events": [e.summary() for e in events]}))
        return
    if not events:
        click.echo(f"no webhook events in {session.environment.name}'s queue")
        return
    for e in events:
        click.echo(f"{e.seq:>6} {e.status:<9} {e.id:<38} {e.route} {e.type or '-'} -> {e.automation} "
                   f"tries {e.attempt}/{e.max_attempts} {_when(e.received_at)}"
                   + (f"  {e.last_error}" if e.last_error and e.status != "succeeded" else ""))



@examples(
    "envfence --env production queue show evt_2Ab3",
)
@queue.command("show")
@click.argument("ref")
@json_option
@pass_state
def show(state: State, ref) -> None:
    """Show one event (by event id or queue number): its state, headers and payload."""
    import json

    session, _, event = _find(state, ref)
    redact = session.redactor()
    # A sender may echo a credential of this environment in a header or the payload: both are shown redacted.
    headers = {k: redact(v) for k, v in event.headers.items()}
    data = {**event.summary(), "headers": headers, "payload": redact(event.body.decode("utf-8", "replace"))}
    if state.json:
        data["payload"] = _json_or_text(data["payload"])
        click.echo(dumps(data))
        return
    for key, value in event.summary().items():
        shown = _when(value) if key.endswith("_at") and value is not None else value
        click.echo(f"{key}: {shown}")
    click.echo("headers:\n" + "\n".join(f"  {k}: {v}" for k, v in sorted(headers.items())))
    payload = _json_or_text(data["payload"])
    click.echo("payload:\n" + (json.dumps(payload, indent=2) if not isinstance(payload, str) else payload))


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


@examples(
    "envfence --env production queue retry evt_2Ab3",
)
@queue.command("retry")
@click.argument("ref")
@json_option
@pass_state
def retry(state: State, ref) -> None:
    """Give a dead or dropped event fresh tries."""
    _change(state, ref, "retry")


@examples(
    "envfence --env production queue drop evt_2Ab3",
)
@queue.command("drop")
@click.argument("ref")
@json_option
@pass_state
def drop(state: State, ref) -> None:
    """Give up on a pending or dead event (its id stays known, so a replay is still refused)."""
    _change(state, ref, "drop")


#: What ``queue retry`` and ``queue drop`` do: the status they leave, which events they take, the audit event.
_CHANGES = {
    "retry": ("pending", "a dead or dropped event is retried", "webhook.retried"),
    "drop": ("dropped", "a pending or dead event is dropped", "webhook.dropped"),
}


@examples(
    "envfence --env production queue prune --older-than 30",
)
@queue.command("prune")
@click.option("--older-than", "days", default=RETENTION_DAYS, show_default=True, type=click.FloatRange(0),
              help="Days since an event finished.")
@json_option
@pass_state
def prune(state: State, days: float) -> None:
    """Drop the payload and headers of events finished long ago; their ids stay, so replays are still refused.

    serve and worker do this at start for events finished over 30 days ago.
    """
    session, q = _queue(state, write=True)
    pruned = _prune(session, q, days)
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "pruned": pruned, "older_than_days": days}))
    else:
        click.echo(f"pruned {pruned} finished event(s) of {session.environment.name}'s queue (ids kept)")


def _prune(session, q, days: float) -> int:
    """Prune ``q`` (a shared store's queue may not prune: 0), audited when anything went."""
    if not hasattr(q, "prune"):
        return 0
    pruned = q.prune(time.time() - days * 86400)
    if pruned:
        session.audit("webhook.pruned", events=pruned, older_than_days=days)
    return pruned


def _change(state: State, ref: str, change: str) -> None:
    status, rule, audited = _CHANGES[change]
    session, q, event = _find(state, ref, write=True)
    if not getattr(q, change)(event.seq):
        _refuse(state, f"event {event.id} is {event.status}; only {rule}")
    session.audit(audited, event_id=event.id, route=event.route, was=event.status)
    if state.json:
        click.echo(dumps({"id": event.id, "seq": event.seq, "status": status}))
    else:
        click.echo(f"event {event.id} is {status} now")


def _refuse(state: State, message: str) -> None:
    if state.json:
        click.echo(dumps({"error": message}))
    else:
        click.echo(f"envfence: error: {message}", err=True)
    click.get_current_context().exit(EXIT_FINDINGS)
