"""Classify the host, detect the environment from it, and guard runs by it.

A host's class is decided by enrollment first, by the tokens of its name second:

- **Enrollment**: the ``[hostname.<environment>]`` tables name the hosts that
  belong to an environment, by hostname glob (``hosts``, matched against the
  whole name, case-insensitively) and by machine id (``machine_ids``, the
  content of ``/etc/machine-id``, for clouds whose names say nothing)::

      [hostname.production]
      hosts = ["ip-10-0-0-*", "web-*.example.com"]
      machine_ids = ["3d1219c7c4c5404aaa1f6d2a48adfda4"]

  When any rule matches, tokens are not consulted. A glob without a literal
  character (``*``) would enroll every machine and is refused.
- **Tokens**: the name is split on ``-``, ``.``, ``_`` and digits, and each
  token is compared, whole and case-insensitively, with every environment's
  ``hostname_patterns`` (shell-style globs allowed). ``web-prod-01`` is
  production while ``productivity-box`` is not. A pattern that holds a
  separator (``qa_eu``) matches that run of tokens (``web-qa-eu-1``), and the
  longer match wins over a shorter one inside it (``qa``).
- **Suspects**: a name holding an environment's keyword inside a word
  (``prodserver01``, ``myproduction``) is *suspect* for that environment
  without being classified by it. The keywords are ``[hostname.<env>]
  suspect`` (default ``dev``, ``local`` for development, ``prod``, ``prd``,
  ``production`` for production, the literal ``hostname_patterns`` for the
  others).

Names and globs are compared in NFKC form, lower case, with look-alike
letters (a Cyrillic ``о``) read as the Latin ones they imitate, without blanks
or a trailing dot (:func:`normal`).

The guard (:func:`pre_run_safety`) blocks a run whose environment disagrees
with the host's class, a run of any environment on a host that carries
markers of several, in a strict profile a run on a host that no rule
classifies as its environment, and a run on a host suspect for another
environment unless the host is enrolled in the run's (``HOSTNAME_SUSPECT``:
a person at a development terminal is asked; without one, forcing needs a
reason). A stand-in name (``ENVFENCE_HOSTNAME``) only
tightens: the class of the system's own name applies too, unless
``[hostname] allow_stand_in = true`` (containers), whose use is audited.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path
from typing import Any, Mapping

from envfence import slotted
from envfence import hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Environment, Finding, HostInfo
from envfence.recent import per_settings

SECTION = "hostname"
#: Where the machine's id is read, first found wins (systemd, then D-Bus).
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")

_SPLIT = re.compile(r"[-._\d]+")
_OPTIONS = ("allow_stand_in",)
_RULES = ("hosts", "machine_ids", "suspect")
#: The keywords that make a name suspect when they stand inside a word; other environments use their literal patterns.
#: ``live`` is left out: it hides in too many words (``olive``, ``deliver``).
SUSPECT_DEFAULTS = {"development": ("dev", "local"), "production": ("prod", "prd", "production")}


def tokens(hostname: str) -> tuple[str, ...]:
    """The lower-case tokens of a hostname."""
    return tuple(t for t in _SPLIT.split(hostname.lower()) if t)


def normal(hostname: str) -> str:
    """The name rules compare: NFKC, lower case, look-alike letters mapped, without blanks or the root's trailing dot.

    ``web-01.example.com.`` (a fully qualified name) is the same host as
    ``web-01.example.com``; without this a production host so named would
    escape its enrollment and run development. ``ｐｒｏｄ-1`` (full width) and
    ``prоd-1`` (a Cyrillic ``о``) are ``prod-1``: a name that only looks
    like another still carries its marker.
    """
    if not hostname.isascii():  # ASCII is its own NFKC: most names need no Unicode tables
        import unicodedata

        hostname = unicodedata.normalize("NFKC", hostname)
    name = hostname.strip().rstrip(".").lower()
    return name if name.isascii() else "".join(_latin(c) for c in name)


@functools.lru_cache(maxsize=512)
def _latin(char: str) -> str:
    """The ASCII letter or digit ``char`` imitates (Unicode's confusables), else ``char``."""
    if char.isascii():
        return char
    # Loaded only for a name with letters outside ASCII: the table is large.
    from confusable_homoglyphs.confusables import confusables_data

    for glyph in confusables_data.get(char, ()):
        if len(glyph["c"]) == 1 and glyph["c"].isascii() and glyph["c"].isalnum():
            return glyph["c"].lower()
    return char


def too_broad(glob: str) -> bool:
    """True when ``glob`` has no literal character (``*``, ``?*``, ``[a-z]*``): it would match every host."""
    return not re.sub(r"\[[^\]]*\]|[*?]", "", glob)


def machine_id() -> str | None:
    """The machine's id (lower case), or None when the machine has none."""
    for path in MACHINE_ID_FILES:
        try:
            # bytes decoded here, not read_text(encoding=...): no codec module is looked up for it
            text = Path(path).read_bytes().decode("ascii", "replace").strip().lower()
        except OSError:
            continue
        if text:
            return text
    return None


@slotted.frozen
class Enrollment:
    """The ``[hostname]`` table: each environment's enrolled hosts, and the stand-in option."""

    hosts: Mapping[str, tuple[str, ...]] = slotted.field(factory=dict)
    machine_ids: Mapping[str, tuple[str, ...]] = slotted.field(factory=dict)
    allow_stand_in: bool = False
    #: Keywords that make a name suspect, where ``suspect`` is set (else :func:`suspect_keywords`' defaults).
    suspect: Mapping[str, tuple[str, ...]] = slotted.field(factory=dict)


def _hostname_table():
    from envfence.settings_kinds import either, flag, text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "the hosts enrolled in each environment, which decide a host's class before its name")
    table.add("allow_stand_in", flag(), False, "let ENVFENCE_HOSTNAME stand in for the real host name")
    one = table.add_each("", "the hosts of one environment (its name or an alias)", names_hint="an environment's name or alias")
    one.add("hosts", either(texts(example="web-*.example.com"), text(example="web-*.example.com")), [],
            "host name globs enrolled in this environment")
    one.add("machine_ids", either(texts(example="4c4c4544004d"), text(example="4c4c4544004d")), [],
            "machine ids (/etc/machine-id) enrolled in this environment")
    one.add("suspect", either(texts(example="prd"), text(example="prd")), [],
            "keywords that make a host name suspect for this environment")
    return table


