"""Posting and reading notes in a real browser (Playwright driving Debian's chromium) against
the app on loopback: compose an incident report with hostile Markdown, preview its audience,
share it, read it as a member (TLP banner, objects, links, search), answer it with a
sighting as another member, and find nothing of it as an outsider. And a double click on
"Share note", as people do, posts one note."""
import json
import re
import time

import pytest
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes.models import Note, NoteComment
from tests.browser.helpers import sign_in, sign_out, signed_in_page

pytestmark = pytest.mark.browser
NOTE_URL = re.compile(r"/notes/[0-9a-f-]{36}$")


def _notes(title: str) -> list[Note]:
    db.session.expire_all()
    return db.session.scalars(select(Note).where(Note.title == title)).all()


def _indicator_set(browser, base, member, title: str, value: str):
    """A member's page with the indicator-set form filled in, not sent yet."""
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/notes/new/indicators")
    page.fill("input[name=title]", title)
    page.fill("textarea[name=observables]", value)
    page.check("input[name=alliances]")  # the member's one alliance: nothing is ticked for them
    return context, page


def test_compose_preview_share_read_answer_and_an_outsider_sees_nothing(
        live, browser, member, coordinator, outsider, alliance):
    base = live["url"]
    context = browser.new_context()
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    title = "Phishing wave <img src=x onerror=alert(1)>"

    sign_in(page, base, member.email)
    page.goto(f"{base}/notes/new/incident")
    page.fill("input[name=title]", title)
    page.fill("textarea[name=description]",
              "**Credential phishing** against ministries. [Report](JaVaScRiPt:alert(2)) "
              "<script>alert(3)</script> [Advisory](https://cert.example/advisory)")
    page.fill("textarea[name=observables]", "198.51.100.23\nevil-login.example\nCVE-2024-3094")
    page.fill("input[name=attack_ids]", "T1566.001")
    page.select_option("select[name=tlp]", "AMBER")
    # Nothing is ticked for the poster; sharing with no audience is an error beside the field.
    assert not page.is_checked(f"input[name=alliances][value='{alliance.id}']")
    page.click("#post-submit")
    page.wait_for_load_state()
    assert "Choose at least one alliance" in page.inner_text("main")
    assert _notes(title) == []
    page.check(f"input[name=alliances][value='{alliance.id}']")

    page.click("#preview-submit")
    page.wait_for_load_state()
    preview = page.inner_text("#preview-organisations")
    assert "Member Org" in preview and "Coordinating Org" in preview
    assert "Outside Org" not in preview
    assert _notes(title) == []  # a preview shares nothing

    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)
    note_url = page.url
    assert page.inner_text("#note-title") == title  # shown as text, not markup
    assert page.inner_text("#tlp-banner").startswith("TLP:AMBER")
    assert page.inner_text("#description strong") == "Credential phishing"
    hrefs = page.eval_on_selector_all("#description a", "links => links.map(a => a.href)")
    assert hrefs == ["https://cert.example/advisory"]
    assert page.locator("#description script").count() == 0
    assert page.locator("#type-indicator").count() == 1
    assert page.locator("#type-vulnerability a[href*='cve.org']").count() == 1
    assert page.locator("#type-attack-pattern a[href*='attack.mitre.org']").count() >= 1

    page.goto(f"{base}/notes/?q=198.51.100.23")
    assert "Member Org" in page.inner_text("#who-has-seen")
    assert title in page.inner_text("#note-list")
    sign_out(page)

    sign_in(page, base, coordinator.email)
    page.goto(note_url)
    page.select_option("select[name=kind]", "sighting")
    page.fill("#response-form textarea[name=text]", "Seen at our edge too")
    page.click("#response-submit")
    page.wait_for_load_state()
    assert "Seen at our edge too" in page.inner_text("#response-list")
    [note] = _notes(title)
    assert [c.kind for c in db.session.scalars(select(NoteComment).where(
        NoteComment.note_id == note.id))] == ["sighting"]
    sign_out(page)

    sign_in(page, base, outsider.email)
    assert page.goto(note_url).status == 404
    page.goto(f"{base}/notes/?q=198.51.100.23")
    assert "No one you share with has reported" in page.inner_text("#seen-nobody")
    assert title not in page.content()
    assert dialogs == []  # no script of the note's ran, on any page
    context.close()


