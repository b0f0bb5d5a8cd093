"""Every page a visitor and each kind of signed-in user reaches by following links, on the
demo data, walked in chromium 390 px wide (a phone): axe-core checks each of them (the hook in
conftest.py), no page scrolls sideways, no control is cut off, no word breaks mid-word. At
1280 px the signed-in header fits one row. Forms work from the keyboard alone."""
import re
from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# Not pages: downloads and feeds, machine endpoints, and pages whose link carries a one-time
# token from a mail (other journeys open those as the mail's reader does).
NOT_PAGES = re.compile(r"\.(csv|json|atom|html)$|^/(metrics|healthz|readyz|taxii)(/|$)"
                       r"|^/auth/(invite|verify|reset|sign-in/link)/|^/register/confirm/"
                       r"|^/digests/unsubscribe/|^/static/")
# Pages of one kind (two notes, two mails) are walked once.
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[\w.-]{20,}|\d+")


def layout_problems(page):
    """What does not fit the viewport: sideways scrolling, controls outside the viewport or cut
    off by a scrolling or clipping box, words broken in the middle."""
    return page.evaluate("""() => {
      const problems = [];
      const width = document.documentElement.clientWidth;
      const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + (el.className && typeof el.className === 'string'
           ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
        + ' "' + (el.innerText || el.value || el.getAttribute('aria-label') || '')
          .trim().slice(0, 40) + '"';
      if (document.documentElement.scrollWidth > width)
        problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth}px`
                      + ` wide in ${width}px`);
      const controls = document.querySelectorAll(
        'a[href], button, input:not([type=hidden]), select, textarea, summary');
      for (const el of controls) {
        const r = el.getBoundingClientRect();
        if (!el.checkVisibility()) continue;  // not shown (in a closed <details>, say)
        if (el.closest('.visually-hidden, .skip-link')) continue;
        if (r.left < -0.5 || r.right > width + 0.5) {
          problems.push(`${name(el)} reaches past the viewport (${r.left}..${r.right})`);
          continue;
        }
        for (let box = el.parentElement; box && box !== document.body;
             box = box.parentElement) {
          if (getComputedStyle(box).overflowX === 'visible') continue;
          const b = box.getBoundingClientRect();
          if (r.left < b.left - 0.5 || r.right > b.right + 0.5) {
            problems.push(`${name(el)} is cut off by ${name(box)}`);
            break;
          }
        }
      }
      // A word split over two lines (word-break: break-all, or a box too narrow for it). A
      // word: letters between spaces, not a part of an address or an id, which may break.
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      const range = document.createRange();
      const word = /(?<=^|\\s)\\p{L}{3,24}(?=[.,:;!?)]*(\\s|$))/gu;
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || !parent.checkVisibility()
            || parent.closest('pre, code, .visually-hidden, script, style')) continue;
        for (const m of node.data.matchAll(word)) {
          range.setStart(node, m.index);
          range.setEnd(node, m.index + m[0].length);
          const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
          if (tops.size > 1) problems.push(`"${m[0]}" breaks mid-word in ${name(parent)}`);
        }
      }
      return problems;
    }""")


def walk(page, base, start, limit=60):
    """Follow the same-site links from `start`, one page of each kind; the paths visited with
    the layout problems of each."""
    queue, kinds, walked = list(start), set(), []
    while queue and len(walked) < limit:
        path = queue.pop(0)
        kind = _IDS.sub("#", path)
        if kind in kinds or NOT_PAGES.search(path):
            continue
        kinds.add(kind)
        page.goto(base + path)
        walked.append((path, layout_problems(page)))
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            url = urlsplit(href)
            if f"{url.scheme}://{url.netloc}" == base and url.path not in queue:
                queue.append(url.path)
    return walked


@pytest.fixture
def demo(db):
    from alliance.demo.services import ADMIN, USER_PASSWORD, seed_demo

    seed_demo()
    return {"admin": (ADMIN["email"], ADMIN["password"]),
            "coordinator": ("ingrid@nordic-cert.example", USER_PASSWORD),
            "member": ("ola@nordic-cert.example", USER_PASSWORD),
            "org admin": ("rasa@baltic-energy.example", USER_PASSWORD),
            "pending": ("sam@pending-analytics.example", USER_PASSWORD),
            # coordinator of the other alliance, of the longest organisation name
            "founder": ("claire@policy.geneva.example", USER_PASSWORD)}


VISITOR_START = ["/", "/auth/sign-in", "/register", "/auth/reset", "/auth/sign-in/link",
                 "/insights/", "/no-such-page"]
# Among the pages each walk must reach: the members table, audit logs and dashboards.
MUST_REACH = {
    "visitor": {"/auth/sign-in", "/register", "/insights/", "/no-such-page"},
    "admin": {"/", "/admin/organisations", "/admin/audit", "/digests/admin/deliveries",
              "/dashboard/platform"},
    "coordinator": {"/", "/dashboard/alliances", "/alliances/european-energy-sharing/members",
                    "/alliances/european-energy-sharing/audit", "/audit", "/digests/preferences"},
    "member": {"/", "/notes/", "/alliances/", "/account"},
    "org admin": {"/", "/organisations/baltic-energy-isac/users"},
    "pending": {"/status"},
}


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
@pytest.mark.parametrize("who", ["visitor", "admin", "coordinator", "member", "org admin",
                                 "pending"])
