"""The ``health`` plugin's checks and their Nagios form: automations overdue or failing, locks held too long, the disk, memory pressure, forecasts, and other plugins' checks.

:func:`run_checks` gives every :class:`~envfence_builtins.operations.health_hooks.Check`
of an environment; :func:`performance` the Nagios performance data. The hooks
are in :mod:`envfence_builtins.operations.health`, the commands in ``health_cli``.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from pathlib import Path

from envfence import slotted
from envfence.errors import ConfigurationError
from envfence.models import utcnow

from envfence_builtins.operations.health_hooks import Check


SECTION = "health"
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")  #: index is the Nagios exit code
_SEVERITY = {"warning": "WARNING", "critical": "CRITICAL"}
HISTORY_LIMIT = 1000


def worst(checks) -> str:
    """The most severe state (UNKNOWN ranks below CRITICAL, above WARNING, as Nagios ranks them)."""
    order = {"OK": 0, "WARNING": 1, "UNKNOWN": 2, "CRITICAL": 3}
    return max((c.state for c in checks), key=order.__getitem__, default="OK")


def _health_table():
    from envfence.settings_kinds import duration, duration_problem, either, number, text, whole
    from envfence.settings_tables import Table

    table = Table(SECTION, "what envfence health checks, and when a check warns")
    table.add("max_lock_age", duration(example="6h"), "6h", "a run lock older than this is CRITICAL", check=duration_problem)
    table.add("min_free_disk", either(text(example="10%"), whole(minimum=0)), "10%",
              "free disk below this (a percentage such as 10% or a size such as 2GB) is CRITICAL")
    table.add("forecast_days", number(minimum=0, example=7), 7, "a forecast crossing this close is a WARNING")
    table.add("max_memory_pressure", number(minimum=0, exclusive=True, example=10), 10,
              "percent of the last minute with tasks stalled on memory that warns (twice it is CRITICAL), at most 100",
              check=lambda v: f"{v!r} is more than 100 percent" if isinstance(v, (int, float)) and v > 100 else None)
    return table


#: ``[health]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _health_table()


def _options(settings) -> tuple[_dt.timedelta, str]:
    from envfence.thresholds import parse_duration

    table = TABLE.read(settings)
    where = f"{settings.source}: {SECTION}"
    max_lock = parse_duration(table["max_lock_age"], f"{where}.max_lock_age")
    free = str(table["min_free_disk"])
    if not re.match(r"^\s*\d+(\.\d+)?\s*(%|kb|mb|gb)?\s*$", free, re.I):
        raise ConfigurationError(f"{where}.min_free_disk: {free!r} is not a size or a percentage", 'write "10%" or "2GB"')
    return max_lock, free


def automation_checks(session, now: _dt.datetime) -> list[Check]:
    """Thresholds, missed runs and the last status of every automation that may run here."""
    from envfence.cli.automations import automation_state
    from envfence.thresholds import evaluate

    found = []
    env = session.environment.name
    for automation in session.automations.values():
        if not automation.allows(env):
            continue
        runs = session.plugins.run_history(session=session, automation=automation.name, limit=HISTORY_LIMIT).first
        if runs is None:
            found.append(Check(f"{automation.name}.history", "UNKNOWN", "no plugin keeps run history", automation.name))
            continue
        pause = automation_state(session, automation).get("paused")  # the maintenance plugin's, when it is loaded
        if pause is not None:
            found.append(Check(f"{automation.name}.paused", "OK", f"{automation.name} is paused until "
                               f"{pause.get('until') or 'resumed'} (by {pause.get('by')}: {pause.get('reason')})",
                               automation.name, "paused", limit=pause.get("until")))
        for crossing in evaluate(session, automation, runs, now):
            if crossing.check == "expected_every" and crossing.crossed and pause is not None:
                found.append(Check(f"{automation.name}.{crossing.check}", "OK",
                                   f"{automation.name} is paused (until {pause.get('until') or 'resumed'}: {pause.get('reason')})",
                                   automation.name, crossing.check))
                continue
            state = _SEVERITY[crossing.severity] if crossing.crossed else "OK"
            found.append(Check(f"{automation.name}.{crossing.check}", state, crossing.message, automation.name, crossing.check,
                               crossing.value, crossing.limit, crossing.run_id, crossing.severity))
    return found


def forecast_days(settings) -> float:
    """``[health] forecast_days``: a forecast crossing this close is a WARNING (default 7)."""
    return float(TABLE.read(settings)["forecast_days"])


def forecast_checks(session, now: _dt.datetime) -> list[Check]:
    """WARNING when a trend reaches a limit within ``forecast_days``: an automation's ``max_duration``, or a full disk.

    Trends are Theil–Sen lines over ``[advise] window`` of history (see
    :mod:`envfence_builtins.operations.analysis`); nothing is said without
    enough runs to draw one.
    """
    from envfence_builtins.operations.analysis import analyse

    horizon = forecast_days(session.settings)
    found = []
    data = analyse(session, now)
    for name, entry in data["automations"].items():
        duration = entry["series"].get("duration")
        if duration is None or duration.forecast is None or duration.forecast["days"] <= 0:
            continue  # no limit, no rise; or crossed already, which the max_duration check says
        near = duration.forecast["days"] <= horizon
        found.append(Check(f"{name}.forecast_duration", "WARNING" if near else "OK",
                           f"{name}'s duration is rising {duration.trend.slope_per_day:+.2f}s/day and reaches its max_duration "
                           f"{duration.forecast['limit']:g}s in {duration.forecast['days']:g} day(s) ({duration.forecast['at']})",
                           name, "forecast_duration", duration.forecast["days"], horizon, severity="warning"))
    disk = data["disk"]
    if disk is not None and disk.forecast is not None:
        days = disk.forecast["days"]
        found.append(Check("disk.forecast", "WARNING" if days <= horizon else "OK",
                           f"the disk under the tree loses {-disk.trend.slope_per_day / 2**20:.0f} MiB/day and fills in "
                           f"{days:g} day(s) ({disk.forecast['at']}) at this rate", value=days, limit=horizon, severity="warning"))
    return found


def lock_checks(session, max_age: _dt.timedelta, now: _dt.datetime) -> list[Check]:
    """A lock held longer than ``max_age`` is CRITICAL; one held by a live run is fine."""
    import fcntl

    from envfence.runner import lock_holder

    locks = session.paths.base / "locks"
    found = []
    for path in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                continue  # nobody holds it
            except BlockingIOError:
                pass
        pid, since = lock_holder(path)
        try:
            age = now - _dt.datetime.fromisoformat(since)
        except ValueError:
            found.append(Check(f"lock.{path.stem}", "UNKNOWN", f"{path.stem}'s lock is held by pid {pid}, since an unreadable time"))
            continue
        state = "CRITICAL" if age > max_age else "OK"
        found.append(Check(f"lock.{path.stem}", state, f"{path.stem}'s lock is held by pid {pid} since {since} ({_human(age)}; "
                           f"allowed {_human(max_age)})", path.stem, "max_lock_age", age.total_seconds(), max_age.total_seconds()))
    return found


def disk_check(session, minimum: str) -> Check:
    """Free space on the tree's file system against ``minimum`` (a percentage or a size)."""
    from envfence.thresholds import parse_size

    base = session.paths.base
    where = base if base.exists() else session.root.path
    usage = shutil.disk_usage(where)
    if minimum.strip().endswith("%"):
        limit = usage.total * float(minimum.strip()[:-1]) / 100
    else:
        limit = parse_size(minimum, "health.min_free_disk") * 1024
    state = "CRITICAL" if usage.free < limit / 2 else "WARNING" if usage.free < limit else "OK"
    return Check("disk", state, f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB under {where} "
                 f"(minimum {minimum})", value=usage.free, limit=int(limit))


