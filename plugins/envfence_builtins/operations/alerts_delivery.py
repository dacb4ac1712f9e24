"""The ``alerts`` plugin's work: which channels an environment escalates to, the incidents and their state, and delivery.

Incidents come from thresholds crossed, failed runs, health checks and
security events; each is delivered once per channel (console, email, a
signed webhook, the ping, and any plugin's through the ``alert`` hook), and
what could not be delivered is kept in ``<tree>/state/alerts.json`` (or
where a shared store holds it, ``hold_state``) and retried. The hooks are in
:mod:`envfence_builtins.operations.alerts`, the commands in ``alerts_cli``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from typing import Any, Iterable, Iterator

from envfence import slotted
from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import Alert
from envfence.stash import StashKey

from envfence_builtins.operations.alert_hooks import AlertHooks
from envfence_builtins.operations.alerts_settings import PASSWORD, SECTION, SECURITY_EVENTS, WEBHOOK_SECRET


BUILTIN = ("console", "email", "webhook", "ping")
HISTORY_LIMIT = 200


#: A failed run is reported by the run itself (and ``on_error``); it becomes an incident on its own only
#: where ``alert_on_failure`` holds (by default in environments based on production), else through ``max_error_rate``.
FAILED = "failed"


class DeliveryError(Exception):
    """A channel could not deliver; the message says which and why, never a secret."""


def _alerts_table():
    from envfence.settings_kinds import either, flag, number, text, texts, whole
    from envfence.settings_tables import Table

    from envfence_builtins.operations.alerts_ping import STYLES

    # Extra keys: a channel that another plugin offers through the alert hook may keep its table here.
    table = Table(SECTION, "where alerts go, per environment, and how each channel delivers", extra=True)
    table.add_table("escalation", "the channels each environment's alerts go to (default: the console)").add_free(
        texts(example="email"), "the channels, in order, e.g. [\"console\", \"email\"]")
    email = table.add_table("email", "the email channel (SMTP)")
    email.add("host", text(example="smtp.example.org"), None, "the SMTP server")
    email.add("port", either(whole(minimum=1, maximum=65535, example=587), text(pattern=r"[0-9]+", example="587")), None, "its port (default: the one that goes with tls)")
    email.add("tls", text(choices=tuple(TLS_MODES)), "starttls", "starttls, tls (implicit) or none")
    email.add("starttls", flag(), None, "the older spelling: starttls = false means tls = \"none\"")
    email.add("username", text(example="alerts"), None, "the SMTP login (its password is the SMTP_PASSWORD credential)")
    email.add("allow_plaintext_auth", flag(), False, "allow a login over tls = \"none\" (a relay on this host)")
    email.add("ca_file", text(example="certs/ca.pem"), None, "the authorities to trust, relative to the project")
    email.add("from", text(example="envfence@example.org"), None, "the sender (default envfence@<host>)")
    email.add("to", either(texts(example="ops@example.org"), text(example="ops@example.org")), None, "the recipients")
    email.add("timeout", number(minimum=0, exclusive=True, example=10), 10, "seconds to wait for the server")
    hook = table.add_table("webhook", "the webhook channel (an HTTP POST)")
    hook.add("url", text(example="https://hooks.example.org/alerts"), None, "where alerts are posted")
    hook.add("timeout", number(minimum=0, exclusive=True, example=10), 10, "seconds to wait for the server")
    ping = table.add_table("ping", "the dead man's switch channel (healthchecks.io, Cronitor)")
    ping.add("url", text(example="https://hc-ping.com/KEY/{automation}-{environment}"), None,
             "the URL to ping ({automation} and {environment} are filled in)")
    ping.add("style", text(choices=STYLES), "healthchecks", "how start, success and failure are told")
    ping.add("timeout", number(minimum=0, exclusive=True, example=10), 10, "seconds to wait for the server")
    return table


def channels_for(settings, environment: str) -> tuple[str, ...]:
    """The channels ``environment`` escalates to (``[alerts.escalation]``; the console when not said)."""
    where = f"{settings.source}: {SECTION}.escalation"
    for key, value in TABLE.read(settings).sub("escalation").free().items():
        if settings.resolve(key) is None:
            raise ConfigurationError(f"{where}.{key}: {key!r} is no declared environment", f"use one of: {', '.join(settings.environments)}")
        if settings.resolve(key) == environment:
            return tuple(value)
    return ("console",)


def state_file(paths):
    """``<tree>/state/alerts.json``: open incidents and alerts still to deliver."""
    from envfence_builtins.operations.state_files import state_dir

    return state_dir(paths) / "alerts.json"


def load_state(session) -> dict[str, Any]:
    """The persisted alert state (``incidents``, ``pending``); a file of another shape is an error naming it.

    A damaged file is never treated as empty: rewriting it would lose the
    alerts still to deliver, so it stays for the user to look at.
    """
    from envfence_builtins.operations.state_files import read_json

    data, where = session.stash.get(SHARED_STATE, None), "the alert state of the shared store"
    if data is None:
        shared = AlertHooks(session.plugins).hold_state(session=session, name=SECTION, write=False).first
        if shared is not None:  # a shared store keeps it for every host
            with shared as data:
                data = dict(data)
    if data is None:
        where = state_file(session.paths)
        data = read_json(where, {})
    incidents, pending = (data.get("incidents", {}), data.get("pending", [])) if isinstance(data, dict) else (None, None)
    shaped = isinstance(incidents, dict) and all(isinstance(v, dict) for v in incidents.values()) and isinstance(pending, list)
    try:
        for item in pending if shaped else ():
            _alert_from(item["alert"])
            shaped = shaped and isinstance(item["channels"], list)
    except (KeyError, TypeError, ValueError):
        shaped = False
    if not shaped:
        raise EnvfenceError(f"{where} is damaged (not the incidents and pending alerts envfence keeps)",
                            f"move it aside (mv {where} {where}.damaged); envfence starts a new one")
    return {"incidents": dict(incidents), "pending": list(pending)}


def _save(session, state: dict[str, Any]) -> None:
    from envfence_builtins.operations.state_files import write_json

    if SHARED_STATE in session.stash:
        session.stash[SHARED_STATE].clear()
        session.stash[SHARED_STATE].update(state)
        return
    write_json(session.paths, state_file(session.paths), state)


#: The state a shared store holds for the session's read-modify-write (see ``hold_state``).
SHARED_STATE = StashKey[dict]()
#: Set while this session holds the lock of the alert state file.
_FILE_HELD = StashKey[bool]()


@contextlib.contextmanager
def held_state(session) -> Iterator[None]:
    """Hold the alert state from reading the open incidents to saving them, across hosts when a store keeps it.

    Two hosts crossing the same threshold then open one incident and send one alert.
    """
    if SHARED_STATE in session.stash or _FILE_HELD in session.stash:  # held already, further up
        yield
        return
    shared = AlertHooks(session.plugins).hold_state(session=session, name=SECTION, write=True).first
    if shared is None:  # the state is a file of the tree: a lock file makes this host's processes take turns
        import fcntl

        from envfence import files

        with files.open_lock(session.paths, "alerts.state") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            session.stash[_FILE_HELD] = True
            try:
                yield
            finally:
                del session.stash[_FILE_HELD]
        return
    with shared as data:
        session.stash[SHARED_STATE] = data
        try:
            yield
        finally:
            del session.stash[SHARED_STATE]


def _alert_data(alert: Alert) -> dict[str, Any]:
    return {**slotted.asdict(alert), "at": alert.at.isoformat()}


def _alert_from(data: dict[str, Any]) -> Alert:
    import datetime as _dt

    return Alert(**{**data, "at": _dt.datetime.fromisoformat(data["at"])})


def incidents_from(session, crossings: Iterable[Any]) -> list[Alert]:
    """Alerts for thresholds that were crossed, or cleared, against the open incidents (one per incident)."""
    redact = session.redactor()
    env = session.environment.name
    open_ = load_state(session)["incidents"]
    alerts = []
    for c in crossings:
        if c.check == FAILED and not _failure_alerts(session, c.automation):
            continue
        incident = f"{c.automation}:{c.check}"
        if c.crossed and incident not in open_:
            alerts.append(Alert(env, c.automation, c.check, redact(c.message), "firing", c.severity, c.run_id, c.value, c.limit, incident))
        elif not c.crossed and incident in open_:
            alerts.append(Alert(env, c.automation, c.check, redact(f"recovered: {c.message}"), "recovered", c.severity, c.run_id,
                                c.value, c.limit, incident))
    return alerts


def _failure_alerts(session, automation: str) -> bool:
    from envfence.thresholds import limits

    return limits(session.settings, automation, session.environment.name).alert_on_failure


def alerts_from_checks(session, checks) -> list[Alert]:
    """Alerts for ``envfence health``'s checks of an automation (thresholds, missed runs, locks)."""
    from envfence.thresholds import Crossing

    crossings = [
        Crossing(c.automation, c.check, c.state != "OK", c.message, c.severity or "critical", c.value, c.limit, c.run_id)
        for c in checks if c.automation and c.check and c.state != "UNKNOWN"
    ]
    return incidents_from(session, crossings)


