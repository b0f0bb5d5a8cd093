"""A coordinator's morning, in a real browser (Playwright driving Debian's chromium) against
the app on loopback with a real Celery worker: the dashboard lists what waits across their
alliances with counts; one click approves a request and the flash says what happened to
whom; a rejection takes its reason; the audit log tells both as sentences, filters them and
downloads the filtered events as CSV."""
import csv
import io

import pytest

from alliance.alliances import transitions
from tests import factories
from tests.browser.helpers import sign_in

pytestmark = pytest.mark.browser

ENERGY = "European Energy Sharing Alliance"


def _text(page, selector) -> str:
    return " ".join(page.locator(selector).inner_text().split())


@pytest.fixture
def morning(db):
    """Ingrid coordinates two alliances; three organisations ask to join, one is invited."""
    nordic = factories.make_org("Nordic CERT", country="NO")
    ingrid = factories.make_user(nordic, "ingrid@nordic.example", role="org_admin",
                                 name="Ingrid Larsen")
    energy = factories.make_alliance(ingrid, slug="energy", name=ENERGY)
    forum = factories.make_alliance(ingrid, slug="forum", name="Cyber Diplomacy Forum")
    asking = {}
    for name, alliance in (("Sunrise Telecom", energy), ("Danube Hydro Power", energy),
                           ("Geneva Policy Lab", forum)):
        org = factories.make_org(name)
        admin = factories.make_user(org, f"admin@{org.slug}.example", role="org_admin")
        asking[name] = transitions.request_to_join(admin, alliance, accept_charter=True,
                                                message=f"{name} would like to share.")
    transitions.invite_organisation(ingrid, energy, factories.make_org("Iberian Grid Operator"))
    return ingrid, asking


def test_the_coordinator_acts_from_the_inbox_and_finds_it_in_the_audit_log_and_its_csv(
        live, browser, morning):
    base = live["url"]
    ingrid, asking = morning
    sunrise, danube = asking["Sunrise Telecom"], asking["Danube Hydro Power"]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in(page, base, ingrid.email)

    # 1. The dashboard is an inbox: three requests across both alliances, with a count.
    assert page.url == f"{base}/"
    assert _text(page, "#requests-count") == "3"
    assert _text(page, "#invitations-count") == "1"
    requests = _text(page, "#inbox-requests")
    assert f"Sunrise Telecom asks to join {ENERGY}" in requests
    assert "Geneva Policy Lab asks to join Cyber Diplomacy Forum" in requests
    assert "Iberian Grid Operator has not answered" in _text(page, "#inbox-invitations")

    # 2. One click approves Sunrise Telecom; back on the dashboard, the flash says so.
    page.locator(f"#inbox-approve-{sunrise.id} button").click()
    page.wait_for_load_state()
    assert page.url == f"{base}/"
    assert (f"The request from Sunrise Telecom was approved: Sunrise Telecom is now a member "
            f"of {ENERGY}.") in _text(page, "main")
    assert _text(page, "#requests-count") == "2"
    assert page.locator(f"#inbox-request-{sunrise.id}").count() == 0

    # 3. Rejecting Danube Hydro Power takes a reason, typed beside the button.
    page.locator(f"#inbox-request-{danube.id} summary").click()
    page.fill(f"#inbox-reject-reason-{danube.id}", "We admit energy operators of the EU only.")
    page.locator(f"#inbox-reject-{danube.id} button").click()
    page.wait_for_load_state()
    assert "The request from Danube Hydro Power was rejected" in _text(page, "main")
    assert _text(page, "#requests-count") == "1"

    # 4. The audit log of every alliance Ingrid coordinates tells it in sentences.
    page.click("#inbox-audit-link")
    page.wait_for_load_state()
    assert page.url == f"{base}/audit"
    log = _text(page, "#audit-table")
    assert (f"Ingrid Larsen of Nordic CERT approved the request from Sunrise Telecom to join "
            f"{ENERGY}") in log
    rejected = (f"Ingrid Larsen of Nordic CERT rejected the request from Danube Hydro Power to "
                f"join {ENERGY}: We admit energy operators of the EU only.")
    assert rejected in log
    assert "Geneva Policy Lab would like to share." in log  # the forum's request too

    # 5. Filtered to one alliance and one action, it lists the rejection alone.
    page.select_option("#alliance", "energy")
    page.select_option("#action", "membership.rejected")
    page.click("#audit-filter-submit")
    page.wait_for_load_state()
    assert "action=membership.rejected" in page.url and "alliance=energy" in page.url
    rows = page.locator("#audit-table tbody tr")
    assert rows.count() == 1
    assert rejected in " ".join(rows.first.inner_text().split())
    assert page.locator("#action").input_value() == "membership.rejected"  # filters kept

    # 6. The CSV holds what the filters select, as sentences.
    with page.expect_download() as download:
        page.click("#audit-csv")
    saved = download.value
    assert saved.suggested_filename.startswith("audit-my-alliances-")
    assert saved.suggested_filename.endswith(".csv")
    with open(saved.path(), encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(io.StringIO(f.read())))
    assert [(r["action"], r["event"], r["reason"]) for r in csv_rows] == [
        ("membership.rejected", rejected, "We admit energy operators of the EU only.")]

    # 7. Cleared, the filters give the whole log back.
    page.click("#audit-filter-clear")
    page.wait_for_load_state()
    assert page.url == f"{base}/audit"
    assert page.locator("#audit-table tbody tr").count() > 1
    context.close()