#: ``[hostname]``, declared once for ``check``, the schema and the docs.
TABLE = _hostname_table()


@hookimpl
def declare_tables():
    """The ``[hostname]`` table."""
    return [TABLE]


def enrollment(settings) -> Enrollment:
    """Read the ``[hostname]`` table.

    :raises ConfigurationError: an undeclared environment, an unknown key, or
        a value of the wrong type, named with the file and the key.
    """
    table: Mapping[str, Any] = settings.section(SECTION)
    where = f"{settings.source}: [{SECTION}]"
    hosts: dict[str, tuple[str, ...]] = {}
    ids: dict[str, tuple[str, ...]] = {}
    suspect: dict[str, tuple[str, ...]] = {}
    allow = TABLE.read(settings)["allow_stand_in"]
    for name, body in table.items():
        if name in _OPTIONS:
            continue
        env = settings.resolve(name)
        if env is None or not isinstance(body, Mapping):
            declared = ", ".join(settings.environments)
            raise ConfigurationError(
                f"{where}: {name!r} is neither an option ({', '.join(_OPTIONS)}) nor a declared environment ({declared})",
                f'enroll hosts per environment: [{SECTION}.production] hosts = ["web-*"]',
            )
        for key, value in body.items():
            if key not in _RULES:
                raise ConfigurationError(f"{where}.{name}.{key}: unknown key", f"known keys: {', '.join(_RULES)}")
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigurationError(
                    f"{where}.{name}.{key}: must be a list of strings, not {value!r}", f'write it as {key} = ["..."]'
                )
            broad = next((v for v in value if key == "hosts" and too_broad(v.strip())), None)
            if broad is not None:
                raise ConfigurationError(
                    f"{where}.{name}.hosts: {broad!r} matches every host, so it would enroll every machine in {env}",
                    'name the hosts with a literal part, e.g. hosts = ["web-*.example.com"], or enroll by machine_ids',
                )
            if key == "hosts":
                hosts[env] = tuple(normal(v) for v in value)  # compared as names are: "web-01.example.com." too
            elif key == "suspect":
                suspect[env] = tuple(_squeeze(normal(v)) for v in value)
            else:
                ids[env] = tuple(v.strip().lower() for v in value)
    for env in settings.environments.values():
        broad = next((p for p in env.hostname_patterns if too_broad(p)), None)
        if broad is not None:
            raise ConfigurationError(
                f"{settings.source}: [environments.{env.name}] hostname_patterns: {broad!r} matches every name, "
                f"so every host would carry {env.name}'s marker",
                f'give the pattern a literal part (hostname_patterns = ["{env.name[:4]}"]), or enroll hosts under [{SECTION}.{env.name}]',
            )
    return Enrollment(hosts, ids, allow, suspect)


