"""Issue 23 in a real browser (chromium; axe-core audits every page it loads): an incident
report naming a private address and an ATT&CK technique is held back with "share anyway?",
shared once confirmed, and its note page shows the technique by name and tactic and marks
the address as on a warning list."""
import re

import pytest
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import Note, Observable
from tests.browser.helpers import signed_in_page

pytestmark = pytest.mark.browser
NOTE_URL = re.compile(r"/notes/[0-9a-f-]{36}$")


def test_compose_warns_of_a_private_address_then_shares_it_marked_with_names(
        live, browser, member, alliance):
    base = live["url"]
    context, page = signed_in_page(browser, base, member.email)
    title = "Beacon from an internal host"
    page.goto(f"{base}/notes/new/incident")
    page.fill("input[name=title]", title)
    page.fill("textarea[name=observables]", "10.0.0.1\n45.77.12.9")
    page.fill("input[name=attack_ids]", "T1566.001")
    page.check(f"input[name=alliances][value='{alliance.id}']")

    page.click("#post-submit")
    page.wait_for_load_state()
    assert "10.0.0.1 is in RFC 1918 private space: share anyway?" in page.inner_text(
        "#flagged-values")
    assert "45.77.12.9" not in page.inner_text("#flagged-values")
    # The form, as sent, echoes the technique by name beside its field.
    assert "Spearphishing Attachment" in page.inner_text("#attack-names")
    assert not page.is_checked("input[name=confirm_flagged]")
    db.session.expire_all()
    assert db.session.scalars(select(Note).where(Note.title == title)).all() == []

    page.check("input[name=confirm_flagged]")
    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)
    techniques = page.inner_text("#attack-techniques")
    assert "T1566.001" in techniques and "Spearphishing Attachment" in techniques
    assert "tactic: Initial Access" in techniques
    marked = page.inner_text("#flagged-observables")
    assert "Warning list" in marked and "10.0.0.1 is in RFC 1918 private space" in marked
    assert "45.77.12.9" not in marked
    page.click("#objects-details > summary")  # the STIX cards, collapsed below the summary
    card = page.locator("#type-indicator .obj", has_text="10.0.0.1")
    assert "Warning list" in card.inner_text()

    db.session.expire_all()
    [note] = db.session.scalars(select(Note).where(Note.title == title)).all()
    assert dict(db.session.execute(select(Observable.value, Observable.warning).where(
        Observable.note_id == note.id)).all()) == {"10.0.0.1": "rfc1918", "45.77.12.9": None}
    context.close()
