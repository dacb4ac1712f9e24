"""What ``envfence schedule`` installs: the entries of each environment (automations, the health check, other plugins' commands) and their crontab, systemd and Kubernetes forms.

Each scheduler's dialect is :mod:`envfence_builtins.operations.schedule_dialects`;
collisions between environments :mod:`envfence_builtins.operations.schedule_collisions`.
The hooks are in :mod:`envfence_builtins.operations.schedule`, the commands in ``schedule_cli``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from envfence import slotted
from envfence.errors import ConfigurationError, EnvfenceError
from envfence.models import Finding
from envfence.recent import per_settings
from envfence.systemd import systemd_command, systemd_literal

from envfence_builtins.operations import schedule_dialects as dialects
from envfence_builtins.operations.schedule_hooks import share_host


SECTION = "schedule"
FORMATS = ("crontab", "systemd", "kubernetes")
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")


@slotted.frozen
class Entry:
    """One scheduled automation in one environment."""

    automation: str
    environment: str
    declared: str  #: the cron expression of the settings
    expression: str  #: what is installed: the declared one, staggered when asked
    offset: int = 0  #: minutes added by ``stagger``
    #: What envfence is asked to do, when it is not ``run <automation>`` (the health check's ``health --alert``).
    argv: tuple[str, ...] = ()


#: How often the health check of an environment with schedules runs (``[schedule] health_check``; false: never).
HEALTH_EVERY = "*/5 * * * *"
#: The name of the health check's entry (its unit, its CronJob).
HEALTH = "envfence-health"


def health_entries(session, environment: str | None = None) -> list[Entry]:
    """``envfence health --alert`` for an environment that schedules automations: a run that never happens is alerted.

    Without it, a missed run is noticed only by whoever remembers to
    schedule the check; one entry per environment, ``[schedule] health_check``
    (a cron expression, default every 5 minutes, or false).
    """
    every = options(session.settings).get("health_check", HEALTH_EVERY)
    if every is False or not entries(session, environment):
        return []
    env = environment or session.environment.name
    offset = health_offset(every, str(session.root.path), env, session.host.hostname)
    return [Entry(HEALTH, env, every, _stepped(shift_minutes(every, offset)), offset, argv=("health", "--alert"))]


def _stepped(expression: str) -> str:
    """``expression`` with a minute list that steps evenly through the hour written as ``a-59/n`` (``3-59/5``, not twelve numbers)."""
    fields = expression.split()
    minutes = [int(m) for m in fields[0].split(",")] if re.fullmatch(r"\d+(,\d+)+", fields[0]) else []
    if len(minutes) > 2 and 60 % (minutes[1] - minutes[0]) == 0 and minutes == list(range(minutes[0], 60, minutes[1] - minutes[0])):
        fields[0] = f"{minutes[0]}-59/{minutes[1] - minutes[0]}"
    return " ".join(fields)


def health_offset(every: str, project: str, environment: str, host: str) -> int:
    """Minutes the health check of ``environment`` moves by: deterministic, from a hash of the project, the environment and the host.

    Every host of a fleet, every project on a host and every environment of
    a project would otherwise ask the store and the alert channels at the
    same minute (``*/5`` fires at :00 everywhere). The offset stays within
    the expression's own period (``*/5``: 0 to 4), so the check runs as often
    as declared; an expression that fires every minute is left as it is.
    """
    from envfence.cron import parse

    minutes = sorted(parse(every).sets.minutes)
    if len(minutes) == 60:
        return 0
    # The smallest shift that maps the minute set onto itself is its period (60 when it has none).
    period = next(p for p in range(1, 61) if {(m + p) % 60 for m in minutes} == set(minutes))
    digest = hashlib.sha256("\0".join(("health", project, environment, host)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % period


def scheduled(session, environment: str | None = None) -> list[Entry]:
    """Everything the host scheduler is given for ``environment``: its automations, other plugins' commands, its health check."""
    return entries(session, environment) + plugin_entries(session, environment) + health_entries(session, environment)