def suspect_keywords(settings, rules: Enrollment) -> dict[str, tuple[str, ...]]:
    """Each environment's suspect keywords: ``[hostname.<env>] suspect``, else the defaults."""
    found = {}
    for env in settings.environments.values():
        default = SUSPECT_DEFAULTS.get(env.name) or tuple(
            _squeeze(normal(p)) for p in env.hostname_patterns if not re.search(r"[*?\[]", p) and len(_squeeze(p)) >= 3
        )
        found[env.name] = tuple(k for k in rules.suspect.get(env.name, default) if k)
    return found


def _squeeze(name: str) -> str:
    """``name`` without separators: ``qa_eu`` is ``qaeu``, so ``myqa-eu-box`` holds it."""
    return re.sub(r"[-._\s]", "", name)


def classify(hostname: str, settings, machine: str | None = None) -> HostInfo:
    """The host's class: enrollment rules first, then every token against every environment's patterns.

    The suspects (keywords inside a word) are found either way: a guard
    passes over them only for a host enrolled in the run's environment.
    """
    name = normal(hostname)
    parts = tokens(name)
    rules = enrollment(settings)
    suspects = _suspects(name, suspect_keywords(settings, rules))
    enrolled: list[tuple[str, str]] = []
    for env in settings.environments:
        glob = next((g for g in rules.hosts.get(env, ()) if fnmatch.fnmatchcase(name, g)), None)
        if glob is not None:
            enrolled.append((env, f"hosts {glob!r}"))
        elif machine and machine in rules.machine_ids.get(env, ()):
            enrolled.append((env, "its machine id"))
    if enrolled:
        return HostInfo(hostname, tokens=parts, matches=tuple(enrolled), enrolled=True, machine_id=machine, suspects=suspects)
    matches = _token_matches(parts, settings)
    suspects = tuple((env, word) for env, word in suspects if env not in {e for e, _ in matches})
    return HostInfo(hostname=hostname, tokens=parts, matches=matches, machine_id=machine, suspects=suspects)


def _token_matches(parts: tuple[str, ...], settings) -> tuple[tuple[str, str], ...]:
    """``(environment, token)`` for each environment a run of unqualified tokens names.

    A pattern with separators (``qa_eu``) is a run of tokens; a match lying
    inside a longer match of another environment does not count, so
    ``web-qa-eu-1`` is ``qa_eu``'s and not also ``qa``'s.
    """
    spans: list[tuple[str, int, int]] = []
    for env in settings.environments.values():
        for pattern in env.hostname_patterns:
            wanted = tokens(pattern.lower()) or (pattern.lower(),)
            for start in range(len(parts) - len(wanted) + 1):
                end = start + len(wanted)
                if all(fnmatch.fnmatchcase(parts[start + i], w) for i, w in enumerate(wanted)) and _unqualified(parts, start, end):
                    spans.append((env.name, start, end))
    kept = [
        (env, a, b) for env, a, b in spans
        if not any(o != env and x <= a and b <= y and y - x > b - a for o, x, y in spans)
    ]
    matches: list[tuple[str, str]] = []
    for env in settings.environments:
        own = sorted((a, b) for e, a, b in kept if e == env)
        if own:
            matches.append((env, "-".join(parts[own[0][0]:own[0][1]])))
    return tuple(matches)