def dispatch(session, alerts: list[Alert]) -> dict[str, list]:
    """Retry what is pending, then send ``alerts`` through the environment's channels.

    Incidents open and close as the alerts say, whether or not delivery
    worked: an alert that could not be delivered waits in ``pending`` for
    the next try. :returns: ``sent`` (alert, channel) and ``pending`` lists.
    """
    with held_state(session):
        return _dispatch(session, alerts)


def _dispatch(session, alerts: list[Alert]) -> dict[str, list]:
    state = load_state(session)
    channels = channels_for(session.settings, session.environment.name)
    queue = [(p["alert"], p["channels"], p.get("attempts", 0), p.get("message_id")) for p in state["pending"]]
    for alert in alerts:
        if alert.check.startswith(SECURITY) and alert.check != TAMPER:  # an event, not an incident: sent once
            queue.append((_alert_data(alert), list(channels), 0, f"msg_{uuid.uuid4().hex}"))
            continue
        if (alert.incident in state["incidents"]) == (alert.state == "firing"):
            continue  # another process opened (or closed) this incident since it was decided: it alerted already
        data = _alert_data(alert)
        queue.append((data, list(channels), 0, f"msg_{uuid.uuid4().hex}"))
        if alert.state == "firing":
            state["incidents"][alert.incident] = {"since": data["at"], "run_id": alert.run_id, "message": alert.message}
        else:
            state["incidents"].pop(alert.incident, None)
    sent, pending = [], []
    for data, wanted, attempts, message_id in queue:
        alert = _alert_from(data)
        failed, errors = [], []
        for channel in wanted:
            try:
                deliver(session, alert, channel, message_id)
                sent.append({"incident": alert.incident, "state": alert.state, "channel": channel})
            except DeliveryError as exc:
                failed.append(channel)
                errors.append(session.redactor()(str(exc)))
            except Exception as exc:  # any other failure is one too: the state below must still be saved, or what
                failed.append(channel)  # was delivered would be sent again and what was not would be lost
                errors.append(session.redactor()(f"{channel}: {type(exc).__name__}: {exc}"))
        if failed:
            pending.append({"alert": data, "channels": failed, "attempts": attempts + 1, "message_id": message_id,
                            "last_error": "; ".join(errors)})
            print(f"envfence: warning: alert {alert.incident} not delivered ({'; '.join(errors)}); kept and retried on the next run",
                  file=sys.stderr)
    state["pending"] = pending
    _save(session, state)
    if sent or pending:
        session.audit("alerts.dispatched", sent=sent, pending=[{"incident": p["alert"]["incident"], "channels": p["channels"]} for p in pending])
    return {"sent": sent, "pending": pending}


