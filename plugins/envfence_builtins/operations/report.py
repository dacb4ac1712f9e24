"""``envfence report [--since 30d] [--html FILE]``: runs, failures, durations and drift across environments, with charts.

The HTML page is one self-contained file (charts are SVG drawn by matplotlib,
inline; no script, no network) with:

- runs and failures per day, per environment;
- each automation's duration over time with an anomaly band (median ± k·MAD,
  ``[report] k``, default 3), runs outside it marked;
- error rates per automation, environments side by side;
- CPU time and peak memory per run;
- ``check``'s findings per environment, and configuration drift between them.

matplotlib comes with the ``report`` extra (``pip install 'envfence[report]'``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from envfence import hookimpl
from envfence.errors import ConfigurationError

SECTION = "report"
HISTORY_LIMIT = 100_000


def k_factor(settings) -> float:
    """How many scaled MADs the anomaly band spans (``[report] k``, default 3)."""
    from envfence_builtins.operations.analysis import k_factor as read

    return read(settings)


def band(durations: list[float], k: float) -> tuple[float, float, float]:
    """``(median, low, high)``: median ± k·MAD (scaled), the band outside which a run is an anomaly."""
    from envfence.stats import baseline

    found = baseline(durations, k)
    return found.median, found.low, found.high


def gather(sessions: dict[str, Any], since: _dt.datetime) -> dict[str, Any]:
    """The report's data from each environment's session: runs since ``since``, findings, drift."""
    from envfence.cli.config import drift

    runs: dict[str, list] = {}
    findings: dict[str, list] = {}
    for env, session in sessions.items():
        history = session.plugins.run_history(session=session, automation=None, limit=HISTORY_LIMIT, since=since).first or []
        runs[env] = sorted((r for r in history if r.started_at >= since and r.status in ("succeeded", "failed")),
                           key=lambda r: r.started_at)
        findings[env] = [f for f in session.report.findings]
    names = list(sessions)
    drifts = [drift(sessions[a], sessions[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    return {"runs": runs, "findings": findings, "drift": drifts}


def summary(data: dict[str, Any], k: float) -> dict[str, Any]:
    """Numbers per environment and automation, and the anomalies (the JSON report, and the page's tables)."""
    result: dict[str, Any] = {}
    for env, runs in data["runs"].items():
        per: dict[str, Any] = {}
        for run in runs:
            item = per.setdefault(run.automation, {"runs": 0, "failures": 0, "durations": []})
            item["runs"] += 1
            item["failures"] += run.status == "failed"
            item["durations"].append(run.duration)
        for name, item in per.items():
            median, low, high = band(item["durations"], k)
            item.update(error_rate=round(item["failures"] / item["runs"], 3), median_duration=round(median, 3),
                        band=[round(low, 3), round(high, 3)],
                        anomalies=[r.run_id for r in runs if r.automation == name and not low <= r.duration <= high])
            del item["durations"]
        result[env] = per
    return result


def _svg(figure) -> str:
    import io

    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):].strip()  # drop the XML prologue and doctype: the SVG sits inside HTML