def test_every_page_reached_fits_the_screen_and_passes_axe(live, browser, demo, who, viewport):
    base = live["url"]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    start = VISITOR_START
    if who != "visitor":
        email, password = demo[who]
        sign_in(page, base, email, password)
        start = ["/", "/status"]
    walked = walk(page, base, start)
    context.close()

    assert MUST_REACH[who] <= {path for path, _ in walked}, walked
    problems = [f"{path}: {p}" for path, found in walked for p in found]
    assert not problems, "\n".join(problems)


def header_rows(page):
    """The header's items (brand, links, who you are, Sign out) as rows: items whose vertical
    extents overlap share a row."""
    boxes = page.eval_on_selector_all(
        ".topbar-inner > .brand, .mainnav li, .usernav > *",
        "items => items.map(i => { const r = i.getBoundingClientRect();"
        " return [r.top, r.bottom, i.innerText.trim()]; })")
    rows = []
    for top, bottom, text in sorted(boxes):
        if rows and top < rows[-1]["bottom"]:
            rows[-1]["items"].append(text)
            rows[-1]["bottom"] = max(rows[-1]["bottom"], bottom)
        else:
            rows.append({"bottom": bottom, "items": [text]})
    return [row["items"] for row in rows]


@pytest.mark.parametrize("who", ["admin", "coordinator", "member", "org admin", "founder"])
def test_the_signed_in_header_fits_one_row_at_1280_px(live, browser, demo, who):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, live["url"], *demo[who])
    page.goto(live["url"] + "/")
    rows = header_rows(page)
    context.close()

    assert len(rows) == 1, rows
    assert "Sign out" in rows[0] and len(rows[0]) >= 6, rows


def test_the_header_takes_more_rows_on_a_phone(live, browser, demo):
    """The check above can fail: at 390 px the same header wraps."""
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in(page, live["url"], *demo["coordinator"])
    rows = header_rows(page)
    context.close()
    assert len(rows) > 1


# The controls a keyboard reaches with Tab (one stop per group of radio buttons, which the arrow
# keys move through), and whether the focused one shows where the focus is.
_MARK_CONTROLS = """() => {
  const controls = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex="0"]')]
    .filter(c => c.checkVisibility() && !c.disabled && c.tabIndex >= 0
                 && !c.closest('.visually-hidden'));
  const stops = new Set();
  controls.forEach((c, i) => {
    c.dataset.tabStop = c.type === 'radio' ? 'radio ' + c.name : 'control ' + i;
    c.dataset.tabIndex = i;
    stops.add(c.dataset.tabStop);
  });
  return [...stops];
}"""
_FOCUSED = """() => {
  const f = document.activeElement;
  if (!f || f === document.body) return null;
  const style = getComputedStyle(f);
  const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
               || style.boxShadow !== 'none';
  return {stop: f.dataset.tabStop || null, index: f.dataset.tabIndex || null, ring,
          shadow: style.boxShadow, outline: style.outlineStyle,
          what: f.tagName.toLowerCase() + (f.id ? '#' + f.id : '')
                + (f.name ? '[name=' + f.name + ']' : '')};
}"""


def tab_through(page):
    """Press Tab from the top of the page until the focus comes round again: the tab stops
    never reached, and the focused elements that showed no focus ring."""
    stops = page.evaluate(_MARK_CONTROLS)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    reached, no_ring, first = set(), [], None
    for _ in range(len(stops) + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is None:
            continue
        if focused["index"] == first:
            break
        first = first or focused["index"]
        reached.add(focused["stop"])
        if not focused["ring"]:
            no_ring.append(f'{focused["what"]} ({focused["shadow"]}, {focused["outline"]})')
    return [s for s in stops if s not in reached], no_ring


KEYBOARD_PAGES = {
    "visitor": ["/auth/sign-in", "/register", "/auth/reset"],
    "member": ["/notes/new/incident", "/notes/new/indicators", "/notes/new/bundle",
               "/digests/preferences", "/auth/password", "/notes/"],
    "coordinator": ["/alliances/european-energy-sharing/members",
                    "/alliances/european-energy-sharing/settings", "/alliances/new", "/audit"],
}


@pytest.mark.parametrize("who", sorted(KEYBOARD_PAGES))
def test_every_control_of_the_forms_is_reached_by_tab_and_shows_its_focus(live, browser, demo,
                                                                          who):
    base = live["url"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    if who != "visitor":
        sign_in(page, base, *demo[who])
    problems = []
    for path in KEYBOARD_PAGES[who]:
        page.goto(base + path)
        missed, no_ring = tab_through(page)
        problems += [f"{path}: Tab never reaches {page.evaluate(_DESCRIBE, stop)}"
                     for stop in missed]
        problems += [f"{path}: {what} shows no focus ring" for what in no_ring]
    context.close()
    assert not problems, "\n".join(problems)


_DESCRIBE = """stop => { const c = document.querySelector(`[data-tab-stop="${stop}"]`);
  return c.outerHTML.slice(0, 120); }"""


def test_sign_in_and_watch_a_term_with_the_keyboard_alone(live, browser, demo):
    base = live["url"]
    email, password = demo["member"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{base}/auth/sign-in")

    def tab_to(selector, limit=40):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reaches {selector}")

    tab_to("input[name=email]")
    page.keyboard.type(email)
    tab_to("input[name=password]")
    page.keyboard.type(password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#sign-out").count() == 1

    page.goto(f"{base}/digests/preferences")
    tab_to("#watch-value")
    page.keyboard.type("203.0.113.45")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "203.0.113.45" in page.inner_text("#watch-term-list")
    # The term's Remove button, from the keyboard too.
    page.goto(f"{base}/digests/preferences")
    tab_to("#watch-term-list button")
    with page.expect_navigation():
        page.keyboard.press("Space")
    assert page.locator("#watch-term-list").count() == 0
    context.close()
