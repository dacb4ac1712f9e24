"""Alerts: a threshold crossed becomes one alert per incident, escalated per environment, retried until delivered.

After each run (and on ``envfence health --alert``) the automation's
``[thresholds]`` are evaluated. A check that crosses opens an incident and
sends one alert; while it stays crossed nothing more is sent; when it clears
a recovery notice goes out. Incidents and undelivered alerts persist in
``<tree>/state/alerts.json``, so this holds across processes, and an alert
that could not be delivered is retried on the next run (or by ``envfence
alerts retry``). Settings::

    [alerts.escalation]
    development = ["console"]
    production = ["email", "webhook", "slack"]

    [alerts.email]                 # password: the SMTP_PASSWORD credential (PROD_SMTP_PASSWORD...)
    host = "smtp.example.org"
    port = 587                     # the default for tls = "starttls"; 465 for "tls", 25 for "none"
    tls = "starttls"               # or "tls"; "none" only without a username (or allow_plaintext_auth = true)
    ca_file = "certs/ops-ca.pem"   # optional: a private CA instead of the system's
    username = "envfence"
    from = "envfence@example.org"
    to = ["ops@example.org"]

    [alerts.webhook]               # signed with Standard Webhooks; secret: ALERT_WEBHOOK_SECRET (whsec_...)
    url = "https://ops.example.org/hooks/envfence"

Built-in channels are ``console``, ``email`` and ``webhook``; any other name
is delivered by plugins implementing the ``alert`` hook (envfence-slack: ``slack``).

This module holds the plugin's hooks; the work is
:mod:`~envfence_builtins.operations.alerts_delivery`, the commands ``alerts_cli``.
"""

from __future__ import annotations

import sys

from envfence import hookimpl
from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import Finding, SettingSpec

from envfence_builtins.operations.alerts_settings import PASSWORD, SECTION, SECURITY_EVENTS, WEBHOOK_SECRET

# The delivery (channels, state, the [alerts] table) is imported by the hooks that deliver: every session hands
# this plugin its audit events and asks what it declares, and most have no security event to send.


@hookimpl
def declare_tables():
    """The ``[alerts]`` table."""
    from envfence_builtins.operations.alerts_delivery import TABLE

    return [TABLE]


@hookimpl
def declare_settings() -> list[SettingSpec]:
    """The SMTP password and the webhook signing secret: credentials, read through the environment's prefix."""
    return [
        SettingSpec(PASSWORD, doc="password for [alerts.email] username", secret=True, credential=True, plugin=SECTION),
        SettingSpec(WEBHOOK_SECRET, doc="Standard Webhooks secret (whsec_...) that signs alert webhooks", secret=True,
                    credential=True, plugin=SECTION),
    ]


@hookimpl
def on_run_start(session, request, run_id) -> None:
    """The start ping of a dead-man monitor (the ``ping`` channel)."""
    from envfence_builtins.operations.alerts_delivery import run_ping, send_security, take_held

    held = take_held(session)
    if held and not session.dry_run:  # a forced run decided before its tree existed
        send_security(session, held)
    if not session.dry_run and not request.automation.adhoc:
        run_ping(session, request.automation.name, "start", run_id)