def plugin_entries(session, environment: str | None = None) -> list[Entry]:
    """The envfence commands other plugins schedule (``scheduled_commands``: ``envfence backup`` ...), their times checked."""
    from envfence.cron import CronError, parse

    from envfence_builtins.operations.schedule_hooks import ScheduleHooks

    env = environment or session.environment.name
    scheduler = options(session.settings).get("target", "crontab")
    found = []
    for name, expression, argv in ScheduleHooks(session.plugins).scheduled_commands(session=session, environment=env).flat():
        try:
            parse(expression)
            dialects.check(expression, scheduler)
        except CronError:
            raise ConfigurationError(f"{session.settings.source}: the schedule of {name} in {env}: {expression!r} is no cron "
                                     "expression", 'write five fields, e.g. "0 2 * * *"') from None
        except dialects.Untranslatable as exc:
            raise ConfigurationError(f"{session.settings.source}: the schedule of {name} in {env}: {exc.message}",
                                     "choose a time the target scheduler can say") from None
        found.append(Entry(name, env, expression, expression, argv=tuple(argv)))
    return found


def _schedule_table():
    from envfence.settings_kinds import either, flag, text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "how the automations' schedules are handed to the host's scheduler")
    table.add("target", text(choices=FORMATS), "crontab", "the scheduler that runs the schedules")
    table.add("stagger", flag(), False, "move environments sharing a host apart by a few minutes")
    table.add("health_check", either(text(example=HEALTH_EVERY), flag()), HEALTH_EVERY,
              "when envfence health --alert runs (a cron expression), or false for never",
              check=lambda v: "must be a cron expression or false" if v is True else None)
    table.add("envfence", text(example="/opt/app/.venv/bin/envfence"), None, "the envfence program the scheduler runs")
    table.add("command", texts(example="envfence"), ["envfence"], "the command a Kubernetes CronJob runs")
    table.add("crontab", text(example="crontab"), "crontab", "the crontab program (ENVFENCE_CRONTAB overrides it)")
    table.add("image", text(example="registry.example/app:1.4"), None, "the image of the Kubernetes CronJobs")
    table.add("namespace", text(example="automations"), None, "the Kubernetes namespace of the CronJobs")
    return table


#: ``[schedule]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _schedule_table()


def options(settings) -> dict[str, Any]:
    """The ``[schedule]`` table with its defaults, with a :class:`ConfigurationError` naming a value of the wrong kind."""
    return dict(_options(settings))


@per_settings
def _options(settings) -> dict[str, Any]:
    values = TABLE.read(settings)
    table = {key: values[key] for key in TABLE.keys}
    _check_health_check(table["health_check"], table["target"], f"{settings.source}: {SECTION}")
    if not table["command"]:
        raise ConfigurationError(f"{settings.source}: {SECTION}.command: must be a list of strings", 'write command = ["envfence"]')
    return table


def _check_health_check(every, scheduler: str, where: str) -> None:
    """``[schedule] health_check``: false, or a cron expression the target scheduler can say exactly."""
    if every is False:
        return
    from envfence.cron import CronError, parse

    hint = 'write health_check = "*/5 * * * *", or false to schedule no health check'
    try:
        parse(every if isinstance(every, str) else "")
        dialects.check(every, scheduler)
    except CronError:
        raise ConfigurationError(f"{where}.health_check: {every!r} is no cron expression", hint) from None
    except dialects.Untranslatable as exc:
        raise ConfigurationError(f"{where}.health_check: {exc.message}", hint) from None


def envfence_command(settings) -> str:
    """The envfence program that host schedulers run: the setting, else this installation's."""
    configured = options(settings).get("envfence")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "envfence"
    return str(beside) if beside.exists() else "envfence"


def _fields(expression: str) -> list[str]:
    return _MACROS.get(expression.strip().lower(), expression.strip()).split()


def zone(session) -> _dt.tzinfo:
    """The zone the schedules fire in: ``CRON_TZ``, else the project's ``timezone``, else the machine's own."""
    from envfence.cron import project_zone

    return project_zone(session)


