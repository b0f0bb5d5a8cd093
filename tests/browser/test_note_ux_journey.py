"""Issue 20's posting and reading points, walked in a real browser (Playwright driving Debian's
chromium against the app on loopback, axe-core over every page): a retracted note tells its
former readers and nobody else; the upload form keeps its file through "Preview audience"; a
refused Share opens on the list of its errors; a refused comment opens at its form; a bad
feed filter is a message on the feed with the filters kept."""
import json
import re
import uuid

import pytest
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes import compose, posting
from alliance.notes.models import Note
from tests import factories
from tests.browser.helpers import signed_in_page
from tests.notes.helpers import bundle, indicator

pytestmark = pytest.mark.browser
NOTE_URL = re.compile(r"/notes/[0-9a-f-]{36}$")


def _notes(title: str) -> list[Note]:
    db.session.expire_all()
    return db.session.scalars(select(Note).where(Note.title == title)).all()


def _in_view(page, selector: str) -> bool:
    """Whether the element is on screen, where the person's eyes are."""
    return page.eval_on_selector(selector, """e => {
        const r = e.getBoundingClientRect();
        return r.bottom > 0 && r.top < window.innerHeight;
    }""")


def _focused(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def _without_tokens(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]*"', "", html)


def test_a_former_reader_finds_a_tombstone_and_an_outsider_the_404_of_nothing(
        live, browser, member, coordinator, outsider, alliance):
    base = live["url"]
    reader_org = factories.make_org("Reading Org")
    factories.add_member(alliance, reader_org, "active")
    reader = factories.make_user(reader_org, "reader@reading.example", name="Rhea Reader")
    note = posting.post_note(member, posting.NoteDraft(
        title="Relay at 198.51.100.31", tlp="AMBER", alliance_ids=[alliance.id],
        description="Seen in the March wave.",
        objects=[indicator(pattern="[ipv4-addr:value = '198.51.100.31']")]))
    note_url = f"{base}/notes/{note.uuid}"

    context, page = signed_in_page(browser, base, coordinator.email)
    page.goto(note_url)
    page.fill("#retract-form textarea[name=reason]", "The address is a shared hosting proxy.")
    page.click("#retract-submit")
    page.wait_for_load_state()
    assert "Retracted on" in page.inner_text("#retraction")  # coordinators still read it
    context.close()

    context, page = signed_in_page(browser, base, reader.email)
    response = page.goto(note_url)
    assert response.status == 410
    assert page.inner_text("#tombstone-title") == "Relay at 198.51.100.31"
    who = page.inner_text("#tombstone-who")
    assert "Coord" in who and "Coordinating Org" in who
    assert "The address is a shared hosting proxy." in page.inner_text("#tombstone-reason")
    assert "should no longer be used" in page.inner_text("#tombstone-advice")
    assert "March wave" not in page.content()
    page.goto(f"{base}/notes/?q=198.51.100.31")
    assert "Relay at" not in page.inner_text("main")  # still out of search and the feed
    context.close()

    context, page = signed_in_page(browser, base, outsider.email)
    retracted = page.goto(note_url)
    retracted_body = _without_tokens(page.content())
    never = page.goto(f"{base}/notes/{uuid.uuid4()}")
    assert retracted.status == never.status == 404
    assert retracted_body == _without_tokens(page.content())
    context.close()


def test_the_chosen_file_is_kept_through_preview_and_share_posts_it(live, browser, member,
                                                                   alliance):
    base = live["url"]
    raw = json.dumps(bundle(indicator(pattern="[ipv4-addr:value = '203.0.113.151']"))).encode()
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/notes/new/bundle")
    page.fill("input[name=title]", "Kept file")
    page.set_input_files("input[name=bundle_file]", files=[
        {"name": "relays.json", "mimeType": "application/json", "buffer": raw}])
    page.check(f"input[name=alliances][value='{alliance.id}']")

    page.click("#preview-submit")
    page.wait_for_load_state()
    assert page.locator("#audience-preview").count() == 1
    assert page.inner_text("#kept-file-name") == "relays.json"
    assert _notes("Kept file") == []

    page.click("#post-submit")  # the file input is empty now: the kept file is shared
    page.wait_for_url(NOTE_URL)
    [note] = _notes("Kept file")
    assert page.url.endswith(f"/notes/{note.uuid}")
    page.click("#objects-details > summary")  # the STIX cards, collapsed below the summary
    assert "203.0.113.151" in page.inner_text("#type-indicator")
    context.close()


def test_a_refused_share_opens_on_the_list_of_every_error(live, browser, member, alliance):
    base = live["url"]
    context, page = signed_in_page(browser, base, member.email)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{base}/notes/new/incident")
    page.fill("input[name=title]", "Two mistakes")
    page.fill("textarea[name=observables]", "203.0.113.9\nnot-an-observable!")
    # No alliance ticked, and a line that is no observable.

    page.click("#post-submit")
    page.wait_for_load_state()

    assert _focused(page) == "error-summary"
    assert _in_view(page, "#error-summary")
    summary = page.inner_text("#error-summary")
    assert "2 problems" in summary
    assert "Choose at least one alliance to share with." in summary
    assert "Not recognised as observables: not-an-observable!" in summary
    page.click("#error-summary a[href='#field-observables']")
    assert _in_view(page, "#observables-errors")  # each entry leads to its field
    assert _notes("Two mistakes") == []

    page.check(f"input[name=alliances][value='{alliance.id}']")
    page.fill("textarea[name=observables]", "203.0.113.9")
    page.click("#preview-submit")  # the preview checks the observables as Share does
    page.wait_for_load_state()
    assert page.locator("#error-summary").count() == 0
    page.fill("textarea[name=observables]", "203.0.113.9\nstill wrong!")
    page.click("#preview-submit")
    page.wait_for_load_state()
    assert "Not recognised as observables: still wrong!" in page.inner_text("#error-summary")
    assert _focused(page) == "error-summary"
    context.close()


def test_an_empty_comment_answers_beside_the_response_form(live, browser, member, coordinator,
                                                           alliance):
    base = live["url"]
    # A long page, as real notes make: the response form is far below the top.
    values = "\n".join(f"203.0.113.{i}" for i in range(1, 61))
    objects = compose.indicator_set(member.organisation, "AMBER", observables_text=values)
    note = posting.post_note(member, posting.NoteDraft(
        title="Sixty addresses", tlp="AMBER", alliance_ids=[alliance.id], objects=objects))
    context, page = signed_in_page(browser, base, coordinator.email)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{base}/notes/{note.uuid}")

    page.select_option("#response-form select[name=kind]", "comment")
    page.click("#response-submit")  # no text
    page.wait_for_load_state()

    assert page.url.endswith(f"/notes/{note.uuid}/responses#response-errors")
    assert "Write something." in page.inner_text("#response-form")
    assert _in_view(page, "#response-errors")
    assert _focused(page) == "response-errors"
    # The form is below the first screen: the page opened there, not at its top.
    assert page.evaluate("document.getElementById('response-errors').getBoundingClientRect()"
                         ".top + window.scrollY") > 720
    assert page.evaluate("window.scrollY") > 0

    page.select_option("#response-form select[name=kind]", "opinion")
    page.fill("#response-form textarea[name=text]", "Matches our logs")
    page.click("#response-submit")  # no agree / neutral / disagree
    page.wait_for_load_state()
    assert "Choose agree, disagree or neutral." in page.inner_text("#response-errors")
    assert _in_view(page, "#response-errors")
    assert page.input_value("#response-form textarea[name=text]") == "Matches our logs"

    page.check("#response-form input[name=opinion][value=agree]")
    page.click("#response-submit")
    page.wait_for_load_state()
    assert "Matches our logs" in page.inner_text("#response-list")
    context.close()


def test_a_bad_feed_filter_is_a_message_on_the_feed_with_the_filters_kept(live, browser,
                                                                         member, alliance):
    base = live["url"]
    context, page = signed_in_page(browser, base, member.email)
    page.goto(f"{base}/notes/")
    page.fill("#feed-filters input[name=q]", "relay")
    page.fill("#feed-filters input[name=since]", "2025-03-05")
    page.fill("#feed-filters input[name=until]", "2025-03-01")
    with page.expect_navigation() as navigation:
        page.click("#filter-submit")

    assert navigation.value.status == 400
    assert page.locator("#error").count() == 0  # not the error page
    message = page.inner_text("#filter-errors")
    assert "Posted until" in message and "The end date is before the start date." in message
    assert page.input_value("#feed-filters input[name=q]") == "relay"
    assert page.input_value("#feed-filters input[name=since]") == "2025-03-05"
    assert page.input_value("#feed-filters input[name=until]") == "2025-03-01"

    page.fill("#feed-filters input[name=until]", "2025-03-09")
    with page.expect_navigation() as navigation:
        page.click("#filter-submit")
    assert navigation.value.status == 200
    assert page.locator("#filter-errors").count() == 0
    context.close()
