"""`envfence report --html` on hostile and huge histories: literal labels, a bounded page, fitted axes, a page that fits a phone."""

from __future__ import annotations

import datetime as _dt
import html
import re
import sqlite3
import subprocess

import pytest

SETTINGS = '[automations.sync]\nrun = "jobs:ok"\n'
UTC = _dt.timezone.utc


def seed(root, env, automation, started, status="succeeded", duration=10.0, n=0):
    """One run recorded through the history plugin, as `envfence run` records it."""
    from envfence.models import Automation, RunOutcome, RunRequest
    from envfence.pipeline import Session
    from envfence_builtins.runs import history

    session = Session.open(root, env=env)
    outcome = RunOutcome(f"run-{n}-{automation[:8]}", automation, env, status, 0 if status == "succeeded" else 1,
                         started, started + _dt.timedelta(seconds=duration),
                         metrics={"host": "h", "cpu_seconds": duration / 2, "peak_memory_kb": 40_000 + n})
    history.on_run_finish(session, RunRequest(Automation(automation)), outcome)


def bulk(root, env, rows):
    """Many runs at once, straight into the history the first run created: ``(run_id, automation, started, status, duration)``."""
    db = sqlite3.connect(root / "var" / env / "history.sqlite3")
    with db:
        db.executemany(
            "INSERT INTO runs (run_id, automation, environment, host, started_at, finished_at, status, exit_code, duration,"
            " cpu_seconds, peak_memory_kb, forced) VALUES (?, ?, ?, 'h', ?, ?, ?, ?, ?, ?, ?, 0)",
            [(rid, name, env, at.isoformat(), (at + _dt.timedelta(seconds=d)).isoformat(), status, int(status == "failed"), d,
              d / 2, 40_000 + i % 5000) for i, (rid, name, at, status, d) in enumerate(rows)],
        )
    db.close()


def chart(page: str, section: str) -> str:
    found = re.search(rf'<section id="{re.escape(section)}"><h2>[^<]*</h2><figure>(<svg.*?</svg>)</figure>', page, re.S)
    assert found, f"no chart {section}"
    return found.group(1)


def texts(svg: str) -> list[str]:
    """What the chart writes as text (labels, ticks, legend), as a reader sees it."""
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in re.findall(r"<text\b[^>]*>(.*?)</text>", svg, re.S)]


def report(run_cli, root, tmp_path, *args):
    page = tmp_path / "report.html"
    result = run_cli("report", "--html", str(page), *args, cwd=root)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return page