def zone_name(session) -> str | None:
    """The zone named by ``CRON_TZ`` or the project's ``timezone``, or None when the host's own zone applies."""
    zone(session)  # a name that is no zone is an error here, not a broken artefact
    return (session.environ.get("CRON_TZ") or str(session.settings.timezone or "")).strip() or None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _offsets(session) -> dict[str, int]:
    """Minutes each environment's schedules move by under ``stagger``: deterministic by name.

    Environments are taken in the order of a hash of their names (so the order
    of the settings file does not matter); each gets the smallest offset that
    no environment sharing a host with it took before. Environments on
    machines of their own keep their times.
    """
    names = sorted(session.settings.environments, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    offsets: dict[str, int] = {}
    for name in names:
        taken = {offsets[other] for other in offsets if share_host(session, name, other)}
        offsets[name] = next(i for i in range(len(names)) if i not in taken)
    return offsets


def shift_minutes(expression: str, offset: int) -> str:
    """``expression`` with every minute moved ``offset`` later within its hour."""
    fields = _fields(expression)
    if not offset:
        return " ".join(fields)
    from envfence.cron import parse

    minutes = parse(expression).sets.minutes
    if len(minutes) == 60:
        raise ConfigurationError(
            f"{expression!r} fires every minute: it cannot be staggered",
            "give it a minute field (e.g. '*/5' or '7'), or set stagger = false",
        )
    fields[0] = ",".join(str(m) for m in sorted({(m + offset) % 60 for m in minutes}))
    return " ".join(fields)


def entries(session, environment: str | None = None) -> list[Entry]:
    """The scheduled automations of ``environment`` (default the session's), staggered when asked."""
    env = environment or session.environment.name
    settings = session.settings
    offset = _offsets(session)[env] if options(settings).get("stagger") else 0
    found = []
    for automation in session.automations.values():
        expression = automation.schedule_for(env)
        if not expression or not automation.allows(env):
            continue
        if _CONTROL.search(automation.name):
            # Written into a crontab or a unit file, a line break would start a line of its own: a job nobody declared.
            raise ConfigurationError(
                f"{settings.source}: automations.{automation.name!r}: a scheduled automation's name holds a line break "
                "or another control character", "rename it: letters, digits, '-' and '_'")
        _refuse_control(session)
        found.append(Entry(automation.name, env, expression, shift_minutes(expression, offset), offset))
    return found


def _refuse_control(session) -> None:
    """The project path and the envfence program go into every crontab line and unit: a line break there is a line of its own."""
    for what, text in (("the project's path", str(session.root.path)), ("[schedule] envfence", envfence_command(session.settings))):
        if _CONTROL.search(text):
            raise ConfigurationError(
                f"{session.settings.source}: {what} {text!r} holds a line break or another control character; "
                "written into a crontab or a unit file it would start a line of its own",
                "move the project to a path without control characters")


def collisions(session) -> list[Finding]:
    """Entries of different environments sharing a host that still fire in the same minute once staggered."""
    from envfence.cron import parse

    every = [e for env in session.settings.environments for e in entries(session, env)]
    findings = []
    for i, a in enumerate(every):
        for b in every[i + 1 :]:
            if a.environment == b.environment or not share_host(session, a.environment, b.environment):
                continue
            when = parse(a.expression).common_time(parse(b.expression))
            if when is not None:
                findings.append(
                    Finding(
                        "SCHEDULE_STAGGER_COLLISION", "warning",
                        f"{a.automation} in {a.environment} and {b.automation} in {b.environment} still fire together "
                        f"once staggered, e.g. {when:%a %d %b %H:%M}",
                        "set [schedule] stagger = true, or give one of them another time", key=f"automations.{a.automation}.schedule",
                        plugin=SECTION,
                    )
                )
    return findings


def command_line(session, entry: Entry) -> list[str]:
    """What the host scheduler runs for ``entry``."""
    return [envfence_command(session.settings), "--env", entry.environment, "-q", *(entry.argv or ("run", entry.automation))]


def markers(session) -> tuple[str, str]:
    """The lines around envfence's block: one block per project and environment."""
    where = f"{session.root.path} {session.environment.name}"
    return f"# BEGIN envfence {where}", f"# END envfence {where}"


def crontab_block(session, inherited: str | None = None) -> str:
    """The crontab lines of the environment, between marker lines.

    ``inherited`` is the ``CRON_TZ`` the user's crontab sets above the block:
    the block then names its own zone (the machine's when none is declared),
    and hands the user's back to the lines after it.
    """
    begin, end = markers(session)
    root = cron_word(str(session.root.path))
    lines = [
        begin,
        f"# generated from {session.settings.source}; change it there and run "
        f"`envfence --env {session.environment.name} schedule install`",
    ]
    named, local = zone_name(session), _local_name(session)
    fires_in = named or (local if inherited else None)
    if fires_in:
        lines.append(f"CRON_TZ={fires_in}")
    elif inherited:
        lines.append(f"# times are in {inherited} (the CRON_TZ above); this machine's zone has no name to pin")
    else:
        lines.append(f"# times are in this machine's zone ({local or 'its local time'}); set timezone in the settings to pin one")
    for entry in scheduled(session):
        command = f"cd {root} && {' '.join(cron_word(word) for word in command_line(session, entry))}"
        lines.append(f"{dialects.crontab(entry.expression)} {command}")
    after = inherited or local
    if fires_in and after != fires_in:
        # cron reads CRON_TZ for every line after it: the lines after the block keep the zone they had.
        lines.append(f"CRON_TZ={after}" if after else "# lines after this block fire in the zone above (CRON_TZ)")
    lines.append(end)
    return "\n".join(lines) + "\n"


def cron_word(word: str) -> str:
    """``word`` as one sh word of a crontab command.

    cron cuts the command at a bare ``%`` (the rest goes to stdin) and its one
    escape, ``\\%``, stands for ``%`` (cronie ``do_command.c``): a backslash
    just before a percent sign cannot be written inside quotes. So each ``%``
    stands outside sh's quotes, escaped for cron, and the pieces between are
    quoted for sh.
    """
    if not word:
        return "''"
    return "\\%".join(shlex.quote(piece) if piece else "" for piece in word.split("%"))


def inherited_zone(before: str) -> str | None:
    """The ``CRON_TZ`` a crontab's lines above envfence's block set (the last one wins), or None."""
    found = None
    for line in before.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == "CRON_TZ":
            found = value.strip().strip("'\"") or None
    return found


def _local_name(session) -> str | None:
    """The machine's own zone by name (what cron uses without ``CRON_TZ``), or None when it has no name."""
    from envfence.cron import schedule_zone

    key = getattr(schedule_zone({k: v for k, v in session.environ.items() if k != "CRON_TZ"}), "key", None)
    return key if key and key != "localtime" else None


def split_crontab(text: str, begin: str, end: str) -> tuple[str, str | None, str]:
    """``(before, block or None, after)`` of a crontab around envfence's block."""
    lines = text.splitlines(keepends=True)
    stripped = [line.rstrip("\n") for line in lines]
    if begin not in stripped:
        return text, None, ""
    if stripped.count(begin) > 1 or stripped.count(end) > 1:
        # Replacing one block would leave the other firing: every run would happen twice.
        raise EnvfenceError(
            f"the installed crontab has envfence's block twice ({begin!r})",
            "edit it with `crontab -e` and keep one block (or none), then run `envfence schedule install` again",
        )
    first = stripped.index(begin)
    if end not in stripped[first:]:
        raise EnvfenceError(
            f"the installed crontab has {begin!r} but no end marker",
            "edit it with `crontab -e` and remove the partial block, then run `envfence schedule install` again",
        )
    last = stripped.index(end, first)
    return "".join(lines[:first]), "".join(lines[first : last + 1]), "".join(lines[last + 1 :])


def _crontab_program(session) -> list[str]:
    configured = os.environ.get("ENVFENCE_CRONTAB") or options(session.settings).get("crontab", "crontab")
    return shlex.split(configured)


#: Seconds the crontab program may take.
CRONTAB_TIMEOUT = 30.0


def _hung(program: list[str], what: str) -> EnvfenceError:
    return EnvfenceError(f"`{shlex.join(program)} {what}` did not answer within {CRONTAB_TIMEOUT:.0f}s",
                         "check the crontab program (is cron's spool locked?); nothing was changed")


def read_crontab(session) -> str:
    """The user's installed crontab ('' when there is none)."""
    import subprocess

    program = _crontab_program(session)
    try:
        done = subprocess.run([*program, "-l"], capture_output=True, timeout=CRONTAB_TIMEOUT)
    except FileNotFoundError:
        raise EnvfenceError(
            f"cannot run {program[0]!r}: no crontab program on this host",
            "install cron (Debian: apt install cron), or use `envfence schedule --format systemd`",
        ) from None
    except subprocess.TimeoutExpired:
        raise _hung(program, "-l") from None
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        if "no crontab" in stderr.lower():
            return ""
        raise EnvfenceError(f"`{shlex.join(program)} -l` failed: {stderr}", "check that cron is installed and you may use it")
    # A crontab is bytes in whatever encoding its lines were typed in (Latin-1 too): read so that writing gives them back.
    return done.stdout.decode("utf-8", "surrogateescape")


def write_crontab(session, text: str) -> None:
    """Replace the user's crontab with ``text`` (crontab installs it in one step)."""
    import subprocess

    program = _crontab_program(session)
    try:
        done = subprocess.run([*program, "-"], input=text.encode("utf-8", "surrogateescape"), capture_output=True,
                              timeout=CRONTAB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise _hung(program, "-") from None
    if done.returncode != 0:
        raise EnvfenceError(
            f"`{shlex.join(program)} -` refused the new crontab: {done.stderr.decode('utf-8', 'replace').strip()}",
            "nothing was changed; check the schedule with `envfence schedule`",
        )


def merged(current: str, block: str | None, begin: str, end: str) -> str:
    """``current`` with envfence's block replaced by ``block`` (removed when None)."""
    before, _, after = split_crontab(current, begin, end)
    if block is None:
        return before + after
    if before and not before.endswith("\n"):
        before += "\n"
    return before + block + after


def _distinct(session, naming, kind: str) -> list[Entry]:
    """The entries, when each gets a name of its own: two automations under one name would leave one never scheduled."""
    found = scheduled(session)
    names: dict[str, Entry] = {}
    for entry in found:
        other = names.setdefault(naming(entry), entry)
        if other != entry:  # an automation may even be called like the health check: still two jobs
            raise ConfigurationError(
                f"{session.settings.source}: {_what(other)} and {_what(entry)} would share the {kind} "
                f"name {naming(entry)!r}; one would replace the other", "rename the automation")
    return found


def _what(entry: Entry) -> str:
    """How an error names ``entry``: the automation, or the health check."""
    return "the health check ([schedule] health_check)" if entry.argv else f"automation {entry.automation!r}"


def unit_name(entry: Entry) -> str:
    """``envfence-<environment>-<automation>``, safe as a unit name."""
    safe = re.sub(r"[^A-Za-z0-9:_.-]", "_", f"envfence-{entry.environment}-{entry.automation}")
    return safe


def limits(session, entry: Entry) -> Any:
    """The ``[resources]`` of ``entry``'s environment for an automation's run; none for envfence's own entries (health)."""
    from envfence.resources import Limits, limits_for

    return Limits() if entry.argv else limits_for(session.settings, entry.environment)


def systemd_units(session) -> dict[str, str]:
    """File name -> content: a service and a timer per scheduled automation (the service under its environment's limits)."""
    from envfence.resources import systemd_lines

    units = {}
    root = str(session.root.path)
    named = zone_name(session)
    for entry in _distinct(session, unit_name, "systemd unit"):
        name = unit_name(entry)
        about = systemd_literal(f"envfence: {entry.automation} in {entry.environment}")
        units[f"{name}.service"] = (
            "[Unit]\n"
            f"Description={about}\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"WorkingDirectory={systemd_literal(root)}\n"
            f"ExecStart={systemd_command(command_line(session, entry))}\n"
            + "".join(f"{line}\n" for line in systemd_lines(limits(session, entry)))
        )
        calendars = "".join(f"OnCalendar={c}\n" for c in dialects.on_calendar(entry.expression, named))
        units[f"{name}.timer"] = (
            "[Unit]\n"
            f"Description={about} ({entry.declared})\n\n"
            "[Timer]\n"
            f"{calendars}"
            "Persistent=true\n"
            f"Unit={name}.service\n\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        )
    return units


#: Kubernetes' limits: a CronJob's name leaves 11 characters for its Jobs' suffix; a label value is at most 63.
CRONJOB_NAME_LIMIT = 52
LABEL_VALUE_LIMIT = 63
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def _with_digest(original: str, safe: str, limit: int, trim: str) -> str:
    """``safe`` when it is ``original`` unchanged and short enough; else cut, with a digest of ``original`` so names stay distinct."""
    if safe == original and len(safe) <= limit:
        return safe
    digest = hashlib.sha256(original.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    head = safe[: limit - len(digest) - 1].rstrip(trim)
    return f"{head}-{digest}" if head else digest


def dns_label(text: str, limit: int = CRONJOB_NAME_LIMIT) -> str:
    """``text`` as an RFC 1123 label (``[a-z0-9]([-a-z0-9]*[a-z0-9])?``) of at most ``limit`` characters."""
    safe = _DNS_LABEL.sub("-", text.lower()).strip("-")
    return _with_digest(text, safe, limit, "-")


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value: 63 characters at most, ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    if _LABEL_VALUE.fullmatch(text) and len(text) <= LABEL_VALUE_LIMIT:
        return text
    safe = _NOT_IN_LABEL_VALUE.sub("-", text).strip("-_.")
    return _with_digest(text, safe, LABEL_VALUE_LIMIT, "-_.")


def cronjob_name(entry: Entry) -> str:
    """``<automation>-<environment>`` as a CronJob name: an RFC 1123 label of at most 52 characters."""
    return dns_label(f"{entry.automation}-{entry.environment}")


def cronjobs(session) -> dict[str, Any]:
    """A Kubernetes ``List`` of CronJobs (``concurrencyPolicy: Forbid``), one per scheduled automation, with its ``resources``."""
    from envfence.resources import kubernetes_resources

    table = options(session.settings)
    image = table.get("image")
    if not image:
        raise ConfigurationError(
            f"{session.settings.source}: [schedule] image is needed for Kubernetes",
            'name the image that holds the project: [schedule] image = "registry.example/app:1.4"',
        )
    program = list(table.get("command", ["envfence"]))
    if table.get("namespace") and dns_label(table["namespace"], LABEL_VALUE_LIMIT) != table["namespace"]:
        raise ConfigurationError(f"{session.settings.source}: [schedule] namespace {table['namespace']!r} is no Kubernetes "
                                 "namespace name", "use lower-case letters, digits and '-', at most 63 characters")
    named = zone_name(session)
    items = []
    for entry in _distinct(session, cronjob_name, "Kubernetes CronJob"):
        labels = {"app.kubernetes.io/managed-by": "envfence", "envfence/environment": label_value(entry.environment),
                  "envfence/automation": label_value(entry.automation)}
        metadata: dict[str, Any] = {"name": cronjob_name(entry), "labels": labels}
        if table.get("namespace"):
            metadata["namespace"] = table["namespace"]
        container = {
            "name": "envfence",
            "image": image,
            "command": [*program, "--env", entry.environment, "-q", *(entry.argv or ("run", entry.automation))],
            "env": [{"name": session.settings.environment_variable, "value": entry.environment}],
        }
        container.update({"resources": resources} if (resources := kubernetes_resources(limits(session, entry))) else {})
        items.append({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": metadata,
            "spec": {
                "schedule": dialects.kubernetes(entry.expression),
                **({"timeZone": named} if named else {}),  # without it the controller's zone applies: UTC by default
                "concurrencyPolicy": "Forbid",
                "jobTemplate": {"metadata": {"labels": labels}, "spec": {"template": {
                    "metadata": {"labels": labels},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }}},
            },
        })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def target(session) -> str:
    """The scheduler that runs the schedules (``[schedule] target``, default ``crontab``): its dialect and firing times apply.

    :raises ConfigurationError: ``target`` is not one of the schedulers (naming the file and the key).
    """
    return TABLE.read(session.settings)["target"]


def unsupported(session) -> list[Finding]:
    """An error for each schedule the configured target cannot say exactly, naming the target and what it lacks."""
    findings = []
    for env in session.settings.environments:
        for entry in entries(session, env):
            try:
                dialects.check(entry.expression, target(session))
            except dialects.Untranslatable as exc:
                findings.append(Finding("SCHEDULE_UNSUPPORTED", "error", f"automations.{entry.automation} in {env}: {exc.message}",
                                        exc.hint, key=f"automations.{entry.automation}.schedule", plugin=SECTION))
    return findings


def _changes_of_time(tz: _dt.tzinfo, start: _dt.datetime, days: int = 366) -> list[_dt.datetime]:
    """The hours (UTC) at whose end ``tz`` changes its offset, within ``days`` of ``start``."""
    hour = _dt.timedelta(hours=1)
    moment = start.astimezone(_dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    found = []
    for _ in range(days):
        if moment.astimezone(tz).utcoffset() != (moment + _dt.timedelta(days=1)).astimezone(tz).utcoffset():
            found += [moment + i * hour for i in range(24)
                      if (moment + i * hour).astimezone(tz).utcoffset() != (moment + (i + 1) * hour).astimezone(tz).utcoffset()]
        moment += _dt.timedelta(days=1)
    return found


def _between(cron, begin: _dt.datetime, end: _dt.datetime, tz: _dt.tzinfo, how: str) -> list[_dt.datetime]:
    found = []
    for moment in cron.firings(begin.astimezone(tz), how):
        if moment.astimezone(_dt.timezone.utc) >= end:
            return found
        found.append(moment)
    return found


def daylight_saving(session, now: _dt.datetime | None = None) -> list[Finding]:
    """An info finding for each schedule the target fires otherwise than cron at the zone's next change of time."""
    from envfence.cron import parse

    how = target(session)
    if how == "crontab":
        return []
    tz, findings = zone(session), []
    changes = _changes_of_time(tz, now or _dt.datetime.now(_dt.timezone.utc))
    for env in session.settings.environments:
        for entry in entries(session, env):
            cron = parse(entry.expression)
            for change in changes:
                window = (change - _dt.timedelta(hours=3), change + _dt.timedelta(hours=4))
                ours, cron_s = (_between(cron, *window, tz, h) for h in (how, "crontab"))
                if [t.astimezone(_dt.timezone.utc) for t in ours] != [t.astimezone(_dt.timezone.utc) for t in cron_s]:
                    findings.append(Finding(
                        "SCHEDULE_DAYLIGHT_SAVING", "info",
                        f"automations.{entry.automation} in {env}: on {change.astimezone(tz):%Y-%m-%d}, when the clocks change, {how} "
                        f"fires at {_times(ours)}, where cron would fire at {_times(cron_s)}",
                        "see the daylight-saving rows of 'Schedulers and their dialects' in docs/operations.md",
                        key=f"automations.{entry.automation}.schedule", plugin=SECTION))
                    break  # one change of time says it for the schedule
    return findings


def _times(moments: list[_dt.datetime]) -> str:
    shown = ", ".join(f"{m:%H:%M %Z}" for m in moments[:4])
    return (shown + f" and {len(moments) - 4} more" if len(moments) > 4 else shown) or "no time"
