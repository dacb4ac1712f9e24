"""The ``advise`` plugin's rules: recommendations from an environment's history and schedules.

Durations that grow, limits that flap or are never approached, business
metrics that shift, retries that never help, a disk that fills, firings that
pile up on one host; each an :class:`~envfence_builtins.operations.advice_hooks.Advice`.
:func:`advise` runs them all for one environment (the plugin's answer to the
``advice`` hook). The ``[advise]`` table: see :mod:`envfence_builtins.operations.advise`.
"""

from __future__ import annotations

import datetime as _dt

from envfence.errors import ConfigurationError

from envfence_builtins.operations.advice_hooks import Advice


DEFAULTS = {"growth": 0.4, "pile_up": 3, "disk_days": 30}
#: A limit never reached above this fraction of it in the window was never approached.
NEVER_APPROACHED = 0.25
#: Crossing back and forth this many times in the window is flapping.
FLAPS = 4


def options(settings) -> dict[str, float]:
    """``[advise]`` growth, pile_up and disk_days, checked."""
    from envfence_builtins.operations.analysis import ADVISE_TABLE

    values = ADVISE_TABLE.read(settings)
    return {key: values[key] for key in DEFAULTS}


def advise(session, now: _dt.datetime | None = None) -> list[Advice]:
    """Every recommendation for the session's environment from its history and schedules (the ``advice`` hook answers the rest).

    The history's analysis at ``now`` is the session's (:func:`~envfence_builtins.operations.analysis.analyse`
    keeps it), so the report and its advice share one.
    """
    from envfence_builtins.operations.analysis import analyse

    now = now or _dt.datetime.now(_dt.timezone.utc)
    opts = options(session.settings)
    data = analyse(session, now)
    env = session.environment.name
    found: list[Advice] = []
    runs_of: dict[str, list] = {}
    for run in data["runs"]:  # grouped once: thousands of automations stay linear
        runs_of.setdefault(run.automation, []).append(run)
    for name, entry in data["automations"].items():
        found += _duration(env, name, entry, opts, data["window_days"])
        found += _limits(env, name, entry, runs_of.get(name, []))
        found += _metrics(env, name, entry)
        found += _retries(env, name, runs_of.get(name, []))
    found += _disk(env, data["disk"], opts)
    found += _pile_up(session, opts)
    return found


def _duration(env: str, name: str, entry, opts, days: float) -> list[Advice]:
    series = entry["series"].get("duration")
    if series is None:
        return []
    found = []
    growth = series.growth()
    where = f"[thresholds.{name}.{env}] max_duration"
    if growth is not None and growth >= opts["growth"]:
        start, end = series.trend.change()
        forecast = f"; at this rate it reaches max_duration {series.forecast['limit']:g}s on {series.forecast['at'][:10]}" \
            if series.forecast and series.forecast["days"] > 0 else ""
        found.append(Advice(
            "DURATION_GROWING", env, name,
            f"{name}'s duration grew {growth:.0%} in {days:g} days ({start:.1f}s -> {end:.1f}s by its trend over {series.count} runs){forecast}",
            f"see where the time goes: envfence --env {env} report --since {days:g}d (its steps); or raise {where}",
            {"growth": round(growth, 3), "start": round(start, 3), "end": round(end, 3), "runs": series.count}))
    if series.shift is not None and series.shift[1] > series.shift[0]:
        before, after = series.shift
        found.append(Advice(
            "DURATION_STEP_CHANGE", env, name,
            f"{name}'s duration jumped from a median of {before:.1f}s to {after:.1f}s over its last runs",
            f"look at what changed then (envfence --env {env} status --automation {name}); {where} if the new level is right",
            {"before": round(before, 3), "after": round(after, 3)}))
    return found


def _limits(env: str, name: str, entry, runs) -> list[Advice]:
    """Limits that flap (crossed back and forth) or that were never approached."""
    limit = entry["limits"]
    found = []
    for key, series_name, unit in (("max_duration", "duration", "s"), ("max_memory", "peak_memory_kb", " KB")):
        bound = getattr(limit, key)
        series = entry["series"].get(series_name)
        if bound is None or series is None:
            continue
        values = _values(runs, name, series_name)
        over = [v > bound for v in values]
        flips = sum(a != b for a, b in zip(over, over[1:]))
        where = f"[thresholds.{name}.{env}] {key}"
        if flips >= FLAPS:
            suggested = _round_up(series.baseline.high)
            found.append(Advice(
                "THRESHOLD_FLAPS", env, name,
                f"{key} {bound:g}{unit} of {name} flaps: {sum(over)} of {len(values)} runs crossed it, {flips} times back and forth "
                f"(median {series.baseline.median:g}{unit}, band up to {series.baseline.high:g}{unit})",
                f"set {where} = {suggested:g} (above the usual band), or make the job steadier",
                {"crossed": sum(over), "runs": len(values), "flips": flips, "suggested": suggested}))
        elif values and max(values) < NEVER_APPROACHED * bound:
            suggested = _round_up(max(series.baseline.high, max(values)) * 2)
            found.append(Advice(
                "THRESHOLD_NEVER_APPROACHED", env, name,
                f"{key} {bound:g}{unit} of {name} was never approached: the highest of {len(values)} runs was {max(values):g}{unit} "
                f"({max(values) / bound:.0%} of it), so a run several times slower than usual goes unnoticed",
                f"tighten {where} = {suggested:g}", {"highest": max(values), "limit": bound, "suggested": suggested}))
    return found


