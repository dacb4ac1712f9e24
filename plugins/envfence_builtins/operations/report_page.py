"""The page ``envfence report --html`` writes: charts and tables of a size that does not grow with the history.

Not a plugin: :mod:`envfence_builtins.operations.report_data` gathers the numbers,
this module draws and lays them out. Three rules hold whatever the history:

- **Labels are literal text.** matplotlib's mathtext is off, so an automation
  named ``math $\\nosuchmacro$`` is drawn as written, never parsed.
- **The page has a bounded size.** The busiest :data:`CHARTED` automations
  get a duration chart; tables show the top :data:`TABLE_ROWS` rows with a
  row counting the rest; a cell names at most :data:`NAMED` anomalies beside
  their count; a series longer than :data:`MAX_POINTS` is drawn as the
  median and range of equal time intervals. ``report --json`` keeps every
  number.
- **Axes fit the data.** A time axis spans the data's first to last moment
  (one day of data: that day), never matplotlib's default years around a
  single point.

The page reads on a phone: at 390 CSS pixels the tables stack their cells
(each with its column's name) and long names wrap, so nothing spills off the
screen.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Iterable

from envfence_builtins.operations.report_data import by_automation

#: Automations with a duration chart of their own: the busiest ones.
CHARTED = 12
#: Rows of a table before the rest are counted in one row.
TABLE_ROWS = 40
#: Anomalies named in a cell beside their count (the farthest from the band first).
NAMED = 5
#: Points in a drawn series before runs are grouped by time interval.
MAX_POINTS = 300
#: Characters of a name shown on a page or a chart before it is cut with "…".
NAME_CHARS = 80
_DAY = _dt.timedelta(days=1)


def short(name: str, limit: int = NAME_CHARS) -> str:
    """``name`` cut to ``limit`` characters, with "…" where it was cut."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def busiest(data: dict[str, Any]) -> list[str]:
    """Every automation, the most runs that ran to an end (all environments together, from the totals) first, then by name."""
    counts: dict[str, int] = {}
    for totals in data["totals"].values():
        for group in totals.groups:
            if group.status in ("succeeded", "failed"):
                counts[group.automation] = counts.get(group.automation, 0) + group.runs
    return sorted(counts, key=lambda name: (-counts[name], name))


# --- charts ---------------------------------------------------------------------------


def _svg(figure) -> str:
    import io

    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):].strip()  # drop the XML prologue and doctype: the SVG sits inside HTML


def _pyplot():
    # Missing, the CLI names the extra that brings it (envfence.extras).
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "envfence"  # the same data draws the same SVG
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, selectable
    matplotlib.rcParams["text.parse_math"] = False  # a name holding $...$ is text, not a formula
    matplotlib.rcParams["text.usetex"] = False
    return plt


def fit_time_axis(ax, first: _dt.datetime, last: _dt.datetime, whole_days: bool = False) -> None:
    """Span the data: ``first`` to ``last`` (padded a little), or the whole days they fall on."""
    import matplotlib.dates as mdates

    if whole_days:
        start = _dt.datetime.combine(first.date(), _dt.time(), first.tzinfo)
        end = _dt.datetime.combine(last.date(), _dt.time(), last.tzinfo) + _DAY
    else:
        pad = max((last - first) * 0.03, _dt.timedelta(minutes=30))
        start, end = first - pad, last + pad
    ax.set_xlim(start, end)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def thin(times: list[_dt.datetime], values: list[float]) -> list[tuple[_dt.datetime, float, float, float]]:
    """``(middle, median, low, high)`` of at most :data:`MAX_POINTS` equal time intervals (times in order)."""
    import statistics

    start, span = times[0], (times[-1] - times[0]) or _dt.timedelta(seconds=1)
    buckets: dict[int, list[float]] = {}
    for moment, value in zip(times, values):
        buckets.setdefault(min(MAX_POINTS - 1, int((moment - start) / span * MAX_POINTS)), []).append(value)
    width = span / MAX_POINTS
    return [(start + width * (i + 0.5), statistics.median(v), min(v), max(v)) for i, v in sorted(buckets.items())]