@hookimpl
def on_run_finish(session, request, outcome) -> None:
    """Ping the run's end; evaluate the automation's thresholds with this run, and alert once per incident; retry what is pending."""
    from envfence.thresholds import evaluate, limits
    from envfence_builtins.operations.alerts_delivery import HISTORY_LIMIT, dispatch, held_state, incidents_from, load_state, run_ping

    if session.dry_run or session.paths is None or outcome.status not in ("succeeded", "failed"):
        return
    if not request.automation.adhoc:
        run_ping(session, outcome.automation, "success" if outcome.status == "succeeded" else "failure", outcome.run_id,
                  outcome.exit_code)
    limit = limits(session.settings, outcome.automation, session.environment.name)
    # Only an error rate and a metric bound look past this run (a missed run is health's to notice, below):
    # without them this run is all the thresholds read, and the history is not opened for it.
    looks_back = limit.max_error_rate is not None or bool(limit.metric_bounds)
    runs = (session.plugins.run_history(session=session, automation=outcome.automation, limit=HISTORY_LIMIT).first or []
            if looks_back else [])
    # The history plugin may finish this run's row (recorded as running at its start) after this hook.
    runs = [outcome, *(r for r in runs if r.run_id != outcome.run_id)]
    # Missed runs are noticed by `envfence health --alert`: a run that happens is no missed run.
    crossings = [c for c in evaluate(session, request.automation, runs) if c.check != "expected_every"]
    try:
        with held_state(session):
            alerts = incidents_from(session, crossings)
            if alerts or load_state(session)["pending"]:
                dispatch(session, alerts)
    except EnvfenceError as exc:  # the alert state cannot be kept: say so, but the run's result stands
        print(f"envfence: warning: alerts: {exc.message} ({exc.hint})", file=sys.stderr)


@hookimpl(trylast=True)  # after the trail has the event: the alert's own record follows it
def audit_event(session, event) -> None:
    """Send a security event to the environment's alert channels, once: at once where the tree exists, else when the run starts."""
    if event.event not in SECURITY_EVENTS:
        return
    from envfence_builtins.operations.alerts_delivery import SECURITY_HELD, security_alert, send_security, take_held

    try:
        alert = security_alert(session, event)
    except Exception:  # deciding must never stop the event from being recorded
        return
    if alert is None or session.dry_run:
        return
    if session.paths is None or not session.paths.base.is_dir():
        session.stash.setdefault(SECURITY_HELD, []).append(alert)
        return
    send_security(session, [*take_held(session), alert])


@hookimpl
def validate(session) -> list[Finding]:
    """``[alerts.escalation]`` names declared environments."""
    if not session.settings.section(SECTION):
        return []
    from envfence_builtins.operations.alerts_delivery import channels_for

    try:
        for env in session.settings.environments:
            channels_for(session.settings, env)
    except ConfigurationError as exc:
        return [Finding("ALERTS_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    return []


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence alerts`` (show, retry)."""
    from envfence_builtins.operations.alerts_cli import alerts

    cli.add_command(alerts)


@hookimpl(optionalhook=True)
def health_alerts(session, checks) -> dict[str, list]:
    """``envfence health --alert``: the checks as incidents, sent through the environment's channels (the ``health`` plugin's hook).

    The alert state is held from reading the open incidents to saving them:
    two hosts seeing the same crossing send one alert.
    """
    from envfence_builtins.operations.alerts_delivery import alerts_from_checks, dispatch, held_state

    with held_state(session):
        return dispatch(session, alerts_from_checks(session, checks))


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``alert`` (a plugin's own channel) and ``hold_state`` (the alerts' state where every host sees it)."""
    from envfence_builtins.operations.alert_hooks import AlertHookspecs

    register(AlertHookspecs)


@hookimpl(optionalhook=True)  # declared by the advise plugin; absent without it
def advice(session, now) -> list:
    """Environments based on production that alert on the console only: nobody is told (``NO_ALERT_CHANNELS``)."""
    from envfence_builtins.operations.advice_hooks import Advice
    from envfence_builtins.operations.alerts_delivery import channels_for

    found = []
    for env, spec in session.settings.environments.items():
        if spec.based_on != "production":
            continue
        try:
            channels = channels_for(session.settings, env)
        except ConfigurationError:
            continue  # check reports it
        if set(channels) <= {"console"}:
            found.append(Advice("NO_ALERT_CHANNELS", env, None,
                                f"{env} alerts on the console only: an incident at night reaches nobody",
                                f'add [alerts.escalation] {env} = ["email", "ping"] with [alerts.email] and [alerts.ping]',
                                {"channels": list(channels)}))
    return found
