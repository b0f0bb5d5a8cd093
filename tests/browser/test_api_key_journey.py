"""API keys in a real browser (Playwright driving Debian's chromium) against the app on
loopback: a member creates a key, sees it once, a TAXII client reads the member's collections
with it over HTTP, the key is listed without its secret, and once revoked in the browser
the same key is refused."""
import pytest
import requests

from tests.browser.helpers import signed_in_page

pytestmark = pytest.mark.browser
TAXII = "application/taxii+json;version=2.1"


def _collections(base, key):
    return requests.get(f"{base}/taxii2/api/collections/", timeout=10, headers={
        "Accept": TAXII, "Authorization": f"Bearer {key}"})


def test_create_a_key_use_it_over_taxii_and_revoke_it(live, browser, member, alliance):
    base = live["url"]
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/account")
    page.fill("#new-api-key-form input[name=name]", "SIEM connector")
    page.click("#new-api-key-submit")
    page.wait_for_load_state()
    key = page.input_value("#new-key-value")
    assert len(key) >= 32
    assert key in page.inner_text("#usage-example")

    answer = _collections(base, key)
    assert answer.status_code == 200, answer.text[:300]
    assert alliance.name in [c["title"] for c in answer.json()["collections"]]

    page.click("#back-to-account")
    page.wait_for_load_state()
    listed = page.inner_text("#api-keys-table")
    assert "SIEM connector" in listed
    assert key not in page.content()  # shown once: never again

    page.click("#api-keys-table button:has-text('Revoke')")
    page.wait_for_load_state()
    assert "revoked" in page.inner_text("#api-keys-table").lower()
    assert _collections(base, key).status_code == 401
    context.close()