def _series(ax, times, values, colour, label: str, marker: str = ".") -> None:
    """Every point when there are few; the median and range per interval when there are many."""
    if len(times) <= MAX_POINTS:
        ax.plot(times, values, marker=marker, linestyle="-" if marker == "." else "none", color=colour, label=label)
        return
    points = thin(times, values)
    middles = [p[0] for p in points]
    ax.fill_between(middles, [p[2] for p in points], [p[3] for p in points], color=colour, alpha=0.2, linewidth=0)
    ax.plot(middles, [p[1] for p in points], color=colour, label=f"{label} (median per interval, range shaded)")


def charts(data: dict[str, Any], k: float, progress: Callable[[str], None] | None = None) -> list[tuple[str, str, str]]:
    """``(id, title, svg)`` for every chart of the page."""
    plt = _pyplot()
    envs = list(data["runs"])
    colours = {env: f"C{i % 10}" for i, env in enumerate(envs)}
    grouped = {env: by_automation(runs) for env, runs in data["runs"].items()}
    moments = [r.started_at for runs in data["runs"].values() for r in runs]
    step = progress or (lambda name: None)
    step("runs per day")
    result = [("runs-per-day", "Runs and failures per day, per environment", _runs_per_day(plt, data, envs, colours))]
    for name in busiest(data)[:CHARTED]:
        step(f"duration of {name}")
        runs = {env: grouped[env].get(name, []) for env in envs}
        result.append((f"duration-{name}", f"Duration of {short(name)}, with its anomaly band", _durations(plt, runs, colours, k)))
    step("error rates")
    result.append(("error-rates", "Error rates of the busiest automations, environments side by side",
                   _error_rates(plt, data["totals"], busiest(data)[:TABLE_ROWS], colours)))
    step("resources")
    result.append(("resources", "CPU time and peak memory per run", _resources(plt, data, envs, colours, moments)))
    step("findings")
    result.append(("findings", "check's findings per environment", _findings(plt, data, envs)))
    return result


def _runs_per_day(plt, data, envs, colours) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    every_day = []
    for env in envs:
        days: dict[_dt.date, list[int]] = {}  # from the history's totals per UTC day: every run, not the sample
        for group in data["totals"][env].groups:
            if group.status in ("succeeded", "failed"):
                counts = days.setdefault(_dt.date.fromisoformat(group.day), [0, 0])
                counts[0] += group.runs
                counts[1] += group.runs if group.status == "failed" else 0
        noon = {d: _dt.datetime.combine(d, _dt.time(12), _dt.timezone.utc) for d in days}  # a day's count sits in its middle
        ordered = sorted(days)
        every_day += [noon[d] for d in ordered]
        ax.plot([noon[d] for d in ordered], [days[d][0] for d in ordered], marker="o", color=colours[env], label=f"{env} runs")
        ax.plot([noon[d] for d in ordered], [days[d][1] for d in ordered], marker="x", linestyle="--", color=colours[env],
                label=f"{env} failures")
    if every_day:
        fit_time_axis(ax, min(every_day), max(every_day), whole_days=True)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("runs per day")
    ax.legend(loc="upper left", fontsize="small")
    return _svg(fig)


def _durations(plt, runs_by_env: dict[str, list], colours, k: float) -> str:
    from envfence_builtins.operations.report_data import band

    fig, ax = plt.subplots(figsize=(10, 3))
    moments = []
    for env, runs in runs_by_env.items():
        if not runs:
            continue
        durations = [r.duration for r in runs]
        median, low, high = band(durations, k)
        times = [r.started_at for r in runs]
        moments += [times[0], times[-1]]
        ax.axhspan(low, high, color=colours[env], alpha=0.12, label=f"{env} median ± {k:g}·MAD")
        _series(ax, times, durations, colours[env], f"{env} duration")
        outside = sorted(((t, d) for t, d in zip(times, durations) if not low <= d <= high),
                         key=lambda p: -max(low - p[1], p[1] - high))
        if outside:
            shown = outside[:MAX_POINTS]
            label = f"{env} anomaly" + (f" ({len(shown)} farthest of {len(outside)})" if len(outside) > len(shown) else "")
            ax.scatter([t for t, _ in shown], [d for _, d in shown], marker="o", s=80, facecolors="none",
                       edgecolors="red", linewidths=2, zorder=5, label=label)
    ax.set_ylabel("seconds")
    ax.legend(loc="upper left", fontsize="small")
    if moments:
        fit_time_axis(ax, min(moments), max(moments))
    return _svg(fig)


