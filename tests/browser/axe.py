"""axe-core over every page the browser tests visit.

A page's "load" marks its document as due; the check runs in the test's own flow, just before
the test's next Playwright call (which may be the click that leaves the page) and at the end of
the test. So it never races a navigation the test starts, and no document is skipped. (Holding
the next navigation in a route and checking then does not work: chromium does not evaluate
anything in a document whose successor's request is held.) The one hook for "the test's next
Playwright call" is the sync API's SyncBase._sync, which every sync call goes through:
AxeAudit.install wraps it for the test module and puts it back after.

axe comes from the npm registry (package.json, `make node-deps`) and is evaluated in the page
by the DevTools protocol, which the site's Content-Security-Policy (script-src 'self') does not
govern, so the pages are checked under the policy they really run with. A <script> tag
(Playwright's add_script_tag) would be refused by that policy.

Violations of impact "serious" or "critical" fail the test that visited the page."""
from pathlib import Path

import greenlet
from playwright._impl._sync_base import SyncBase
from playwright.sync_api import Error as PlaywrightError

AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
FAILING = ("serious", "critical")

# Marks the document as checked first, so that a document is checked once however often it
# is found due (a page closed after its check, say).
_RUN = """async (failing) => {
  if (window.__axeChecked || document.contentType !== 'text/html') return null;
  window.__axeChecked = true;
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.filter(v => failing.includes(v.impact)).map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary),
  }));
}"""


def axe_source() -> str:
    if not AXE_JS.exists():
        raise RuntimeError(f"{AXE_JS} is missing: `make node-deps` installs axe-core "
                           "(npm ci, from package-lock.json)")
    return AXE_JS.read_text()


class AxeAudit:
    """Collects, per test, the serious and critical axe violations of every document the
    pages of the watched contexts load."""

    def __init__(self):
        self._source = axe_source()
        self._due = []  # pages whose loaded document is not checked yet
        self._checking = False
        self.violations = []  # (url, violation) of the running test

    def install(self):
        """Run the due checks before each sync Playwright call of the test; the uninstaller."""
        original = SyncBase._sync
        audit = self

        def _sync(api_object, awaitable):
            audit.check_due()
            return original(api_object, awaitable)

        SyncBase._sync = _sync
        return lambda: setattr(SyncBase, "_sync", original)

    def begin(self):
        self._due = []
        self.violations = []

    def watch_context(self, context):
        context.on("page", self.track)
        for page in context.pages:
            self.track(page)

    def track(self, page):
        page.on("load", self._loaded)

    def _loaded(self, page):
        if page not in self._due:
            self._due.append(page)

    def check_due(self):
        # Only in the test's own flow (the root greenlet): a route or event handler runs in a
        # greenlet of its own, possibly while a navigation is held, and a check's own calls
        # come back here.
        if self._checking or not self._due or greenlet.getcurrent().parent is not None:
            return
        self._checking = True
        try:
            while self._due:
                self._check(self._due.pop(0))
        finally:
            self._checking = False

    def _check(self, page):
        if page.is_closed() or not page.url.startswith("http"):
            return
        found = None
        for attempt in range(2):
            try:
                if page.evaluate("() => typeof window.axe === 'undefined'"):
                    page.evaluate(self._source)
                found = page.evaluate(_RUN, list(FAILING))
                break
            except PlaywrightError:
                # The document went away under the check (a navigation the page or an
                # earlier call started): the one it led to is checked when it has loaded.
                if attempt or page.is_closed():
                    return
                page.wait_for_load_state()
        for violation in found or []:
            self.violations.append((page.url, violation))

    def finish(self):
        """Check what is due; the report of the test's violations, or None."""
        self.check_due()
        if not self.violations:
            return None
        lines = [f"axe-core: {len(self.violations)} serious or critical violation(s)"]
        for url, v in self.violations:
            lines.append(f"- {url}: [{v['impact']}] {v['id']}: {v['help']}")
            lines.extend(f"    {node}" for node in v["nodes"])
        return "\n".join(lines)
