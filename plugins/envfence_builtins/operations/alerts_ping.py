"""The ``ping`` alert channel: dead-man pings to healthchecks.io- or cronitor-style monitors.

An outside monitor expects a ping at every run; when pings stop (the host is
down, cron was removed, envfence no longer starts) it alerts by itself, which
no alert sent from the host can do. With ``ping`` among an environment's
channels (``[alerts.escalation]``), every real run pings when it starts, then
with its outcome and exit status::

    [alerts.ping]
    url = "https://hc-ping.com/<ping-key>/{environment}-{automation}"   # {automation}, {environment}
    style = "healthchecks"      # or "cronitor": https://cronitor.link/p/<key>/{automation}
    timeout = 10

healthchecks style: ``<url>/start?rid=<run>``, then ``<url>/<exit status>?rid=<run>``
(0 is success, anything else a failure). cronitor style: ``<url>?state=run``,
then ``state=complete`` or ``state=fail``, with ``status_code``, ``series`` (the
run id) and ``env``. An alert delivered through ``ping`` (a missed run found by
``health --alert``) is a failure ping. A ping URL holds the monitor's key: an
error names the host only.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

SECTION = "alerts"
CHANNEL = "ping"
STYLES = ("healthchecks", "cronitor")


class PingError(Exception):
    """A ping could not be made; the message names the host, never the URL's key."""


def ping_settings(settings) -> dict[str, Any] | None:
    """``[alerts.ping]``, or None when not configured."""
    table = settings.section(SECTION).get(CHANNEL)
    return table if isinstance(table, dict) else None


def ping_url(settings, automation: str, environment: str, state: str, run_id: str, exit_code: int | None = None) -> str:
    """The URL to ping for ``state`` (``start``, ``success``, ``failure``) of one run.

    :raises PingError: no ``[alerts.ping] url``, not an http(s) URL, or an unknown style.
    """
    table = ping_settings(settings) or {}
    template, style = table.get("url"), table.get("style", "healthchecks")
    if not isinstance(template, str) or not template:
        raise PingError(f"[{SECTION}.{CHANNEL}] needs a url in {settings.source}")
    if style not in STYLES:
        raise PingError(f"[{SECTION}.{CHANNEL}] style in {settings.source} is {style!r}: write one of {', '.join(STYLES)}")
    quote = urllib.parse.quote
    try:
        base = template.format(automation=quote(automation, safe=""), environment=quote(environment, safe=""))
    except (KeyError, IndexError, ValueError):
        raise PingError(f"[{SECTION}.{CHANNEL}] url in {settings.source} has a placeholder other than {{automation}} and {{environment}}") from None
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PingError(f"[{SECTION}.{CHANNEL}] url in {settings.source} is not an http(s) URL")
    status = 0 if state == "success" else min(max(exit_code or 1, 1), 255)
    if style == "healthchecks":
        suffix = {"start": "start", "success": "0"}.get(state, str(status))
        query = urllib.parse.urlencode({"rid": _uuid(run_id)})
        path = parts.path.rstrip("/") + "/" + suffix
    else:
        fields = {"state": {"start": "run", "success": "complete"}.get(state, "fail"), "series": run_id, "env": environment}
        if state != "start":
            fields["status_code"] = str(status)
        query = urllib.parse.urlencode(fields)
        path = parts.path
    joined = "&".join(q for q in (parts.query, query) if q)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, joined, ""))


def _uuid(run_id: str) -> str:
    """healthchecks.io takes a UUID as ``rid``: the same run id always gives the same one."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"envfence:{run_id}"))


def send(url: str, timeout: float = 10, body: str = "") -> None:
    """GET (or POST ``body``) ``url``; :class:`PingError` names the host only."""
    import urllib.error
    import urllib.request

    host = urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1]
    request = urllib.request.Request(url, data=body.encode("utf-8") if body else None, method="POST" if body else "GET",
                                     headers={"User-Agent": "envfence"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        raise PingError(f"ping: {host} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PingError(f"ping: cannot reach {host} ({type(getattr(exc, 'reason', exc)).__name__})") from None


def ping(session, automation: str, state: str, run_id: str, exit_code: int | None = None, body: str = "") -> None:
    """Ping for one run's ``state``; :class:`PingError` when it could not be made."""
    table = ping_settings(session.settings) or {}
    timeout = table.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise PingError(f"[{SECTION}.{CHANNEL}] timeout in {session.settings.source} is {timeout!r}: write seconds, e.g. 10")
    url = ping_url(session.settings, automation, session.environment.name, state, run_id, exit_code)
    send(url, float(timeout), session.redactor()(body) if body else "")