def _suspects(name: str, keywords: Mapping[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
    """``(environment, keyword)`` for each keyword the name holds anywhere, but not after ``non``/``pre`` or before ``like``."""
    squeezed = _squeeze(name)
    found = []
    for env, words in keywords.items():
        word = next((w for w in words if _holds(squeezed, w)), None)
        if word is not None:
            found.append((env, word))
    return tuple(found)


def _holds(squeezed: str, word: str) -> bool:
    """True when ``word`` stands in ``squeezed`` once at least with no qualifier beside it (``nonprod``, ``prodlike``)."""
    for match in re.finditer(re.escape(word), squeezed):
        before, after = squeezed[: match.start()], squeezed[match.end():]
        if not before.endswith(tuple(QUALIFIERS_BEFORE)) and not after.startswith(tuple(QUALIFIERS_AFTER)):
            return True
    return False


#: Tokens that make the marker beside them say the opposite, or something else:
#: ``non-prod``, ``not-prod`` and ``pre-prod`` are no production hosts, nor is ``prod-like``.
QUALIFIERS_BEFORE = frozenset({"non", "not", "pre"})
QUALIFIERS_AFTER = frozenset({"like"})


def _unqualified(parts: tuple[str, ...], start: int, end: int) -> bool:
    """True when no qualifier stands beside the tokens ``parts[start:end]``."""
    return not (start and parts[start - 1] in QUALIFIERS_BEFORE) and not (end < len(parts) and parts[end] in QUALIFIERS_AFTER)


@per_settings
def classified(settings, hostname: str, machine: str | None) -> HostInfo:
    """:func:`classify`, kept for the latest names and settings: opening and the guard ask the same.

    Settings are frozen, and :func:`envfence.settings.load_settings` gives the same object only
    while envfence.toml's bytes are the same: an edited file is new settings, classified afresh.
    """
    return classify(hostname, settings, machine)


@hookimpl
def classify_host(hostname: str, settings) -> HostInfo:
    """The host's class from its enrollment, else its name's tokens."""
    return classified(settings, hostname, machine_id())


@hookimpl(trylast=True)
def detect_environment(host: HostInfo) -> Environment | None:
    """The host's class, when its rules point at exactly one environment."""
    if host.environment is None:
        return None
    rule = next(r for env, r in host.matches if env == host.environment)
    how = f"enrolled by {rule}" if host.enrolled else f"token '{rule}'"
    return Environment(host.environment, "hostname", f"{host.hostname} ({how})")


def guarded_hosts(session) -> list[HostInfo]:
    """The host views the guard applies: the name in use and, for a stand-in, the system's own.

    With ``allow_stand_in`` the stand-in alone counts (a container's own
    name is random); the trail records that it did. When another plugin
    answered ``classify_host`` and its class leaves out one of this plugin's
    rules, this plugin's own view is guarded too: a plugin can tighten the
    guard, not loosen it.
    """
    host = session.host
    views = [host] if host.real is None or enrollment(session.settings).allow_stand_in else [host, host.real]
    # Another plugin may answer classify_host first; its class only adds to this plugin's own.
    machine = machine_id()
    for view in list(views):
        own = classified(session.settings, view.hostname, machine)
        if set(own.matches) - set(view.matches) or set(own.suspects) - set(view.suspects):
            views.append(slotted.evolve(own, source=view.source))
    return views


def enroll_line(session, env: str, host: HostInfo) -> str:
    """The settings lines that would enroll ``host`` in ``env``."""
    settings = session.settings
    table = f"tool.envfence.{SECTION}" if settings.path is not None and settings.path.name == "pyproject.toml" else SECTION
    file = settings.path.name if settings.path is not None else "envfence.toml"
    line = f'add under [{table}.{env}] in {file}: hosts = ["{host.hostname.lower()}"]'
    if host.machine_id:
        line += f' (or, for a name that changes, machine_ids = ["{host.machine_id}"])'
    return line


def _not_enrolled(session, env: str, host: HostInfo, severity: str) -> Finding:
    why = "its name matches no rule" if not host.matches else f"it is {host.describe()}"
    return Finding(
        code="HOST_NOT_ENROLLED",
        severity=severity,
        message=(
            f"host {host.hostname!r} ({host.source}) is not enrolled in {env}: {why}; "
            f"{env} is strict and runs only on a host a rule classifies as {env}"
        ),
        remediation=f"if this host belongs to {env}, {enroll_line(session, env, host)}",
        key=SECTION,
        plugin="hostname",
    )


def _stand_in_note(session, host: HostInfo) -> str:
    if session.host.real is None or host.hostname != session.host.real.hostname or host.hostname == session.host.hostname:
        return ""
    return f" (the system's own name; {session.host.source}={session.host.hostname} stands in for it and may only tighten)"


@hookimpl
def pre_run_safety(session, request) -> list[Finding]:
    """Block a run the host does not belong to.

    Every guarded host view (see :func:`guarded_hosts`) is checked:

    - a host carrying markers of several environments blocks a run of any;
    - a host whose class is another environment blocks the run, both ways;
    - in a strict profile, a host no rule classifies as the run's
      environment blocks it (``HOST_NOT_ENROLLED``). A development-like
      profile runs on an unclassified host, as the seed's rule says.
    """
    env = session.environment.name
    findings = []
    views = guarded_hosts(session)
    if session.host.real is not None and enrollment(session.settings).allow_stand_in:
        session.audit(
            "hostname.stand_in",
            hostname=session.host.hostname,
            real_host=session.host.real.hostname,
            allowed_by=f"[{SECTION}] allow_stand_in = true in {session.settings.source}",
        )
    for host in views:
        note = _stand_in_note(session, host)
        if host.ambiguous:
            findings.append(
                Finding(
                    code="HOSTNAME_AMBIGUOUS",
                    severity="error",
                    message=(
                        f"{request.automation.name} would run in {env} on host {host.hostname!r}{note}, "
                        f"which carries markers of several environments: {host.describe()}"
                    ),
                    remediation="rename the host, enroll it in one environment, or narrow hostname_patterns",
                    plugin="hostname",
                )
            )
        elif host.environment is not None and host.environment != env:
            rule = next(r for e, r in host.matches if e == host.environment)
            says = f"which is enrolled in {host.environment} ({rule})" if host.enrolled else f"whose name says {host.environment} (token {rule!r})"
            findings.append(
                Finding(
                    code="HOSTNAME_MISMATCH",
                    severity="error",
                    message=(
                        f"{request.automation.name} would run in {env} ({session.environment.describe()}) on host "
                        f"{host.hostname!r}{note}, {says}"
                    ),
                    remediation=(
                        f"run it on a {env} host, or choose the environment this host is for "
                        f"(--env {host.environment})"
                    ),
                    plugin="hostname",
                )
            )
        elif host.environment is None and session.profile.strict:
            finding = _not_enrolled(session, env, host, "error")
            findings.append(slotted.evolve(finding, message=finding.message + note))
        findings += _suspect_findings(session, request, host, note)
    return findings


def _suspect_findings(session, request, host: HostInfo, note: str) -> list[Finding]:
    """``HOSTNAME_SUSPECT`` for each other environment whose keyword the name holds, unless the host is enrolled.

    Confirmable: a person at a development terminal is asked; without a
    terminal, forcing needs ``--reason`` whatever the profile.
    """
    env = session.environment.name
    if host.enrolled:
        return []
    return [
        Finding(
            code="HOSTNAME_SUSPECT",
            severity="error",
            message=(
                f"{request.automation.name} would run in {env} on host {host.hostname!r}{note}, whose name holds "
                f"{other}'s keyword {word!r} inside a word: it may be a {other} host"
            ),
            remediation=f"if this host belongs to {env}, {enroll_line(session, env, host)}; else run it where it belongs",
            key=SECTION,
            plugin="hostname",
            confirmable=True,
        )
        for other, word in host.suspects
        if other != env and other not in host.environments
    ]


_WILD = re.compile(r"\*|\?|\[[^\]]*\]")


def _globs_meet(a: str, b: str) -> bool:
    """Whether two shell globs could match one name (an over-estimate only where both have wildcards in their middles)."""
    if fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
        return True
    if not (_WILD.search(a) and _WILD.search(b)):
        return False
    (head_a, *_, tail_a), (head_b, *_, tail_b) = _WILD.split(a), _WILD.split(b)
    return (head_a.startswith(head_b) or head_b.startswith(head_a)) and (tail_a.endswith(tail_b) or tail_b.endswith(tail_a))


@hookimpl(optionalhook=True)
def share_host(settings, a: str, b: str) -> bool:
    """Whether one machine may carry environments ``a`` and ``b`` (the ``schedule`` plugin's hook).

    When both are enrolled (``[hostname.<environment>] hosts``/``machine_ids``),
    their rules must be able to name one machine; else their
    ``hostname_patterns`` must be able to match one token of a name.
    """
    return _may_share(settings, a, b)


@per_settings
def _may_share(settings, a: str, b: str) -> bool:
    rules = _rules(settings)
    enrolled = {*rules.hosts, *rules.machine_ids}
    if a in enrolled and b in enrolled:
        if set(rules.machine_ids.get(a, ())) & set(rules.machine_ids.get(b, ())):
            return True
        return any(_globs_meet(x, y) for x in rules.hosts.get(a, ()) for y in rules.hosts.get(b, ()))
    patterns = [[p.lower() for p in settings.environments[env].hostname_patterns] for env in (a, b)]
    return any(_globs_meet(x, y) for x in patterns[0] for y in patterns[1])


@per_settings
def _rules(settings) -> Enrollment:
    """The enrollment, read once per settings: every pair of environments asks for it (n² pairs, each
    reading a table that grows with n), which made validation cubic in the environments."""
    try:
        return enrollment(settings)
    except ConfigurationError:  # reported by validate; the session does not open with it
        return Enrollment()


@hookimpl
def validate(session) -> list[Finding]:
    """``HOST_NOT_ENROLLED`` (a warning) when a strict environment is checked on a host not enrolled in it.

    A warning, not an error: checking production's configuration from a
    laptop is legitimate; a run there is what the guard refuses.
    """
    return host_notes(session)


@hookimpl
def host_notes(session) -> list[Finding]:
    """What ``detect`` shows about the host: the ``HOST_NOT_ENROLLED`` warning :func:`validate` gives."""
    if not session.profile.strict:
        return []
    env = session.environment.name
    return [_not_enrolled(session, env, host, "warning") for host in guarded_hosts(session) if env not in host.environments]
