"""The axe-core hook of the browser tests (conftest.py, axe.py) finds what it is there to find:
a page's violations are reported even when the test leaves the page at once, and axe runs in
the site's pages under their Content-Security-Policy."""
import pytest

pytestmark = pytest.mark.browser

BROKEN = ("<!doctype html><html><head><meta charset=utf-8></head><body>"
          "<main><input type=text name=q></main></body></html>")


def test_a_page_left_at_once_is_checked_and_its_violations_reported(live, browser, axe):
    base = live["url"]
    context = browser.new_context()
    page = context.new_page()
    # A page of no language, no title and an unlabelled field, served at the site's address.
    page.route(f"{base}/axe-self-check", lambda route: route.fulfill(
        status=200, content_type="text/html", body=BROKEN))
    page.goto(f"{base}/axe-self-check")
    signed_out = page.goto(f"{base}/auth/sign-in")  # left before anything else was asked of it
    axe_ran = page.evaluate("() => typeof window.axe")

    report = axe.finish()
    axe.begin()  # these violations are this test's subject, not its failure
    context.close()

    assert report is not None
    assert f"{base}/axe-self-check: [critical] label" in report
    assert f"{base}/axe-self-check: [serious] html-has-lang" in report
    assert "/auth/sign-in" not in report
    # The sign-in page was checked too, with the site's policy in force.
    assert "script-src 'self'" in signed_out.headers["content-security-policy"]
    assert axe_ran == "object"
