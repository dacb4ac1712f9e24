"""Post failed envfence runs, optionally finished ones, and alerts, to a Slack incoming webhook.

The webhook URL is a secret credential, read through the environment's
prefix (``PROD_SLACK_WEBHOOK_URL`` in production), so each environment posts
to its own channel and the URL is masked wherever envfence prints
configuration. Settings, all optional::

    [slack]
    notify = "failures"   # or "all": also post runs that succeeded
    timeout = 5           # seconds to wait for Slack

With ``slack`` among an environment's ``[alerts.escalation]`` channels, the
alerts of crossed thresholds (and their recoveries) are posted too.

Every message passes through the session's redactor, so no secret value of
the session reaches Slack. A failure to post is a warning on stderr and an
audit event (``notification.failed``); it never changes a run's result.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from envfence import hookimpl
from envfence.models import Finding, SettingSpec, reveal

if TYPE_CHECKING:
    from envfence.redaction import SecretShape

NAME = "slack"
URL_SETTING = "SLACK_WEBHOOK_URL"
NOTIFY_CHOICES = ("failures", "all")
DEFAULT_TIMEOUT = 5.0


@hookimpl
def secret_shapes() -> list[SecretShape]:
    """An incoming-webhook URL is secret wherever it appears."""
    from envfence.redaction import SecretShape  # here: every session imports this plugin to read its declarations

    return [SecretShape(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+", "Slack incoming-webhook URL")]


@hookimpl
def declare_settings() -> list[SettingSpec]:
    """The webhook URL: a secret, read through the environment's prefix."""
    return [
        SettingSpec(
            URL_SETTING,
            doc="Slack incoming-webhook URL that receives run notifications",
            secret=True,
            credential=True,
            format=r"https?://\S+",
            plugin=NAME,
        )
    ]


def _slack_table():
    from envfence.settings_kinds import number, text
    from envfence.settings_tables import Table

    table = Table(NAME, "Slack notifications of runs and alerts")
    table.add("notify", text(choices=NOTIFY_CHOICES), "failures", "failures: only failed runs; all: successes too")
    table.add("timeout", number(minimum=0, exclusive=True, example=DEFAULT_TIMEOUT), DEFAULT_TIMEOUT, "seconds to wait for Slack")
    return table


#: ``[slack]``, declared once: envfence check names a wrong value, envfence config schema and the reads below use it.
TABLE = _slack_table()


@hookimpl
def declare_tables():
    """The ``[slack]`` table."""
    return [TABLE]


def _options(settings) -> tuple[str, float]:
    """``(notify, timeout)``; a value of the wrong kind counts as its default (``envfence check`` names it)."""
    from envfence.errors import ConfigurationError

    values, found = TABLE.read(settings), []
    for key in ("notify", "timeout"):
        try:
            found.append(values[key])
        except ConfigurationError:
            found.append(TABLE.keys[key].default)
    return found[0], float(found[1])


@hookimpl
def validate(session) -> list[Finding]:
    """The URL, when set, is an http(s) URL (the ``[slack]`` table is judged by its declaration)."""
    findings = []
    url = session.config.credential(URL_SETTING)
    if url is not None and not str(reveal(url)).startswith(("https://", "http://")):
        findings.append(
            Finding("SLACK_WEBHOOK_URL_FORMAT", "error", f"{session.config.credential_key(URL_SETTING)} is not an http(s) URL",
                    "copy the incoming-webhook URL from the Slack app's settings (it starts with https://hooks.slack.com/)",
                    key=session.config.credential_key(URL_SETTING), plugin=NAME)
        )
    return findings


@hookimpl
def on_error(session, failure) -> None:
    """Post the failure: automation, environment, host, classification, message and error id."""
    if session is None:  # the session did not open: no configuration, so no webhook
        return
    what = failure.automation or "envfence"
    text = (
        f":rotating_light: *{what}* failed in *{session.environment.name}* on `{session.host.hostname}`\n"
        f"{failure.classification} error {failure.error_id}: {failure.message}"
    )
    post(session, text, kind="failure")


@hookimpl
def on_run_finish(session, outcome) -> None:
    """With ``notify = "all"``, post runs that succeeded (failures go through ``on_error``)."""
    if _options(session.settings)[0] != "all" or outcome.status != "succeeded":
        return
    forced = f" (forced: {outcome.reason})" if outcome.forced else ""
    text = (
        f":white_check_mark: *{outcome.automation}* succeeded in *{outcome.environment}* "
        f"in {outcome.duration:.1f}s, run {outcome.run_id}{forced}"
    )
    post(session, text, kind="success")


@hookimpl(optionalhook=True)  # the alerts plugin declares it; without it this plugin still posts run messages
def alert(session, alert, channels) -> list[str] | None:
    """Deliver an envfence alert when the environment escalates to ``slack``; raise when Slack did not take it."""
    if NAME not in channels:
        return None
    if session.config.credential_key(URL_SETTING) is None:
        raise RuntimeError(f"no {URL_SETTING} credential in {session.environment.name}")
    icon = ":rotating_light:" if alert.state == "firing" else ":white_check_mark:"
    run = f", run {alert.run_id}" if alert.run_id else ""
    text = f"{icon} *{alert.automation}* in *{alert.environment}*: {alert.check} {alert.state} ({alert.severity}){run}\n{alert.message}"
    if not post(session, text, kind="alert"):
        raise RuntimeError("Slack did not accept the alert (see the warning above)")
    return [NAME]


def post(session, text: str, kind: str) -> bool:
    """Send ``text``, redacted, to the environment's webhook. Returns True when Slack accepted it.

    Never raises: a failure is a warning on stderr and a ``notification.failed``
    audit event, neither of which holds the URL.
    """
    key = session.config.credential_key(URL_SETTING)
    if key is None:
        return False
    url = str(reveal(session.credential(URL_SETTING, by=NAME)))
    payload = {"text": session.redactor()(text)}
    timeout = _options(session.settings)[1]
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        problem = f"Slack answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        problem = f"could not reach Slack ({type(reason).__name__ if not isinstance(reason, str) else reason})"
    else:
        session.audit("notification.sent", channel=NAME, kind=kind, key=key, status=status)
        return True
    print(
        f"envfence-slack: warning: {problem} for the {kind} notification; "
        f"the run's result is unchanged (check {key})",
        file=sys.stderr,
    )
    session.audit("notification.failed", channel=NAME, kind=kind, key=key, problem=problem)
    return False
