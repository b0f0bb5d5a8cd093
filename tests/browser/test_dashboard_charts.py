"""The dashboards' charts in chromium (390 px and 1280 px wide), on the demo data: for each
role's dashboard every chart is drawn on its canvas by static/js/charts.js from its JSON data
endpoint, under the CSP (no violation reported), and its numbers are also a table with a
caption and header cells. Without the script the same pages show the tables, open."""
import pytest

from tests.browser.helpers import sign_in
from tests.browser.test_every_page import DESKTOP, PHONE, layout_problems

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(db):
    from alliance.demo.services import ADMIN, USER_PASSWORD, seed_demo

    seed_demo()
    return {"admin": (ADMIN["email"], ADMIN["password"]),
            "coordinator": ("ingrid@nordic-cert.example", USER_PASSWORD),
            "member": ("ola@nordic-cert.example", USER_PASSWORD)}

PAGES = {"member": ["/"], "coordinator": ["/", "/dashboard/alliances"],
         "admin": ["/", "/dashboard/platform"]}

# For each chart box: drawn or not, and how many of the canvas's pixels are painted.
_CHARTS = """() => [...document.querySelectorAll('.chart-box')].map(box => {
  const canvas = box.querySelector('canvas');
  const ctx = canvas.getContext('2d');
  const pixels = canvas.width && canvas.height
    ? ctx.getImageData(0, 0, canvas.width, canvas.height).data : [];
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return {figure: box.closest('figure').id, drawn: box.dataset.chartDrawn || null,
          visible: !box.hidden, width: canvas.getBoundingClientRect().width, painted,
          table: !!box.closest('figure').querySelector(
            'table caption + thead th[scope=col], table tbody th[scope=row]')};
})"""


def _drawn(page, count):
    page.wait_for_function(
        "n => document.querySelectorAll('.chart-box[data-chart-drawn]').length >= n",
        arg=count, timeout=10000)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
@pytest.mark.parametrize("who", sorted(PAGES))
def test_every_chart_is_drawn_with_its_table_beside_it(live, browser, demo, who, viewport):
    base = live["url"]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    refused = []
    page.on("console", lambda m: refused.append(m.text)
            if "Content Security Policy" in m.text or m.type == "error" else None)
    sign_in(page, base, *demo[who])
    problems = []
    for path in PAGES[who]:
        page.goto(base + path)
        boxes = page.locator(".chart-box").count()
        assert boxes or path == "/" and who == "admin", f"{path}: no chart"
        if boxes:
            _drawn(page, boxes)
        for chart in page.evaluate(_CHARTS):
            if not (chart["drawn"] == "yes" and chart["visible"] and chart["painted"] > 200
                    and 0 < chart["width"] <= viewport["width"] and chart["table"]):
                problems.append(f"{path}: {chart}")
        # Drawn, the table is one click away (and there for screen readers in the page).
        summaries = page.locator("details.chart-numbers:not([open]) > summary")
        assert summaries.count() == boxes
        if boxes:
            summaries.first.click()
            assert page.locator("details.chart-numbers[open] table caption").count() >= 1
        problems += [f"{path}: {p}" for p in layout_problems(page)]
    context.close()
    assert not problems, "\n".join(problems)
    assert not refused, refused


def test_without_the_script_the_dashboards_are_their_tables(live, browser, demo):
    """charts.js does not load (blocked, or an old browser): the tables are the charts."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.route("**/static/js/charts.js", lambda route: route.abort())
    sign_in(page, live["url"], *demo["coordinator"])
    for path in PAGES["coordinator"]:
        page.goto(live["url"] + path)
        page.wait_for_load_state("load")
        tables = page.locator("details.chart-numbers[open] table.chart-table")
        assert tables.count() >= 3, path
        assert tables.first.is_visible()
        assert page.locator(".chart-box:visible").count() == 0, path
    context.close()
