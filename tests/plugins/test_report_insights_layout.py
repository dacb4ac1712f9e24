"""The report's conclusions fit a phone: at 390 px each of their sections stays within the screen (wide tables scroll inside)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from test_trends_and_advice import project, seed

MEASURE = """<script>
addEventListener('load', () => {
  const ids = ['business-metrics', 'steps', 'trends', 'compare', 'advice'];
  const found = {};
  for (const id of ids) { const e = document.getElementById(id);
    if (e) found[id] = {right: e.getBoundingClientRect().right, overflow: e.scrollWidth - e.clientWidth}; }
  parent.postMessage(JSON.stringify({viewport: innerWidth, sections: found}), '*');
});
</script>"""


def test_the_conclusions_fit_a_390_pixel_screen(make_project, run_cli, tmp_path):
    pytest.importorskip("matplotlib")
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if browser is None:
        pytest.skip("headless Chromium is not installed: apt-get install -y chromium")
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n')
    seed(root, "sync", [(20 - d, 10.0 + d, {"business": {"records_synced_from_the_vendor_api": {"value": 100, "unit": "records"}},
                                          "steps": {"fetch_every_page_of_the_listing": 6.0 + d}}, "succeeded") for d in range(21)])
    page = tmp_path / "report.html"
    assert run_cli("report", "--html", str(page), cwd=root).exit_code == 0
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    frame = tmp_path / "phone.html"
    frame.write_text(f"""<!DOCTYPE html><html><body style="margin:0">
<iframe src="{measured.name}" style="width:390px;height:844px;border:0"></iframe><pre id="measured"></pre>
<script>addEventListener('message', e => {{ document.getElementById('measured').textContent = e.data; }});</script>
</body></html>""")
    dumped = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,900",
         "--hide-scrollbars", "--virtual-time-budget=10000", "--allow-file-access-from-files", "--dump-dom", frame.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="measured">(.+?)</pre>', dumped.stdout)
    assert found, dumped.stdout[-500:] + dumped.stderr[-1500:]
    data = json.loads(html.unescape(found.group(1)))
    assert data["viewport"] == 390 and set(data["sections"]) == {"business-metrics", "steps", "trends", "compare", "advice"}
    for section, box in data["sections"].items():
        # A wide table scrolls inside its own box: the section neither sticks out nor overflows.
        assert box["right"] <= 390 and box["overflow"] <= 0, f"the {section} section does not fit 390 px: {box}"