def _values(runs, name: str, series_name: str) -> list[float]:
    mine = sorted((r for r in runs if r.automation == name and r.status in ("succeeded", "failed")), key=lambda r: r.started_at)
    if series_name == "duration":
        return [r.duration for r in mine]
    return [float(r.metrics[series_name]) for r in mine if r.metrics.get(series_name) is not None]


def _round_up(value: float) -> float:
    """A round number just above ``value`` (two significant digits)."""
    import math

    if value <= 0:
        return 1.0
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale) * scale


def _metrics(env: str, name: str, entry) -> list[Advice]:
    """A business metric that fell to a new level, or bounds worth setting."""
    limit = entry["limits"]
    bounded = {metric for metric, _, _ in limit.metric_bounds}
    found = []
    for key, series in entry["series"].items():
        if not key.startswith("metric:") or series.shift is None:
            continue
        metric = key.split(":", 1)[1]
        before, after = series.shift
        direction = "fell" if after < before else "rose"
        action = (f"find out why, then keep it watched: [thresholds.{name}.{env}] min_{metric} = {_round_down(min(before, after) or 1):g}"
                  if metric not in bounded else f"find out why (envfence --env {env} status --automation {name})")
        found.append(Advice("METRIC_SHIFT", env, name,
                            f"{name}'s {metric} {direction} from a median of {before:g} to {after:g} over its last runs",
                            action, {"metric": metric, "before": before, "after": after}))
    return found


def _round_down(value: float) -> float:
    return float(max(1, int(value * 0.5)))


def _retries(env: str, name: str, runs) -> list[Advice]:
    """Runs that retried and failed all the same: the retries cost time and never helped."""
    retried = [r for r in runs if (r.metrics.get("retries") or 0) > 0 and r.status in ("succeeded", "failed")]
    if len(retried) < 3 or any(r.status == "succeeded" for r in retried):
        return []
    classes = sorted({r.error_class for r in retried if r.error_class})
    tries = sum(r.metrics["retries"] for r in retried)
    return [Advice("RETRIES_NEVER_HELP", env, name,
                   f"{name} retried in {len(retried)} runs ({tries} retries) and every one of them failed"
                   + (f" ({', '.join(classes)})" if classes else ""),
                   "fix the cause the retries hide, or stop retrying that call (ctx.retry only where a repeat can succeed)",
                   {"runs": len(retried), "retries": tries, "error_classes": classes})]


def _disk(env: str, disk, opts) -> list[Advice]:
    if disk is None or disk.forecast is None or disk.forecast["days"] > opts["disk_days"]:
        return []
    rate = -disk.trend.slope_per_day / 2**20
    return [Advice("DISK_FILLING", env, None,
                   f"the disk under the {env} tree loses {rate:.0f} MiB/day and fills in {disk.forecast['days']:g} day(s) "
                   f"({disk.forecast['at'][:10]}) at this rate ({disk.last / 2**30:.1f} GiB free now)",
                   f"free space or grow the disk; keep fewer backups (envfence --env {env} backup --keep 3); "
                   "[health] min_free_disk warns before it is full",
                   {"mib_per_day": round(rate, 1), "days": disk.forecast["days"], "free_bytes": disk.last})]


def _pile_up(session, opts) -> list[Advice]:
    """Automations of this environment that fire in the same minute (its host runs them all at once)."""
    from envfence.automations import installed_schedule
    from envfence.cron import CronError, parse, project_zone

    env = session.environment.name
    try:
        tz = project_zone(session)
        scheduled = {a.name: installed_schedule(session, a) for a in session.automations.values() if a.allows(env)}
    except ConfigurationError:
        return []  # check reports bad schedules
    start = _dt.datetime.now(tz).replace(second=0, microsecond=0)
    minutes: dict[_dt.datetime, list[str]] = {}
    for name, expression in scheduled.items():
        if not expression:
            continue
        try:
            cron = parse(expression)
        except CronError:
            continue  # check reports it
        moment = start
        for _ in range(200):  # a day of firings is enough to see a pile; an every-minute schedule stops here
            moment = cron.next_after(moment)
            if moment - start > _dt.timedelta(days=1):
                break
            minutes.setdefault(moment, []).append(name)
    worst = max(minutes.items(), key=lambda item: len(item[1]), default=(None, []))
    if len(worst[1]) < opts["pile_up"]:
        return []
    names = sorted(set(worst[1]))
    return [Advice("SCHEDULE_PILE_UP", env, None,
                   f"{len(names)} automations fire at {worst[0]:%H:%M} on the {env} host: {', '.join(names)}",
                   "spread their schedule minutes in [automations.<name>] schedule, or set [schedule] stagger = true "
                   "for environments sharing the host",
                   {"at": f"{worst[0]:%H:%M}", "automations": names})]
