"""The docs site as a reader gets it: nothing fetched from elsewhere, readable on a phone, the title and search in view."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Pages with the widest content: the generated CLI reference, long tables, long commands.
WIDE_PAGES = ("reference/cli.html", "index.html", "running.html", "operations.html", "validation.html")


def test_no_page_loads_anything_from_another_host(site):
    # An offline reader gets every script, style sheet, font and image from the site itself.
    external = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.I)
    pages = list(site.rglob("*.html"))
    assert len(pages) > 15
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not external.search(text), f"{page.relative_to(site)} loads {external.search(text).group(0)}"
        assert "hljs" not in text
    css = "".join(p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*.css"))
    assert "fonts.googleapis" not in css and "@import url(http" not in css


def test_code_is_highlighted_at_build_time(site):
    # pygments marks tokens when the site is built: highlighting needs no script at all.
    page = (site / "quickstart.html").read_text(encoding="utf-8")
    assert 'class="highlight"' in page and re.search(r'<span class="(?:nb|k|s|c1|o)">', page)


#: Measures a page from inside it and tells the frame around it (only this copy of the page has the script).
MEASURE = """<script>
addEventListener('load', () => {
  const box = sel => { const e = document.querySelector(sel); if (!e) return null;
                       const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, width: r.width}; };
  parent.postMessage(JSON.stringify({page: document.documentElement.scrollWidth, viewport: innerWidth,
    title: box('.md-header__title'), search: box('label.md-header__button[for="__search"]') || box('.md-search')}), '*');
});
</script>"""


def _measure(browser: str, site: Path, page: str, tmp_path: Path) -> dict:
    """Open ``page`` in a 390-pixel frame (a headless window is at least 500 pixels wide) and measure it."""
    source = site / page
    measured = source.with_name("measured-" + source.name)
    measured.write_text(source.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    frame = site / "phone.html"
    frame.write_text(f"""<!DOCTYPE html><html><body style="margin:0">
<iframe src="{measured.relative_to(site).as_posix()}" style="width:390px;height:844px;border:0"></iframe>
<pre id="measured"></pre>
<script>addEventListener('message', e => {{ document.getElementById('measured').textContent = e.data; }});</script>
</body></html>""", encoding="utf-8")
    dumped = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=800,900", "--hide-scrollbars", "--virtual-time-budget=10000",
         "--allow-file-access-from-files", "--dump-dom", frame.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="measured">(.+?)</pre>', dumped.stdout)
    assert found, dumped.stdout[-500:] + dumped.stderr[-1500:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("page", WIDE_PAGES)
def test_nothing_is_wider_than_a_phone_and_the_title_and_search_are_in_view(site, page, tmp_path, chromium):
    browser = chromium
    measured = _measure(browser, site, page, tmp_path)
    assert measured["viewport"] == 390, measured
    assert measured["page"] <= 390, f"{page} is {measured['page']} px wide at 390 px"
    for part in ("title", "search"):
        box = measured[part]
        assert box is not None and box["width"] > 0, f"{page}: no {part} in the header"
        assert 0 <= box["top"] and box["bottom"] <= 844, f"{page}: the {part} is out of view on first sight: {box}"
