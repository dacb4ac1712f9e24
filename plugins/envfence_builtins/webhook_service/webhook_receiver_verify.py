"""``envfence webhooks verify REQUEST-FILE --route /path``: one captured delivery checked against a route, part by part.

Part of the ``webhook_receiver`` plugin, which adds the command. The file is the raw
HTTP request as it arrived: request line, headers, a blank line, the body
(``nc -l 8080 > delivery.http`` behind the public address captures one). It
goes through the receiver's own checks in the receiver's order (method,
content type, size, signature, body, event id, event type) without writing
anything, and each part is reported: which one fails, and why. The
timestamp's age is reported but does not fail a capture (a capture is old by
the time it is checked; the live receiver refuses it, as it should).

When a described scheme (a built-in's, or a ``[webhooks.providers.<name>]``
table's) does not match, the usual alternatives are tried (other separators
and orders in the signed string, other encodings and digests, a base64
secret, a trailing newline a capture tool added) and the one that matches is
printed as the table to write. Neither the secret nor any signature is ever
printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import click

from envfence import slotted
from envfence.cli.examples import examples
from envfence.cli import State, json_option, pass_state
from envfence.errors import EnvfenceError

#: A captured request larger than this is not a webhook delivery.
MAX_FILE = 16 * 1024 * 1024
_JSON_TYPES = ("application/json",)


@slotted.frozen
class Captured:
    """A parsed raw HTTP request: what the receiver would see."""

    method: str
    target: str
    headers: dict[str, str]  #: names lower-cased, as the receiver sees them
    body: bytes
    notes: tuple[str, ...] = ()


@slotted.frozen
class Check:
    """One part of a delivery and its verdict: ``ok``, ``FAIL`` or ``note`` (information only)."""

    part: str
    verdict: str
    detail: str
    status: int | None = None  #: what the receiver answers when this part fails


def parse_request(path: Path) -> Captured:
    """The request in ``path``; :class:`EnvfenceError` names the line that is not HTTP."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise EnvfenceError(f"{path}: cannot read the captured request ({exc.strerror})", "check the path") from None
    if len(raw) > MAX_FILE:
        raise EnvfenceError(f"{path}: more than {MAX_FILE // (1024 * 1024)} MiB: not one captured delivery", "capture one request")
    ends = [(raw.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if raw.find(sep) >= 0]
    if not ends:
        raise EnvfenceError(f"{path}: no blank line ends the headers: not a raw HTTP request",
                            "capture the request as it arrived (request line, headers, blank line, body)")
    at, separator = min(ends)
    head, rest = raw[:at].decode("latin-1").splitlines(), raw[at + len(separator):]
    parts = head[0].split() if head else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise EnvfenceError(f"{path}: line 1 is not an HTTP request line (METHOD /path HTTP/1.1): {head[0][:80]!r}",
                            "capture the request itself, not a response or a log line")
    headers, notes = _headers(path, head[1:])
    body, more = _body(path, headers, rest)
    return Captured(parts[0], parts[1], headers, body, tuple(notes + more))


def _headers(path: Path, lines: list[str]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    notes: list[str] = []
    last = None
    for number, line in enumerate(lines, start=2):
        if line[:1] in (" ", "\t") and last:  # an obsolete folded line continues the header before it
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise EnvfenceError(f"{path}: line {number} is not a header (Name: value): {line[:80]!r}",
                                "capture the request as it arrived")
        if "_" in name:  # the receiver's server (waitress) drops such headers before anything reads them
            notes.append(f"header {_shown(name)} is dropped by the receiver's server (waitress ignores names holding '_')")
            last = None
            continue
        last = name.lower()
        if last in headers:
            notes.append(f"header {name} appears twice; its values are joined with ', ', as HTTP reads them")
            headers[last] += ", " + value.strip()
        else:
            headers[last] = value.strip()
    return headers, notes


def _body(path: Path, headers: Mapping[str, str], rest: bytes) -> tuple[bytes, list[str]]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _unchunk(path, rest), ["the body was sent chunked; it is checked as the receiver reads it, joined"]
    length = headers.get("content-length")
    if length is None:
        return rest, ["no Content-Length: the body is everything after the blank line"]
    if not length.strip().isdigit():
        raise EnvfenceError(f"{path}: Content-Length {length!r} is not a number", "capture the request as it arrived")
    wanted = int(length)
    if len(rest) < wanted:
        raise EnvfenceError(f"{path}: the body holds {len(rest)} bytes but Content-Length says {wanted}: the capture was cut short",
                            "capture the whole request")
    extra = [f"{len(rest) - wanted} byte(s) after the body were left out (Content-Length {wanted}): a capture tool added them"] \
        if len(rest) > wanted else []
    return rest[:wanted], extra


def _unchunk(path: Path, data: bytes) -> bytes:
    out = b""
    while True:
        line, sep, data = data.partition(b"\r\n") if b"\r\n" in data else data.partition(b"\n")
        try:
            size = int(line.split(b";")[0].strip() or b"x", 16)
        except ValueError:
            raise EnvfenceError(f"{path}: a chunk size {line[:20]!r} is not hexadecimal", "capture the request as it arrived") from None
        if size == 0:
            return out
        if len(data) < size:
            raise EnvfenceError(f"{path}: a chunk is cut short", "capture the whole request")
        out, data = out + data[:size], data[size:].lstrip(b"\r").removeprefix(b"\n")


# --- the checks --------------------------------------------------------------------


def check(route, provider, secret: str, captured: Captured, *, now: float | None = None) -> list[Check]:
    """Every part of the delivery, in the receiver's order; the first ``FAIL`` is what the receiver would answer."""
    checks = [Check("request", "note", f"{captured.method} {captured.target}; checked against route {route.path} "
                    f"(provider {route.provider})")]
    checks += [Check("capture", "note", note) for note in captured.notes]
    if captured.target.split("?")[0] != route.path:
        checks.append(Check("path", "note", f"captured on {captured.target.split('?')[0]}, not {route.path}: "
                            "a proxy in front may rewrite it; the receiver routes by the path it receives"))
    checks.append(Check("method", "ok", "POST") if captured.method == "POST"
                  else Check("method", "FAIL", f"{captured.method}: the receiver takes POST only", 405))
    content_type = captured.headers.get("content-type", "").split(";")[0].strip().lower()
    checks.append(Check("content type", "ok", content_type) if content_type in _JSON_TYPES
                  else Check("content type", "FAIL", f"{content_type or 'none'!r}: the receiver takes application/json only", 415))
    size = len(captured.body)
    checks.append(Check("size", "ok", f"{size} bytes (limit {route.max_body})") if size <= route.max_body
                  else Check("size", "FAIL", f"{size} bytes, over the route's max_body of {route.max_body}", 413))
    checks += _signature(route, provider, secret, captured, now)
    checks += _payload(route, provider, captured)
    return checks


def _signature(route, provider, secret: str, captured: Captured, now: float | None) -> list[Check]:
    from envfence_builtins.webhook_service.webhook_signatures import SignatureError, check_timestamp

    scheme = provider.scheme
    found: list[Check] = []
    try:
        if scheme is None:  # a plugin's provider: its own verifier, with the age left out
            provider.verify(secret, captured.headers, captured.body, 10**15)
        else:
            scheme.verify(secret, captured.headers, captured.body, route.tolerance, fresh=False)
    except SignatureError as exc:
        found.append(Check("signature", "FAIL", str(exc), 401))
        if scheme is not None:
            found += _alternatives(scheme, secret, captured, route.provider)
        return found
    shape = f"HMAC-{scheme.algorithm.upper()} of {scheme.signed!r}, {scheme.encoding}" if scheme else f"{route.provider}'s scheme"
    found.append(Check("signature", "ok", f"matches the route's secret ({shape})"))
    if scheme is not None and scheme.timestamp_header:
        try:
            check_timestamp(captured.headers[scheme.timestamp_header.lower()], now, route.tolerance, scheme.timestamp_unit)
            found.append(Check("timestamp", "ok", f"within {route.tolerance} s of now"))
        except SignatureError as exc:
            found.append(Check("timestamp", "note", f"{exc}; expected for a capture: the live receiver refuses a delivery "
                               f"older than {route.tolerance} s, so a replay of this capture is refused"))
    return found


def _payload(route, provider, captured: Captured) -> list[Check]:
    try:
        payload = json.loads(captured.body)
    except (ValueError, RecursionError):
        return [Check("body", "FAIL", "not JSON (or nested too deep)", 400)]
    if not isinstance(payload, dict):
        return [Check("body", "FAIL", "JSON, but not an object", 400)]
    found = [Check("body", "ok", "a JSON object")]
    event_id = provider.event_id(captured.headers, captured.body)
    found.append(Check("event id", "ok", event_id) if event_id
                 else Check("event id", "FAIL", f"none: a {route.provider} delivery without its id", 400))
    event_type = provider.event_type(captured.headers, payload)
    runs = route.wants(event_type)
    found.append(Check("event type", "ok" if runs else "note",
                       f"{event_type or 'unknown'}: " + (f"runs {route.automation}" if runs else
                                                         f"acknowledged, not run (route events: {', '.join(route.events)})")))
    return found


def _alternatives(scheme, secret: str, captured: Captured, name: str) -> list[Check]:
    """The first usual variation of the scheme that matches the capture, as the table to write; or a note that none does."""
    if not captured.headers.get(scheme.signature_header.lower()):
        return []  # nothing signed to compare: the failure already says which header is missing
    match = find_variant(scheme, secret, captured.headers, captured.body)
    if match is None:
        return [Check("diagnosis", "note", "no usual variation of the scheme matches either (separators, order, sha1/sha512, "
                      "hex/base64, a base64 secret): check that the route's secret is the one this sender signs with")]
    changes, note = match
    if not changes:
        return [Check("diagnosis", "note", f"the scheme is right{note}")]
    table = "\n".join([f"[webhooks.providers.{name}]", *(f"{k} = {json.dumps(v)}" for k, v in changes.items())])
    return [Check("diagnosis", "note", f"the capture verifies with this scheme{note}; put it in envfence.toml:\n{table}")]


def find_variant(scheme, secret: str, headers: Mapping[str, str], body: bytes) -> tuple[dict[str, str], str] | None:
    """The changed keys of the first variation of ``scheme`` the delivery verifies with, and a note; None when none does."""
    from envfence_builtins.webhook_service.webhook_signatures import SignatureError

    for changes in _variations(scheme, headers):
        candidate = slotted.evolve(scheme, **changes)
        for variant, note in ((body, ""), (body.rstrip(b"\r\n"), " (and the body without its trailing newline: the capture "
                                                                  "tool added one, the sender did not sign it)")):
            if note and variant == body:
                continue
            try:
                candidate.verify(secret, headers, variant, 0, fresh=False)
            except SignatureError:
                continue
            return changes, note
    return None


def _variations(scheme, headers: Mapping[str, str]) -> list[dict[str, str]]:
    stamps = [scheme.timestamp_header] if scheme.timestamp_header else []
    stamps += [h for h in headers if ("timestamp" in h or h.endswith("-time")) and h not in stamps]
    templates = ["{body}"] + [t for _ in stamps[:1] for t in ("{timestamp}.{body}", "{timestamp}{body}", "{timestamp}:{body}",
                                                              "{timestamp}\n{body}", "{body}{timestamp}", "{body}.{timestamp}",
                                                              "v0:{timestamp}:{body}")]
    prefix = _prefix(headers.get(scheme.signature_header.lower(), ""))
    found = []
    for stamp in stamps or [""]:
        for signed in templates:
            if "{timestamp}" in signed and not stamp:
                continue
            for algorithm in ("sha256", "sha1", "sha512"):
                for encoding in ("hex", "base64", "base64url"):
                    for secret_encoding in ("text", "base64"):
                        changes = {"signed": signed, "timestamp_header": stamp if "{timestamp}" in signed else "",
                                   "algorithm": algorithm, "encoding": encoding, "secret_encoding": secret_encoding,
                                   "signature_prefix": prefix}
                        found.append({k: v for k, v in changes.items() if getattr(scheme, k) != v})
    found.sort(key=len)  # the smallest change first
    return found


def _prefix(value: str) -> str:
    """A label before the signature itself (``sha256=``, ``v1,``), read off the captured header."""
    first = value.strip().split(" ")[0]
    for mark in ("=", ","):
        head, sep, tail = first.partition(mark)
        if sep and tail and head.replace("-", "").replace("_", "").isalnum() and len(head) <= 12:
            return head + sep
    return ""


# --- the command ------------------------------------------------------------------------


def _shown(text: str) -> str:
    """Text from a captured request made safe for a terminal: control characters written as escapes."""
    return "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" for c in text)


@click.group()
def webhooks() -> None:
    """Check webhook deliveries against the routes' configuration."""


@examples(
    "envfence --env production webhooks verify captured.http --route /housecallpro",
)
@webhooks.command("verify")
@json_option
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--route", "route_path", required=True, metavar="/PATH", help="The route whose provider and secret check it.")
@pass_state
def verify_command(state: State, request_file: str, route_path: str) -> None:
    """Check one captured delivery (the raw HTTP request) against a route: which part fails, and why.

    \b
    Run it on one real delivery before going live: a provider whose
    signature scheme differs from what the route expects gets 401 on every
    delivery. Nothing is written; the secret and signatures are never shown.
    """
    from envfence.cli.output import dumps
    from envfence.errors import EXIT_FINDINGS, ConfigurationError, UsageError

    from envfence_builtins.webhook_service.webhook_schemes import providers_for
    from envfence_builtins.webhook_service.webhook_receiver_routes import route_secrets, routes

    session = state.session()
    declared = {r.path: r for r in routes(session.settings)}
    route = declared.get(route_path)
    if route is None:
        raise UsageError(f"no route {route_path!r} in {session.settings.source}",
                         f"known routes: {', '.join(sorted(declared)) or 'none'}")
    providers = providers_for(session)
    if route.provider not in providers:
        raise ConfigurationError(f"route {route.path}: no webhook provider named {route.provider!r}", f"known: {', '.join(sorted(providers))}")
    captured = parse_request(Path(request_file))
    secret = route_secrets(session, [route])[route.path]
    checks = check(route, providers[route.provider], secret, captured)
    failed = next((c for c in checks if c.verdict == "FAIL"), None)
    verdict = f"the receiver would refuse it: {failed.status} at {failed.part}" if failed else "the delivery would be accepted (202)"
    if state.json:
        click.echo(dumps({"route": route.path, "provider": route.provider, "accepted": failed is None, "verdict": verdict,
                          "checks": [slotted.asdict(c) for c in checks]}))
    else:
        for c in checks:
            click.echo(f"{c.verdict:<5} {c.part}: " + _shown(c.detail).replace("\n", "\n        "))
        click.echo(verdict)
    if failed:
        click.get_current_context().exit(EXIT_FINDINGS)