def _error_rates(plt, totals, names: list[str], colours) -> str:
    from envfence_builtins.operations.report_data import counts

    fig, ax = plt.subplots(figsize=(10, 3 + 0.05 * len(names)))
    envs = list(totals)
    width = 0.8 / max(1, len(envs))
    for i, env in enumerate(envs):
        rates = []
        for name in names:
            runs, failures = counts(totals[env], name)
            rates.append(100 * failures / runs if runs else 0)
        bars = ax.bar([x + i * width for x in range(len(names))], rates, width, color=colours[env], label=env)
        if len(names) <= CHARTED:
            ax.bar_label(bars, fmt="%.0f%%", fontsize="small")  # a 0% bar is invisible without its label
    ax.set_xticks([x + width * (len(envs) - 1) / 2 for x in range(len(names))], [short(n, 30) for n in names],
                  rotation=0 if len(names) <= 6 else 60, ha="center" if len(names) <= 6 else "right")
    ax.set_ylabel("% of runs failed")
    ax.set_ylim(0, 105)
    ax.legend(fontsize="small")
    return _svg(fig)


def _resources(plt, data, envs, colours, moments) -> str:
    fig, (cpu, memory) = plt.subplots(1, 2, figsize=(10, 3))
    for env in envs:
        runs = data["runs"][env]
        if not runs:
            continue
        times = [r.started_at for r in runs]
        _series(cpu, times, [r.metrics.get("cpu_seconds") or 0 for r in runs], colours[env], env, marker="o")
        _series(memory, times, [(r.metrics.get("peak_memory_kb") or 0) / 1024 for r in runs], colours[env], env, marker="o")
    cpu.set_ylabel("CPU seconds")
    memory.set_ylabel("peak memory (MB)")
    if cpu.get_legend_handles_labels()[0]:  # an empty history draws nothing to name
        cpu.legend(fontsize="small")
    for ax in (cpu, memory):
        if moments:
            fit_time_axis(ax, min(moments), max(moments))
        ax.set_ylim(bottom=0)
    fig.tight_layout()  # the two panels' labels would overlap
    return _svg(fig)


