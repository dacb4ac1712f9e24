"""The report's conclusions read on a desktop and on a phone, measured in headless Chromium.

At 1280 px every section's tables show whole (nothing scrolls); at 390 px
each section stays within the screen and a wide table scrolls inside its own
box.
"""

from __future__ import annotations

import html
import json
import re
import subprocess

import pytest

from test_trends_and_advice import project, seed

SECTIONS = {"business-metrics", "steps", "trends", "compare", "advice"}
MEASURE = """<script>
addEventListener('load', () => {
  const found = {};
  for (const id of %s) { const e = document.getElementById(id);
    if (e) found[id] = {right: e.getBoundingClientRect().right, overflow: e.scrollWidth - e.clientWidth,
                        tables: Math.max(0, ...[...e.querySelectorAll('.insight')].map(t => t.scrollWidth - t.clientWidth))}; }
  parent.postMessage(JSON.stringify({viewport: innerWidth, page: document.documentElement.scrollWidth, sections: found}), '*');
});
</script>""" % json.dumps(sorted(SECTIONS))


def _measured(chromium: str, page, tmp_path, width: int) -> dict:
    """The page in a frame ``width`` CSS pixels wide: the viewport, the page's width and each section's box."""
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    frame = tmp_path / f"frame-{width}.html"
    frame.write_text(f"""<!DOCTYPE html><html><body style="margin:0">
<iframe src="{measured.name}" style="width:{width}px;height:900px;border:0"></iframe><pre id="measured"></pre>
<script>addEventListener('message', e => {{ document.getElementById('measured').textContent = e.data; }});</script>
</body></html>""")
    dumped = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size={max(800, width + 100)},1000", "--hide-scrollbars", "--virtual-time-budget=10000",
         "--allow-file-access-from-files", "--dump-dom", frame.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="measured">(.+?)</pre>', dumped.stdout)
    assert found, dumped.stdout[-500:] + dumped.stderr[-1500:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop-1280", "phone-390"])
def test_the_conclusions_fit_the_screen_in_chromium(make_project, run_cli, tmp_path, chromium, width):
    pytest.importorskip("matplotlib")
    root = project(make_project, '[thresholds.sync]\nmax_duration = 40\n')
    seed(root, "sync", [(20 - d, 10.0 + d, {"business": {"records_synced_from_the_vendor_api": {"value": 100, "unit": "records"}},
                                          "steps": {"fetch_every_page_of_the_listing": 6.0 + d}}, "succeeded") for d in range(21)])
    page = tmp_path / "report.html"
    assert run_cli("report", "--html", str(page), cwd=root).exit_code == 0
    data = _measured(chromium, page, tmp_path, width)
    assert data["viewport"] == width and set(data["sections"]) == SECTIONS, data
    assert data["page"] <= width, f"the page is {data['page']} px wide at {width} px"
    for section, box in data["sections"].items():
        # Neither sticks out nor overflows; a wide table scrolls inside its own box on a phone only.
        assert box["right"] <= width and box["overflow"] <= 0, f"the {section} section does not fit {width} px: {box}"
        if width >= 1280:
            assert box["tables"] <= 0, f"the {section} section's table needs scrolling at {width} px: {box}"