def deliver(session, alert: Alert, channel: str, message_id: str) -> None:
    """Deliver ``alert`` through ``channel``, or raise :class:`DeliveryError`."""
    if channel == "console":
        if alert.check == FAILED:
            return  # the failed run says so on stderr itself, with its error id: once is enough on a console
        mark = "ALERT" if alert.state == "firing" else "RECOVERED"
        print(f"envfence: {mark} [{alert.severity}] {alert.environment} {alert.automation} {alert.check}: {alert.message}"
              + (f" (run {alert.run_id})" if alert.run_id else ""), file=sys.stderr)
    elif channel == "email":
        send_email(session, alert)
    elif channel == "webhook":
        send_webhook(session, alert, message_id)
    elif channel == "ping":
        _ping_alert(session, alert)
    else:
        delivered = AlertHooks(session.plugins).alert(session=session, alert=alert, channels=(channel,))
        results, errors = delivered.values, delivered.errors
        if errors:
            raise DeliveryError(f"{channel}: {errors[0]}")
        if not any(channel in (r or []) for r in results):
            raise DeliveryError(f"no plugin delivers the {channel!r} channel (install one, or change [alerts.escalation])")


def _ping_alert(session, alert: Alert) -> None:
    """A firing alert is a failure ping (the monitor shows it at once); a recovery waits for the next good run."""
    from envfence_builtins.operations.alerts_ping import PingError, ping

    if alert.state != "firing":
        return
    try:
        ping(session, alert.automation, "failure", alert.run_id or alert.incident, body=alert.message)
    except PingError as exc:
        raise DeliveryError(str(exc)) from None