def charts(data: dict[str, Any], k: float, progress: Callable[[str], None] | None = None) -> list[tuple[str, str, str]]:
    """``(id, title, svg)`` for every chart of the report."""
    # Missing, the CLI names the extra that brings it (envfence.extras).
    import matplotlib
    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "envfence"  # the same data draws the same SVG
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, selectable
    envs = list(data["runs"])
    colours = {env: f"C{i}" for i, env in enumerate(envs)}
    result = []

    def step(name: str) -> None:
        if progress:
            progress(name)

    step("runs per day")
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for env in envs:
        days: dict[_dt.date, list[int]] = {}
        for run in data["runs"][env]:
            counts = days.setdefault(run.started_at.date(), [0, 0])
            counts[0] += 1
            counts[1] += run.status == "failed"
        ordered = sorted(days)
        ax.plot(ordered, [days[d][0] for d in ordered], marker="o", color=colours[env], label=f"{env} runs")
        ax.plot(ordered, [days[d][1] for d in ordered], marker="x", linestyle="--", color=colours[env], label=f"{env} failures")
    ax.set_ylabel("runs per day")
    ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    result.append(("runs-per-day", "Runs and failures per day, per environment", _svg(fig)))

    automations = sorted({r.automation for runs in data["runs"].values() for r in runs})
    for name in automations:
        step(f"duration of {name}")
        fig, ax = plt.subplots(figsize=(10, 3))
        for env in envs:
            runs = [r for r in data["runs"][env] if r.automation == name]
            if not runs:
                continue
            durations = [r.duration for r in runs]
            median, low, high = band(durations, k)
            times = [r.started_at for r in runs]
            ax.axhspan(low, high, color=colours[env], alpha=0.12, label=f"{env} median ± {k:g}·MAD")
            ax.plot(times, durations, marker=".", color=colours[env], label=f"{env} duration")
            outside = [(t, d) for t, d in zip(times, durations) if not low <= d <= high]
            if outside:
                ax.scatter([t for t, _ in outside], [d for _, d in outside], marker="o", s=80, facecolors="none",
                           edgecolors="red", linewidths=2, zorder=5, label=f"{env} anomaly")
        ax.set_ylabel("seconds")
        ax.legend(loc="upper left", fontsize="small")
        _pad_single_day(ax, [r.started_at for env in envs for r in data["runs"][env] if r.automation == name])
        fig.autofmt_xdate()
        result.append((f"duration-{name}", f"Duration of {name}, with its anomaly band", _svg(fig)))

    step("error rates")
    fig, ax = plt.subplots(figsize=(10, 3))
    width = 0.8 / max(1, len(envs))
    for i, env in enumerate(envs):
        rates = []
        for name in automations:
            runs = [r for r in data["runs"][env] if r.automation == name]
            rates.append(100 * sum(r.status == "failed" for r in runs) / len(runs) if runs else 0)
        bars = ax.bar([x + i * width for x in range(len(automations))], rates, width, color=colours[env], label=env)
        ax.bar_label(bars, fmt="%.0f%%", fontsize="small")  # a 0% bar is invisible without its label
    ax.set_xticks([x + width * (len(envs) - 1) / 2 for x in range(len(automations))], automations)
    ax.set_ylabel("% of runs failed")
    ax.legend(fontsize="small")
    result.append(("error-rates", "Error rates per automation, environments side by side", _svg(fig)))

    step("resources")
    fig, (cpu, memory) = plt.subplots(1, 2, figsize=(10, 3))
    for env in envs:
        runs = data["runs"][env]
        cpu.plot([r.started_at for r in runs], [r.metrics.get("cpu_seconds") or 0 for r in runs], ".", color=colours[env], label=env)
        memory.plot([r.started_at for r in runs], [(r.metrics.get("peak_memory_kb") or 0) / 1024 for r in runs], ".",
                    color=colours[env], label=env)
    cpu.set_ylabel("CPU seconds")
    memory.set_ylabel("peak memory (MB)")
    cpu.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()  # the two panels' labels would overlap
    result.append(("resources", "CPU time and peak memory per run", _svg(fig)))

    step("findings")
    fig, ax = plt.subplots(figsize=(10, 2.5))
    for j, severity in enumerate(("error", "warning", "info")):
        ax.bar([x + j * 0.25 for x in range(len(envs))], [sum(f.severity == severity for f in data["findings"][e]) for e in envs], 0.25,
               color={"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}[severity], label=severity)
    ax.set_xticks([x + 0.25 for x in range(len(envs))], envs)
    ax.set_ylabel("findings")
    ax.legend(fontsize="small")
    result.append(("findings", "check's findings per environment", _svg(fig)))
    return result


def _pad_single_day(ax, times) -> None:
    """Runs all at one moment would stretch the time axis over years: show the day around them."""
    if times and max(times) - min(times) < _dt.timedelta(hours=1):
        middle = min(times)
        ax.set_xlim(middle - _dt.timedelta(hours=12), middle + _dt.timedelta(hours=12))


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .2em; }
section { margin: 2em 0; } table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; font-size: 90%; }
th { background: #f3f3f3; } .error { color: #b00; } .warning { color: #a60; }
figure { margin: 0; } svg { width: 100%; height: auto; }
"""


def render_html(project: str, since: _dt.datetime, data: dict[str, Any], numbers: dict[str, Any], drawn: list[tuple[str, str, str]]) -> str:
    """The self-contained page."""
    import html

    e = html.escape
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>envfence report: {e(project)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>envfence report</h1><p class=\"meta\">{e(project)} — runs since {since:%Y-%m-%d %H:%M} UTC, "
        f"generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
        "<section id=\"summary\"><h2>Summary</h2><table><tr><th>environment</th><th>automation</th><th>runs</th><th>failures</th>"
        "<th>error rate</th><th>median duration (s)</th><th>anomaly band (s)</th><th>anomalies</th></tr>",
    ]
    for env, per in numbers.items():
        for name, item in sorted(per.items()):
            parts.append(f"<tr><td>{e(env)}</td><td>{e(name)}</td><td>{item['runs']}</td><td>{item['failures']}</td>"
                         f"<td>{item['error_rate']:.0%}</td><td>{item['median_duration']}</td>"
                         f"<td>{item['band'][0]}–{item['band'][1]}</td><td>{e(', '.join(item['anomalies'])) or '—'}</td></tr>")
    parts.append("</table></section>")
    for chart_id, title, svg in drawn:
        parts.append(f"<section id=\"{e(chart_id)}\"><h2>{e(title)}</h2><figure>{svg}</figure></section>")
    parts.append("<section id=\"findings-table\"><h2>Findings of <code>envfence check</code></h2><table>"
                 "<tr><th>environment</th><th>severity</th><th>code</th><th>message</th></tr>")
    for env, findings in data["findings"].items():
        for f in findings:
            parts.append(f"<tr><td>{e(env)}</td><td class=\"{e(f.severity)}\">{e(f.severity)}</td><td>{e(f.code)}</td><td>{e(f.message)}</td></tr>")
    parts.append("</table></section><section id=\"drift\"><h2>Drift between environments</h2><table>"
                 "<tr><th>environments</th><th>only in one</th><th>different values</th></tr>")
    for d in data["drift"]:
        only = "; ".join(f"{env}: {', '.join(keys)}" for env, keys in d["only_in"].items() if keys) or "—"
        parts.append(f"<tr><td>{e(' / '.join(d['environments']))}</td><td>{e(only)}</td><td>{e(', '.join(d['differ'])) or '—'}</td></tr>")
    parts.append("</table></section></body></html>\n")
    return "".join(parts)


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence report``."""
    from envfence_builtins.operations.report_cli import report

    cli.add_command(report)