def _findings(plt, data, envs) -> str:
    fig, ax = plt.subplots(figsize=(10, 2.5))
    for j, severity in enumerate(("error", "warning", "info")):
        ax.bar([x + j * 0.25 for x in range(len(envs))], [sum(f.severity == severity for f in data["findings"][e]) for e in envs], 0.25,
               color={"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}[severity], label=severity)
    ax.set_xticks([x + 0.25 for x in range(len(envs))], envs)
    ax.set_ylabel("findings")
    ax.legend(fontsize="small")
    return _svg(fig)


# --- the page ---------------------------------------------------------------------------


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .2em; }
h1, h2, p, td { overflow-wrap: anywhere; }
section { margin: 2em 0; } table { border-collapse: collapse; margin: .5em 0; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; font-size: 90%; }
th { background: #f3f3f3; } .error { color: #b00; } .warning { color: #a60; } .more td { font-style: italic; }
figure { margin: 0; } svg { width: 100%; height: auto; }
@media (max-width: 640px) {
  body { margin: 1em auto; }
  table.stack, .stack tbody, .stack tr, .stack td { display: block; width: 100%; box-sizing: border-box; }
  .stack tr:first-child { display: none; }
  .stack tr { border: 1px solid #ccc; margin: 0 0 .6em; }
  .stack td { border: none; border-bottom: 1px solid #eee; }
  .stack td::before { content: attr(data-label) ": "; font-weight: 600; }
}
"""


def _row(cells: list[tuple[str, str]], css: str = "") -> str:
    """A table row; each cell carries its column's name, shown before it on a narrow screen."""
    attribute = f' class="{css}"' if css else ""
    return f"<tr{attribute}>" + "".join(f'<td data-label="{label}">{value}</td>' for label, value in cells) + "</tr>"


def _header(labels: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{label}</th>" for label in labels) + "</tr>"


def _anomalies(ids: list[str]) -> str:
    """The count, and the first :data:`NAMED` ids (the list is ordered farthest first)."""
    if not ids:
        return "—"
    named = ", ".join(short(i, 40) for i in ids[:NAMED])
    return f"{len(ids)}: {named}" + (", …" if len(ids) > NAMED else "")


_SUMMARY = ["environment", "automation", "runs", "failures", "error rate", "median duration (s)", "anomaly band (s)", "anomalies"]


def _summary_rows(numbers: dict[str, Any]) -> list[str]:
    import html

    e = html.escape
    rows = []
    for env, per in numbers.items():
        ranked = sorted(per.items(), key=lambda item: (-item[1]["failures"], -item[1]["runs"], item[0]))
        for name, item in ranked[:TABLE_ROWS]:
            values = [e(env), e(short(name)), str(item["runs"]), str(item["failures"]), f"{item['error_rate']:.0%}",
                      str(item["median_duration"]), f"{item['band'][0]}–{item['band'][1]}", e(_anomalies(item["anomalies"]))]
            rows.append(_row(list(zip(_SUMMARY, values))))
        rest = ranked[TABLE_ROWS:]
        if rest:
            runs, failures = sum(i["runs"] for _, i in rest), sum(i["failures"] for _, i in rest)
            rows.append(_row([("environment", e(env)), ("automation", f"{len(rest)} more automations"), ("runs", str(runs)),
                              ("failures", str(failures)), ("note", "see <code>envfence report --json</code>")], "more"))
    return rows


def render_html(project: str, since: _dt.datetime, data: dict[str, Any], numbers: dict[str, Any], drawn: list[tuple[str, str, str]]) -> str:
    """The self-contained page."""
    import html

    e = html.escape
    automations = busiest(data)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>envfence report: {e(short(project))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>envfence report</h1><p class=\"meta\">{e(project)} — runs since {since:%Y-%m-%d %H:%M} UTC, "
        f"generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
        f"<section id=\"summary\"><h2>Summary</h2><table class=\"stack\">{_header(_SUMMARY)}",
        *_summary_rows(numbers),
        "</table></section>",
    ]
    for chart_id, title, svg in drawn:
        parts.append(f"<section id=\"{e(chart_id)}\"><h2>{e(title)}</h2><figure>{svg}</figure></section>")
    if len(automations) > CHARTED:
        parts.append(f"<p class=\"meta\">Duration charts show the {CHARTED} busiest automations; {len(automations) - CHARTED} more "
                     "are in the summary and in <code>envfence report --json</code>.</p>")
    parts += _findings_table(data)
    parts += _drift_table(data)
    parts.append("</body></html>\n")
    return "".join(parts)


def _findings_table(data: dict[str, Any]) -> list[str]:
    import html

    e = html.escape
    labels = ["environment", "severity", "code", "message"]
    parts = ["<section id=\"findings-table\"><h2>Findings of <code>envfence check</code></h2><table class=\"stack\">", _header(labels)]
    for env, findings in data["findings"].items():
        for f in findings[:TABLE_ROWS]:
            cells = [e(env), f'<span class="{e(f.severity)}">{e(f.severity)}</span>', e(f.code), e(short(f.message, 400))]
            parts.append(_row(list(zip(labels, cells))))
        if len(findings) > TABLE_ROWS:
            parts.append(_row([("environment", e(env)), ("message", f"{len(findings) - TABLE_ROWS} more: see <code>envfence check</code>")],
                              "more"))
    parts.append("</table></section>")
    return parts


def _listed(keys: list[str]) -> str:
    shown = ", ".join(short(k, 60) for k in keys[:TABLE_ROWS])
    return shown + (f" and {len(keys) - TABLE_ROWS} more" if len(keys) > TABLE_ROWS else "")


def _drift_table(data: dict[str, Any]) -> list[str]:
    import html

    e = html.escape
    labels = ["environments", "only in one", "different values"]
    parts = ["<section id=\"drift\"><h2>Drift between environments</h2><table class=\"stack\">", _header(labels)]
    for d in data["drift"]:
        only = "; ".join(f"{env}: {_listed(keys)}" for env, keys in d["only_in"].items() if keys) or "—"
        cells = [e(" / ".join(d["environments"])), e(only), e(_listed(d["differ"])) or "—"]
        parts.append(_row(list(zip(labels, cells))))
    parts.append("</table></section>")
    return parts