def test_an_automation_named_like_mathtext_is_drawn_as_literal_text(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": "def ok(ctx):\n    pass\n"}, settings=SETTINGS)
    name = r"math $\nosuchmacro$"
    now = _dt.datetime.now(UTC)
    for i in range(3):
        seed(root, "development", name, now - _dt.timedelta(hours=i), duration=5.0 + i, n=i)
    page = report(run_cli, root, tmp_path).read_text()
    assert name in texts(chart(page, "error-rates"))
    assert any(name in t for t in texts(chart(page, f"duration-{name}")) + [html.unescape(page)])


@pytest.mark.heavy
def test_a_page_of_100000_runs_stays_small_with_counts_and_the_top_automations(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": "def ok(ctx):\n    pass\n"}, settings=SETTINGS)
    start = _dt.datetime.now(UTC) - _dt.timedelta(days=20)
    seed(root, "development", "sync", start)
    rows = []
    # 100,000 runs keep the charts' points and the anomalies far past what a page may hold; 200 automations are
    # five times the table's rows (each automation costs the analysis one query, and 1,500 added 8 s, not coverage).
    for i in range(100_000):
        name = "sync" if i % 2 else f"job-{i % 200:04d}"
        slow = i % 2 and i % 7 == 0  # thousands of anomalies in one automation
        rows.append((f"r{i:06d}", name, start + _dt.timedelta(seconds=17 * i), "failed" if i % 11 == 0 else "succeeded",
                     900.0 if slow else 10.0 + i % 3))
    bulk(root, "development", rows)
    page = report(run_cli, root, tmp_path, "--since", "30d").read_text()
    assert len(page.encode()) < 1_000_000, f"{len(page.encode()):,} bytes"
    cells = re.findall(r"<td\b[^>]*>(.*?)</td>", page, re.S)
    assert max(len(c) for c in cells) < 500
    assert len(re.findall(r'<section id="duration-', page)) == 12
    assert "more automations" in page
    sync_row = next(c for c in re.findall(r"<tr>(.*?)</tr>", page, re.S) if '>sync</td>' in c)
    assert re.search(r">(\d+): r\d{6}, ", sync_row), sync_row  # the anomalies counted, the farthest few named


def test_one_day_of_data_draws_axes_spanning_that_day(make_project, run_cli, tmp_path):
    root = make_project({"jobs.py": "def ok(ctx):\n    pass\n"}, settings=SETTINGS)
    day = _dt.datetime(2026, 3, 10, tzinfo=UTC)
    for n, hour in enumerate((3, 9, 15, 21)):
        seed(root, "development", "sync", day + _dt.timedelta(hours=hour), duration=10.0 + n, n=n)
    page = report(run_cli, root, tmp_path, "--since", "2026-03-01").read_text()
    for section in ("runs-per-day", "duration-sync", "resources"):
        shown = " ".join(texts(chart(page, section)))
        years = set(re.findall(r"\b20\d\d\b", shown))
        assert years <= {"2026"}, f"{section} spans {sorted(years)}: {shown}"
        assert not re.search(r"\b(Jan|Feb|Apr|May)\b", shown), f"{section}: {shown}"
        assert re.search(r"\d\d:\d\d", shown), f"{section} has no hours on its axis: {shown}"


#: Measures the page from inside it and tells the frame holding it (the page itself has no script: only this copy).
MEASURE = """<script>
addEventListener('load', () => {
  const table = document.querySelector('#summary table').getBoundingClientRect();
  parent.postMessage(JSON.stringify({page: document.documentElement.scrollWidth, viewport: innerWidth,
                                     table_right: Math.ceil(table.right), table_width: Math.ceil(table.width)}), '*');
});
</script>"""
#: A frame 390 pixels wide (a headless window is at least 500 pixels wide) around the page; the desktop test widens it.
PHONE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="phone" src="measured.html" style="width:390px;height:844px;border:0"></iframe>
<pre id="measured"></pre>
<script>addEventListener('message', event => { document.getElementById('measured').textContent = event.data; });</script>
</body></html>"""


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop-1280", "phone-390"])
def test_the_summary_table_fits_the_screen_in_chromium(make_project, run_cli, tmp_path, chromium, width):
    import json

    browser = chromium
    root = make_project({"jobs.py": "def ok(ctx):\n    pass\n"}, settings=SETTINGS)
    now = _dt.datetime.now(UTC)
    long_name = "nightly-reconciliation-of-invoices-against-the-ledger-and-payment-provider-exports"
    for n in range(8):
        seed(root, "development", "sync" if n % 2 else long_name, now - _dt.timedelta(hours=n), duration=10.0 + n * (n == 7) * 90, n=n)
    page = report(run_cli, root, tmp_path)
    (tmp_path / "measured.html").write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    (tmp_path / "phone.html").write_text(PHONE.replace("width:390px", f"width:{width}px"))
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
              f"--window-size={max(800, width + 100)},900", "--hide-scrollbars", "--virtual-time-budget=10000"]
    dumped = subprocess.run([*common, "--dump-dom", (tmp_path / "phone.html").as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="measured">(.+?)</pre>', dumped.stdout)
    assert found, dumped.stdout[-500:] + dumped.stderr[-2000:]
    measured = json.loads(html.unescape(found.group(1)))
    assert measured["viewport"] == width, measured
    assert measured["page"] <= width and measured["table_right"] <= width, measured
    shot = tmp_path / f"report-{width}.png"
    subprocess.run([*common, f"--screenshot={shot}", (tmp_path / "phone.html").as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 0
