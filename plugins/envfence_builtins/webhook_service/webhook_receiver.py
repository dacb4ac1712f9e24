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

This module is the plugin's hooks: it declares the routes' secrets, reports
invalid routes in ``envfence check``, offers ``open_webhook_queue``
(:mod:`.queue_hooks`) and adds ``envfence serve``, ``envfence worker``,
``envfence queue`` (:mod:`.webhook_receiver_cli`) and ``envfence webhooks
verify`` (:mod:`.webhook_receiver_verify`). Its other modules import none of
it: the routes are :mod:`.webhook_receiver_routes`, the WSGI application
:mod:`.webhook_receiver_app`, the workers :mod:`.webhook_receiver_worker`.
Providers come through the ``register_webhook_providers`` hook
(:mod:`.provider_hooks`), never from the ``webhook_providers`` plugin's
module. The server itself (waitress) is imported only by
``serve``. An event id is accepted once per environment, whatever the route.
``/readyz`` gives its detail (routes, configuration error codes, backlog) to
callers on this host only; others get the status alone.

A running receiver reads its routes, secrets and session from one
:class:`~.webhook_receiver_app.Live` value, which a reload (:mod:`.webhook_receiver_reload`)
replaces whole: a request sees the old configuration or the new one, never
half of each. After a secret is rotated, the previous one is still accepted
for the route's ``secret_overlap`` seconds (default one hour), so senders
can switch without losing deliveries.
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding, SettingSpec

from envfence_builtins.webhook_service.webhook_receiver_routes import SECTION, TABLE, routes


@hookimpl
def declare_tables():
    """The receiver's ``[webhooks.routes]`` (:mod:`.webhook_receiver_routes`) and its ``[scaling]`` (:mod:`.webhook_receiver_scaling`)."""
    from envfence_builtins.webhook_service.webhook_receiver_scaling import TABLE as SCALING

    return [TABLE, SCALING]


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


def _scaling_findings(settings) -> list[Finding]:
    if "scaling" not in settings.raw:
        return []
    from envfence_builtins.webhook_service.webhook_receiver_scaling import problems

    return [Finding("SCALING_INVALID", "error", exc.message, exc.hint, key="scaling", plugin="webhook_receiver")
            for exc in problems(settings)]


@hookimpl
def validate(session) -> list[Finding]:
    """A route naming an unknown provider, providers or a ``[scaling]`` table that cannot be used.

    A route whose values its declaration refuses is ``check``'s own ``SETTINGS_INVALID``, said once.
    """
    scaled = _scaling_findings(session.settings)
    try:
        declared = routes(session.settings)
    except ConfigurationError:
        return scaled
    if not declared:
        return scaled
    try:
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
        from envfence_builtins.webhook_service.webhook_receiver_worker import note_start

        note_start(request.event, run_id)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence serve``, ``envfence worker``, ``envfence queue`` and ``envfence webhooks verify``."""
    from envfence_builtins.webhook_service.webhook_receiver_cli import queue, serve, worker
    from envfence_builtins.webhook_service.webhook_receiver_verify import webhooks

    for command in (serve, worker, queue, webhooks):
        cli.add_command(command)


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``open_webhook_queue``: a shared store keeps the queue every receiver and worker uses."""
    from envfence_builtins.webhook_service.queue_hooks import QueueHookspecs

    register(QueueHookspecs)


@hookimpl(optionalhook=True)  # declared by the backup plugin; absent without it
def backup_files(session) -> list | None:
    """The queue: accepted events still to run, and the ids a replay is refused by (the ``backup`` plugin's hook)."""
    from .webhook_queue import backup_files as queue_files

    return None if session.paths is None else queue_files(session.paths)