#: Linux's pressure stall information for memory (absent on other systems, and where the kernel was booted with psi=0).
PSI_MEMORY = Path("/proc/pressure/memory")


def memory_pressure() -> dict[str, float] | None:
    """``some``'s and ``full``'s ``avg60`` from :data:`PSI_MEMORY` (percent of the last minute stalled on memory), or None."""
    try:
        text = PSI_MEMORY.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):  # no PSI here, or disabled (EOPNOTSUPP)
        return None
    found = {}
    for line in text.splitlines():
        kind, _, fields = line.partition(" ")
        values = dict(field.split("=", 1) for field in fields.split() if "=" in field)
        try:
            found[kind] = float(values["avg60"])
        except (KeyError, ValueError):
            continue
    return found if "some" in found else None


def memory_check(session, maximum: float) -> Check:
    """Memory pressure on the host (Linux PSI, ``some avg60``) against ``[health] max_memory_pressure`` (critical at twice it)."""
    pressure = memory_pressure()
    if pressure is None:
        return Check("memory", "OK", f"memory pressure not measured: {PSI_MEMORY} is not available on this system")
    some = pressure["some"]
    state = "CRITICAL" if some >= min(2 * maximum, 100) else "WARNING" if some >= maximum else "OK"
    full = f", {pressure['full']:g}% with every task stalled" if "full" in pressure else ""
    return Check("memory", state, f"tasks stalled on memory {some:g}% of the last minute{full} "
                 f"(maximum {maximum:g}%)", value=some, limit=maximum)


