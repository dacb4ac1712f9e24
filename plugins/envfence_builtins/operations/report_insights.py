"""The report's conclusions: what jobs did, where their time goes, trends and forecasts, environments side by side, advice.

Computed per environment by :mod:`envfence_builtins.operations.analysis`
(baselines, Theil–Sen trends, level shifts, forecasts), the comparison of
``status --compare`` and the ``advice`` hook (declared by ``advise``); given to
``report --json`` as ``insights``, ``compare`` and ``advice``, and appended to
the HTML page as tables that scroll sideways on a narrow screen (390 px).
"""

from __future__ import annotations

import datetime as _dt
import html
from typing import Any

_STYLE = (".insight { overflow-x: auto; max-width: 100%; } .insight table { min-width: 0; } "
          ".insight td { white-space: nowrap; } .advice li { margin: .4em 0; } .advice code { white-space: normal; }")
# A column's name may wrap (its values never do): the nine columns of the trends table then fit a 1280-pixel screen whole.


def gather(sessions: dict[str, Any], since: _dt.datetime) -> dict[str, Any]:
    """``insights`` (per environment: each automation's series and error rate, the disk), ``compare`` and ``advice``."""
    from envfence.cli.status import comparison

    from envfence_builtins.operations.analysis import analyse

    now = _dt.datetime.now(_dt.timezone.utc)
    insights, runs_by_env, advice, seen = {}, {}, [], set()
    for env, session in sessions.items():
        data = analyse(session, now)
        runs_by_env[env] = sorted((r for r in data["runs"] if r.started_at >= since), key=lambda r: r.started_at, reverse=True)
        insights[env] = {
            "automations": {name: {"error_rate": entry["error_rate"],
                                   "series": {key: report.as_dict() for key, report in entry["series"].items()}}
                            for name, entry in data["automations"].items()},
            "disk": data["disk"].as_dict() if data["disk"] is not None else None,
        }
        for item in _advice(session, now):
            key = (item.code, item.environment, item.automation)
            if key not in seen:
                seen.add(key)
                advice.append({"code": item.code, "environment": item.environment, "automation": item.automation,
                               "message": item.message, "action": item.action, "numbers": item.numbers})
    return {"insights": insights, "compare": comparison(runs_by_env), "advice": advice}


def _advice(session, now: _dt.datetime) -> list[Any]:
    """The ``advice`` hook's answers; none when the ``advise`` plugin that declares it is not loaded."""
    from envfence.hookcalls import HookNotDeclared

    from envfence_builtins.operations.advice_hooks import AdviceHooks

    try:
        return AdviceHooks(session.plugins).advice(session=session, now=now).flat()
    except HookNotDeclared:
        return []


def _table(headers: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class=\"insight\"><table><tr>{head}</tr>{body}</table></div>"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:+.0%}"


def html_sections(found: dict[str, Any]) -> str:
    """The page's sections for ``found`` (what :func:`gather` returned)."""
    e = html.escape
    metrics, steps, trends = [], [], []
    for env, data in found["insights"].items():
        for name, entry in sorted(data["automations"].items()):
            series = entry["series"]
            duration = series.get("duration")
            for key, item in sorted(series.items()):
                if key.startswith("metric:"):
                    shift = item.get("shift")
                    metrics.append([env, name, key[7:], f"{item['last']:g}", f"{item['baseline']['median']:g}",
                                    _pct(item.get("trend", {}).get("growth")),
                                    f"{shift['before']:g} → {shift['after']:g}" if shift else "—"])
                elif key.startswith("step:") and duration:
                    share = item["baseline"]["median"] / duration["baseline"]["median"] if duration["baseline"]["median"] else 0
                    steps.append([env, name, key[5:], f"{item['baseline']['median']:.2f}", f"{share:.0%}"])
            if duration:
                forecast = duration.get("forecast")
                trends.append([env, name, f"{duration['baseline']['median']:.2f}",
                               f"{duration['baseline']['low']:.2f}–{duration['baseline']['high']:.2f}",
                               f"{duration.get('trend', {}).get('slope_per_day', 0):+.3f}", _pct(duration.get("trend", {}).get("growth")),
                               "yes" if duration["anomaly"] else "no",
                               f"{forecast['at'][:10]} ({forecast['days']:g} d)" if forecast and forecast["days"] > 0 else "—",
                               f"{entry['error_rate']['error_rate']:.0%}"])
    parts = [f"<style>{_STYLE}</style>",
             "<section id=\"business-metrics\"><h2>What the jobs did</h2>",
             _table(["environment", "automation", "metric", "last", "median", "trend", "level shift"], metrics)
             if metrics else "<p>No job reported a metric (<code>ctx.metric</code>, <code>ENVFENCE_METRICS_FILE</code>).</p>",
             "</section><section id=\"steps\"><h2>Where the time goes</h2>",
             _table(["environment", "automation", "step", "median (s)", "share of the run"], steps)
             if steps else "<p>No job named its steps (<code>with ctx.step(\"fetch\"):</code>).</p>",
             "</section><section id=\"trends\"><h2>Baselines, trends and forecasts</h2>",
             _table(["environment", "automation", "median (s)", "usual band (s)", "trend (s/day)", "growth", "last run anomalous",
                     "reaches max_duration", "error rate"], trends) if trends else "<p>Too few runs for a baseline.</p>",
             "</section><section id=\"compare\"><h2>Environments side by side</h2>"]
    rows = [[r["automation"], r["environment"], str(r["runs"]), f"{r['error_rate']:.0%}",
             "—" if r["median_seconds"] is None else f"{r['median_seconds']:.2f}",
             "—" if not r["peak_memory_kb"] else f"{r['peak_memory_kb'] / 1024:.0f}",
             ", ".join(f"{k} {v:g}" for k, v in r["business"].items()) or "—"] for r in found["compare"]["automations"]]
    parts.append(_table(["automation", "environment", "runs", "error rate", "median (s)", "peak memory (MiB)", "business metrics"], rows)
                 if rows else "<p>No runs.</p>")
    parts += [f"<p class=\"warning\">{e(note)}</p>" for note in found["compare"]["notes"]]
    parts.append("</section><section id=\"advice\"><h2>Advice</h2>")
    items = [f"<li><strong>{e(a['code'])}</strong> {e(a['environment'])} {e(a['automation'] or '')}: {e(a['message'])}"
             f"<br>do: <code>{e(a['action'])}</code></li>" for a in found["advice"]]
    parts.append(f"<ul class=\"advice\">{''.join(items)}</ul>" if items else "<p>No advice: nothing calls for a change.</p>")
    parts.append("</section>")
    return "".join(parts)


def into_page(page: str, found: dict[str, Any]) -> str:
    """``page`` with the sections appended at the end of its body."""
    marker = page.rfind("</body>")
    return page[:marker] + html_sections(found) + page[marker:] if marker >= 0 else page + html_sections(found)