def run_ping(session, automation: str, state: str, run_id: str, exit_code: int | None = None) -> None:
    """Ping a run's start or end where ``ping`` is one of the environment's channels; a failed ping never fails the run."""
    from envfence_builtins.operations.alerts_ping import CHANNEL, PingError, ping

    try:
        if CHANNEL not in channels_for(session.settings, session.environment.name):
            return
        ping(session, automation, state, run_id, exit_code)
    except (PingError, ConfigurationError) as exc:
        print(f"envfence: warning: {getattr(exc, 'message', exc)}; the run goes on", file=sys.stderr)


def _subject(alert: Alert) -> str:
    mark = alert.severity.upper() if alert.state == "firing" else "RECOVERED"
    # One line whatever an automation is called: a line break would start a header of its own.
    return re.sub(r"[\x00-\x1f\x7f]+", " ", f"[envfence] {mark} {alert.environment}: {alert.automation} {alert.check}")


#: How the SMTP connection is secured: STARTTLS on a plain connection, TLS from the start (port 465), or not at all.
TLS_MODES = {"starttls": 587, "tls": 465, "none": 25}
#: ``[alerts]``, declared once for ``check``, the schema and the docs (the channels read theirs when they deliver).
TABLE = _alerts_table()


def _smtp_settings(session, table) -> tuple[str, int, str]:
    """``host``, ``port`` and ``tls`` of ``[alerts.email]``; a bad one is a :class:`DeliveryError` naming it.

    ``tls`` defaults to ``"starttls"`` (the older ``starttls = false`` means
    ``"none"``), and the port to the one that goes with it.
    """
    where = f"[{SECTION}.email] in {session.settings.source}"
    if not table.get("host") or not table.get("to"):
        raise DeliveryError(f"email: {where} needs host and to")
    legacy = table.get("starttls")
    mode = table.get("tls", "none" if legacy is False else "starttls")
    if mode not in TLS_MODES:
        raise DeliveryError(f"email: {where}: tls is {mode!r}; write tls = \"starttls\", \"tls\" or \"none\"")
    port = table.get("port", TLS_MODES[mode])
    if isinstance(port, bool) or not str(port).isdigit():
        raise DeliveryError(f"email: {where}: port is {port!r}, not a port number (e.g. 587)")
    if mode == "none" and table.get("username") and table.get("allow_plaintext_auth") is not True:
        # The password would cross the network readable by anyone on the way: refused before connecting.
        raise DeliveryError(f"email: {where}: tls = \"none\" with a username would send the password in plain text; "
                            "use tls = \"starttls\" or \"tls\" (or allow_plaintext_auth = true for a relay on this host)")
    return str(table["host"]), int(port), mode