def max_memory_pressure(settings) -> float:
    """``[health] max_memory_pressure``: the percent of the last minute stalled on memory that warns (default 10)."""
    return float(TABLE.read(settings)["max_memory_pressure"])


def plugin_checks(session) -> list[Check]:
    """The checks other plugins add (``health_checks``: the audit chain ...); a plugin that raised is UNKNOWN, by name."""
    from envfence_builtins.operations.health_hooks import HealthHooks

    result = HealthHooks(session.plugins).health_checks(session=session)
    found = [Check(str(c["name"]), str(c["state"]), str(c["message"]), value=c.get("value"), limit=c.get("limit"))
             for c in result.flat() if c.get("state") in STATES]
    found += [Check(f"plugin.{error.plugin}", "UNKNOWN", f"the {error.plugin} plugin's check failed: {session.redactor()(str(error))}")
              for error in result.errors]
    return found


def run_checks(session, now: _dt.datetime | None = None) -> list[Check]:
    """Every check of the session's environment; a check that cannot run is UNKNOWN, not a crash."""
    now = now or utcnow()
    if session.paths is None:
        return [Check("tree", "UNKNOWN", "no plugin computes the environment's directories")]
    found: list[Check] = []
    try:
        max_lock, free = _options(session.settings)
    except ConfigurationError as exc:
        return [Check("settings", "UNKNOWN", f"{exc.message} ({exc.hint})")]
    for name, step in (("automations", lambda: automation_checks(session, now)),
                       ("forecasts", lambda: forecast_checks(session, now)),
                       ("locks", lambda: lock_checks(session, max_lock, now)),
                       ("disk", lambda: [disk_check(session, free)]),
                       ("memory", lambda: [memory_check(session, max_memory_pressure(session.settings))]),
                       ("plugins", lambda: plugin_checks(session))):
        try:
            found.extend(step())
        except ConfigurationError as exc:
            found.append(Check(name, "UNKNOWN", f"{exc.message} ({exc.hint})"))
        except OSError as exc:
            found.append(Check(name, "UNKNOWN", f"cannot check {name}: {exc}"))
    return found