def test_share_note_clicked_again_while_the_first_answer_is_slow_posts_one_note(
        live, browser, member, alliance):
    """A slow answer, and the person clicks "Share note" again: the first sending reached the
    server (and was posted), its answer has not reached the browser, and the browser sends
    the form a second time. The answer to the first is held back here (Playwright's route)
    after the server has answered it, as a slow network holds it."""
    base = live["url"]
    context, page = _indicator_set(browser, base, member, "Clicked again", "203.0.113.77")
    held = []

    def slow(route):
        if route.request.method != "POST":
            route.continue_()
        elif not held:
            held.append(route.fetch(max_redirects=0))  # at the server; its answer is held
        else:
            route.continue_()

    page.route("**/notes/new/indicators", slow)
    sent_before = live["requests"].count(("POST", "/notes/new/indicators"))
    page.locator("#post-submit").scroll_into_view_if_needed()
    box = page.locator("#post-submit").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)  # the mouse itself: a click waits for no navigation
    page.wait_for_timeout(500)
    assert held and held[0].status == 302  # the first sending was posted
    page.mouse.click(x, y)
    # The browser gives up the first navigation (an abort that wait_for_url may take for
    # this one's failure) and follows this one's answer.
    deadline = time.monotonic() + 30
    while not NOTE_URL.search(page.url):
        assert time.monotonic() < deadline, f"the second sending led to {page.url}"
        page.wait_for_timeout(100)
    page.wait_for_load_state()

    assert live["requests"].count(("POST", "/notes/new/indicators")) - sent_before == 2
    [note] = _notes("Clicked again")
    assert page.url.endswith(f"/notes/{note.uuid}")
    assert "That form was sent twice; it is posted once, here." in page.content()
    context.close()


def test_back_after_sharing_and_share_note_again_posts_one_note(live, browser, member,
                                                                alliance):
    """Back after the note is shared: the browser fetches the compose page again (signed-in
    pages are not cached), with a token of its own, and fills some fields in again as they
    were (chromium: the title, not the observables, which the person pastes again). "Share
    note" there sends the same note a second time: it leads to the first."""
    base = live["url"]
    context, page = _indicator_set(browser, base, member, "Shared, then Back", "203.0.113.78")
    sent_before = live["requests"].count(("POST", "/notes/new/indicators"))
    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)
    [note] = _notes("Shared, then Back")
    first = page.url

    page.go_back()
    page.wait_for_url(f"{base}/notes/new/indicators")
    assert page.input_value("input[name=title]") == "Shared, then Back"
    page.fill("textarea[name=observables]", "203.0.113.78")
    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)

    assert live["requests"].count(("POST", "/notes/new/indicators")) - sent_before == 2
    assert _notes("Shared, then Back") == [note]
    assert page.url == first
    assert "That form was sent twice; it is posted once, here." in page.content()
    context.close()


def test_a_looser_marked_object_is_shown_in_the_preview_and_shared_only_once_confirmed(
        live, browser, member, alliance):
    """A TLP:CLEAR indicator pasted into a TLP:AMBER upload: the preview lists it with the
    warning, "Share note" without the confirmation is refused on the checkbox, and ticked it
    posts."""
    from alliance.stix.markings import marking_id
    from tests.notes.helpers import bundle, indicator

    base = live["url"]
    clear = indicator(name="Widely shared", object_marking_refs=[marking_id("CLEAR")])
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/notes/new/bundle")
    page.fill("input[name=title]", "Looser inside")
    page.fill("textarea[name=bundle_text]", json.dumps(bundle(clear)))
    page.select_option("select[name=tlp]", "AMBER")
    page.check(f"input[name=alliances][value='{alliance.id}']")

    page.click("#preview-submit")
    page.wait_for_load_state()
    warning = page.inner_text("#looser-markings")
    assert clear["id"] in warning and "Widely shared" in warning
    assert "TLP:CLEAR" in warning and "TLP:AMBER" in warning
    assert not page.is_checked("input[name=confirm_looser]")

    page.click("#post-submit")
    page.wait_for_load_state()
    assert "marked looser than the note's TLP:AMBER" in page.inner_text(
        "#confirm_looser-errors")
    assert _notes("Looser inside") == []

    page.check("input[name=confirm_looser]")
    page.click("#post-submit")
    page.wait_for_url(NOTE_URL)
    [note] = _notes("Looser inside")
    assert page.url.endswith(f"/notes/{note.uuid}")
    context.close()