def _tls_context(session, table):
    """A client context that verifies the server's certificate and host name, as a mail client does.

    ``ca_file`` (relative to the project) replaces the system's authorities, for a private CA.
    """
    import ssl

    ca_file = table.get("ca_file")
    if ca_file is None:
        return ssl.create_default_context()
    path = session.root.path / str(ca_file)
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"email: [{SECTION}.email] ca_file {str(path)!r} cannot be read as PEM certificates "
                            f"({type(exc).__name__}: {exc})") from None


def _email_message(session, table, alert: Alert):
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = _subject(alert)
    message["From"] = table.get("from", f"envfence@{session.host.hostname}")
    message["To"] = ", ".join(table["to"]) if isinstance(table["to"], list) else str(table["to"])
    incident = re.sub(r"[^A-Za-z0-9_.-]+", "-", alert.incident.replace(":", "."))  # any name makes a valid id
    message["Message-ID"] = f"<{incident}.{alert.state}.{int(alert.at.timestamp())}@envfence>"
    message.set_content(
        f"{alert.message}\n\nenvironment: {alert.environment}\nautomation: {alert.automation}\ncheck: {alert.check}\n"
        f"state: {alert.state}\nvalue: {alert.value}\nlimit: {alert.limit}\nrun: {alert.run_id or '-'}\nat: {alert.at.isoformat()}\n"
    )
    return message


def send_email(session, alert: Alert) -> None:
    """Send ``alert`` by SMTP, as ``[alerts.email]`` says: TLS verified, the password sent only over it."""
    import smtplib
    import ssl

    from envfence.models import reveal

    table = session.settings.section(SECTION).get("email", {})
    host, port, mode = _smtp_settings(session, table)
    message = _email_message(session, table, alert)
    context = _tls_context(session, table) if mode != "none" else None
    timeout = float(table.get("timeout", 10))
    try:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) if mode == "tls" else smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if mode == "starttls":
                smtp.starttls(context=context)  # raises when the server offers no STARTTLS: never falls back to plain
            if table.get("username"):
                password = session.credential(PASSWORD, by=SECTION)
                smtp.login(str(table["username"]), str(reveal(password)) if password is not None else "")
            smtp.send_message(message)
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(f"email: {host}:{port} presented a certificate that cannot be trusted ({exc.verify_message}); "
                            f"nothing was sent. For a private CA set ca_file in [{SECTION}.email]") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"email: cannot deliver through {host}:{port} ({type(exc).__name__}: {exc})") from None


def webhook_body(alert: Alert) -> bytes:
    """The JSON the webhook channel posts."""
    import json

    data = _alert_data(alert)
    return json.dumps({"type": f"envfence.alert.{alert.state}", "timestamp": data["at"], "data": data},
                      separators=(",", ":"), default=str).encode("utf-8")


def _no_redirects():
    """An opener that follows no redirect: a 3xx is a failed delivery, kept and retried.

    Following one would send the signed alert (or a GET with its headers) to a
    host nobody configured, and count the alert as delivered.
    """
    import urllib.request

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None  # urllib then raises HTTPError with the 3xx

    return urllib.request.build_opener(Refuse)