@slotted.frozen
class Perf:
    """One performance datum, as monitoring graphs it: ``'label'=value[UOM];warn;crit;min;max``."""

    label: str
    value: float
    uom: str = ""  #: ``s``, ``%``, ``B`` or none
    warn: str = ""  #: a Nagios threshold range (``10:`` alerts below 10)
    crit: str = ""
    min: float | None = None
    max: float | None = None

    def __str__(self) -> str:
        label = _CONTROL.sub("_", self.label.replace("=", "_").replace("|", "/")).replace("'", "''")
        limits = ";".join([self.warn, self.crit, _number(self.min), _number(self.max)]).rstrip(";")
        return f"'{label}'={_number(self.value)}{self.uom}" + (f";{limits}" if limits else "")


def _number(value: float | None) -> str:
    """A number as plugins write them: no exponent, at most three decimals."""
    if value is None:
        return ""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def nagios_text(text: str) -> str:
    """``text`` safe in a plugin's output: ``|`` would start perfdata, a line break a line of its own."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("|", "/"))


def performance(session, now: _dt.datetime | None = None) -> list[Perf]:
    """Durations, error rates and ages since the last run of each automation that may run here, free disk, memory pressure.

    A figure that cannot be read is left out: the checks say why.
    """
    from envfence.thresholds import limits

    now = now or utcnow()
    found: list[Perf] = []
    for automation in session.automations.values():
        if not automation.allows(session.environment.name):
            continue
        runs = session.plugins.run_history(session=session, automation=automation.name, limit=HISTORY_LIMIT).first or []
        try:
            limit = limits(session.settings, automation.name)
        except ConfigurationError:
            continue  # the automation checks report it
        found.extend(_automation_perf(automation.name, runs, limit, now))
    if session.paths is not None:
        try:
            found.append(_disk_perf(session))
        except (OSError, ConfigurationError):
            pass
    found.extend(_memory_perf(session))
    return found


def _memory_perf(session) -> list[Perf]:
    """``memory_pressure``: ``some avg60`` in percent, warning and critical as the check has them; none without PSI."""
    pressure = memory_pressure()
    try:
        maximum = max_memory_pressure(session.settings)
    except ConfigurationError:
        return []  # the check says why
    if pressure is None:
        return []
    return [Perf("memory_pressure", pressure["some"], "%", _number(maximum), _number(min(2 * maximum, 100)), 0, 100)]


def _automation_perf(name: str, runs, limit, now: _dt.datetime) -> list[Perf]:
    found = []
    if runs:
        found.append(Perf(f"{name} last_run_age", max((now - runs[0].started_at).total_seconds(), 0.0), "s", min=0))
    finished = [r for r in runs if r.status in ("succeeded", "failed")]
    if finished:
        found.append(Perf(f"{name} duration", finished[0].duration, "s", _number(limit.max_duration), min=0))
        window = finished[: limit.error_window]
        rate = 100 * sum(r.status == "failed" for r in window) / len(window)
        crit = _number(None if limit.max_error_rate is None else 100 * limit.max_error_rate)
        found.append(Perf(f"{name} error_rate", rate, "%", crit=crit, min=0, max=100))
    return found


def _disk_perf(session) -> Perf:
    _, minimum = _options(session.settings)
    check = disk_check(session, minimum)
    total = shutil.disk_usage(session.paths.base if session.paths.base.exists() else session.root.path).total
    return Perf("disk_free", check.value, "B", f"{check.limit}:", f"{check.limit // 2}:", 0, total)


def summary(environment: str, checks) -> str:
    """The first line: ``CRITICAL - production: 1 critical, 2 ok``."""
    state = worst(checks)
    counts = [f"{sum(c.state == s for c in checks)} {s.lower()}" for s in ("CRITICAL", "WARNING", "UNKNOWN", "OK")
              if any(c.state == s for c in checks)]
    first = next((c.message for c in checks if c.state == state and state != "OK"), "")
    return f"{state} - {environment}: {', '.join(counts) or 'nothing to check'}" + (f"; {first}" if first else "")


def _human(delta: _dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"