def send_webhook(session, alert: Alert, message_id: str) -> None:
    """POST ``alert`` as JSON signed with Standard Webhooks (the same ``webhook-id`` on every retry)."""
    import time
    import urllib.error
    import urllib.parse
    import urllib.request

    from envfence.models import reveal

    from envfence_builtins.webhook_service.webhook_signatures import SignatureError, sign_standard

    table = session.settings.section(SECTION).get("webhook", {})
    url = table.get("url")
    if not url:
        raise DeliveryError(f"webhook: [{SECTION}.webhook] needs a url in {session.settings.source}")
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:  # urllib would "deliver" to a file:// URL
        raise DeliveryError(f"webhook: [{SECTION}.webhook] url in {session.settings.source} is not an http(s) URL "
                            f"(it starts {_shown_url(url)})")
    secret = session.credential(WEBHOOK_SECRET, by=SECTION)
    if secret is None:
        raise DeliveryError(f"webhook: no {WEBHOOK_SECRET} credential in {session.environment.name} to sign with")
    body, stamp = webhook_body(alert), int(time.time())
    try:
        signature = sign_standard(str(reveal(secret)), message_id, stamp, body)
    except SignatureError as exc:
        raise DeliveryError(f"webhook: {session.config.credential_key(WEBHOOK_SECRET)}: {exc}") from None
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": message_id, "webhook-timestamp": str(stamp), "webhook-signature": signature,
    })
    try:
        with _no_redirects().open(request, timeout=float(table.get("timeout", 10))):
            pass
    except urllib.error.HTTPError as exc:
        to = _shown_url(exc.headers.get("Location") or "")
        moved = f" (a redirect to {to}, never followed: set the final URL)" if 300 <= exc.code < 400 else ""
        raise DeliveryError(f"webhook: {_shown_url(url)} answered HTTP {exc.code}{moved}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DeliveryError(f"webhook: cannot reach {_shown_url(url)} ({getattr(exc, 'reason', exc)})") from None


def _shown_url(url: str) -> str:
    """``scheme://host[:port]/…`` of ``url``: a webhook URL may carry its token in the user part, the path or the query."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(str(url))
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that cannot be read)"
    shown = f"{parts.scheme or '?'}://{host}{port}" + ("/…" if parts.path.strip("/") or parts.query else "")
    return repr(shown)[1:-1]  # a control character a server put in Location shows escaped


#: The ``check`` of a security event's alert: ``security:run.forced``.
SECURITY = "security:"
#: A broken trail is an incident: found again by the next ``audit verify``, it is not sent again.
TAMPER = SECURITY + "audit.broken"
#: Security events not yet sent because the session had no tree to keep the alert state in.
SECURITY_HELD = StashKey[list]()


def security_alert(session, event) -> Alert | None:
    """The alert a security event raises, or None: a forced production run, a run past a disabled guard, a reveal,
    a broken audit trail, a restore, a failed deployment, a configuration change a running receiver or worker refused."""
    name = event.event
    if name not in SECURITY_EVENTS:
        return None
    data, env = event.data, session.environment.name
    if name == "run.forced":
        overridden = list(data.get("overridden", []))
        if data.get("dry_run") or not (session.profile.strict or "GUARD_DISABLED" in overridden):
            return None
        what = f"{data.get('automation')} was forced to run in {env} past {', '.join(overridden)}"
        who = f"by {data.get('user')} on {data.get('host')}" + (f", reason {data.get('reason')!r}" if data.get("reason") else "")
        message, automation = f"{what} {who}", str(data.get("automation", ""))
    elif name == "secret.revealed":
        message, automation = f"{', '.join(data.get('keys', []))} revealed in {env} by `envfence {data.get('by')}`", ""
    elif name == "audit.broken":
        message, automation = f"the {env} audit trail is broken: {data.get('reason')} ({data.get('trail')})", ""
    elif name == "backup.restored":
        message, automation = f"{env} restored from {data.get('archive')} ({data.get('files')} file(s))", ""
    elif name == "deploy.failed":
        back = f"configuration rolled back to deployment {data['rolled_back_to']}" if data.get("rolled_back_to") else "nothing to roll back to"
        message, automation = f"deployment {data.get('id')} of {env} failed ({', '.join(data.get('findings', []))}); {back}", ""
    elif name == "config.reload_refused":
        message = f"`envfence {data.get('process')}` in {env} refused a configuration change and keeps the last good one: {data.get('reason')}"
        automation = ""
    else:
        return None
    import hashlib

    once = hashlib.sha256(f"{data.get('trail')}:{data.get('reason')}".encode()).hexdigest()[:16] if name == "audit.broken" else uuid.uuid4().hex
    return Alert(env, automation, SECURITY + name, session.redactor()(message), "firing", "critical",
                 data.get("run_id"), incident=f"{SECURITY}{name}:{once}")


def take_held(session) -> list[Alert]:
    held = session.stash.get(SECURITY_HELD, [])
    if held:
        del session.stash[SECURITY_HELD]
    return held


def send_security(session, alerts: list[Alert]) -> None:
    try:
        dispatch(session, alerts)
    except Exception as exc:  # an alert that cannot go out never stops what is being recorded
        print(f"envfence: warning: security alert not sent: {session.redactor()(str(exc))}", file=sys.stderr)
