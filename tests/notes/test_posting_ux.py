"""Posting and reading as people do it (issue 20): the upload form keeps its file through
"Preview audience"; a refused Share lists every error at the top of the form, focused; the
preview checks observables as Share does; a refused comment or opinion answers beside its
form; a bad feed filter is a message on the feed with the filters kept; and a note from an
uploaded bundle names its author organisation, not its identity id."""
import html
import io
import re
import secrets
import uuid

import orjson
from sqlalchemy import select

from alliance.extensions import db
from alliance.notes import posting, reading
from alliance.notes.models import Note, NoteComment
from tests import factories
from tests.notes.helpers import STAMP, bundle, indicator, sid

KEPT = re.compile(r'name="kept_bundle" type="hidden" value="([^"]*)"')
INDICATOR_VALUE = "203.0.113.145"


def _upload(client, alliance, action, *, raw=None, form="form-1", **extra):
    data = {"title": "From a file", "tlp": "AMBER", "alliances": str(alliance.id),
            "submission": form, action: "1", **extra}
    if raw is not None:
        data["bundle_file"] = (io.BytesIO(raw), "relays.json", "application/json")
    return client.post("/notes/new/bundle", data=data, content_type="multipart/form-data")


def _kept(response) -> str:
    return html.unescape(KEPT.search(response.get_data(as_text=True)).group(1))


def _raw() -> bytes:
    return orjson.dumps(bundle(indicator(pattern=f"[ipv4-addr:value = '{INDICATOR_VALUE}']")))


def _notes() -> list[Note]:
    db.session.expire_all()
    return db.session.scalars(select(Note)).all()


# --- the upload keeps its file ---------------------------------------------------------------

def test_the_chosen_file_is_kept_through_preview_and_share_posts_it(as_member, alliance):
    preview = _upload(as_member, alliance, "preview", raw=_raw())
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'id="audience-preview"' in page
    assert 'id="kept-file-name">relays.json<' in page
    assert _kept(preview)

    shared = _upload(as_member, alliance, "post", kept_bundle=_kept(preview))  # no file sent

    assert shared.status_code == 302, shared.get_data(as_text=True)
    [note] = _notes()
    assert INDICATOR_VALUE in orjson.dumps(reading.note_bundle(note)).decode()


def test_a_refused_share_keeps_the_file_too(as_member, alliance):
    refused = _upload(as_member, alliance, "post", raw=_raw(), title="")
    assert refused.status_code == 422 and _kept(refused)
    assert _upload(as_member, alliance, "post", kept_bundle=_kept(refused)).status_code == 302


def test_a_kept_file_serves_only_its_own_form_and_user(client, as_member, member, alliance,
                                                       coordinator):
    kept = _kept(_upload(as_member, alliance, "preview", raw=_raw()))

    other_form = _upload(as_member, alliance, "post", kept_bundle=kept, form="another-form")
    factories.login(client, coordinator)
    other_user = _upload(client, alliance, "post", kept_bundle=kept)
    forged = _upload(client, alliance, "post", kept_bundle=kept[:-4] + "AAAA")

    for response in (other_form, other_user, forged):
        assert response.status_code == 422
        assert "The file kept from your preview cannot be used" in response.get_data(True)
    assert _notes() == []


def test_a_file_chosen_again_or_dropping_the_kept_one_wins(as_member, alliance):
    kept = _kept(_upload(as_member, alliance, "preview", raw=_raw()))
    pasted = orjson.dumps(bundle(indicator(pattern="[ipv4-addr:value = '192.0.2.99']"))).decode()

    _upload(as_member, alliance, "post", kept_bundle=kept, drop_kept="y", bundle_text=pasted)

    [note] = _notes()
    served = orjson.dumps(reading.note_bundle(note)).decode()
    assert "192.0.2.99" in served and INDICATOR_VALUE not in served


def test_a_file_too_large_for_a_form_field_is_not_kept_and_the_page_says_so(
        app, monkeypatch, as_member, alliance):
    # (Werkzeug reads a form in 64 KiB chunks, each checked against the limit: not less.)
    monkeypatch.setitem(app.config, "MAX_FORM_MEMORY_SIZE", 150_000)
    raw = orjson.dumps(bundle(*[indicator(name=secrets.token_hex(100)) for _ in range(1500)]))

    page = _upload(as_member, alliance, "preview", raw=raw).get_data(as_text=True)

    assert "is too large to keep on this page: choose it again before sharing" in page
    assert 'id="kept-file-name"' not in page and not KEPT.search(page).group(1)


# --- errors where the eye is -----------------------------------------------------------------

def test_a_refused_share_lists_every_error_at_the_top_focused(as_member, alliance):
    response = as_member.post("/notes/new/incident", data={
        "title": "", "tlp": "AMBER", "observables": "203.0.113.9", "post": "1"})
    page = response.get_data(as_text=True)

    assert response.status_code == 422
    summary = re.search(r'<div class="[^"]*error-summary"[^>]*>', page).group(0)
    assert 'id="error-summary"' in summary and "autofocus" in summary
    assert 'tabindex="-1"' in summary
    assert page.index('id="error-summary"') < page.index('id="compose-form"')
    items = page.split('id="error-summary-list"', 1)[1].split("</ul>", 1)[0]
    assert '<a href="#field-title">Title</a>' in items
    assert '<a href="#field-alliances">Share with</a>' in items
    assert "2 problems" in page
    assert len(re.findall(r"\sautofocus", page)) == 1  # the summary, not the title field


def test_the_preview_checks_observables_as_share_does(as_member, alliance):
    response = as_member.post("/notes/new/incident", data={
        "title": "Wave", "tlp": "AMBER", "alliances": str(alliance.id), "preview": "1",
        "observables": "203.0.113.9\nnot an observable", "attack_ids": "T99"})
    page = response.get_data(as_text=True)

    assert 'id="audience-preview"' in page  # still previewed
    items = page.split('id="error-summary-list"', 1)[1].split("</ul>", 1)[0]
    assert "Not recognised as observables: not an observable" in items
    assert 'id="observables-errors"' in page
    assert _notes() == []


def test_an_empty_comment_answers_beside_the_response_form(client, member, coordinator,
                                                           alliance):
    note = posting.post_note(member, posting.NoteDraft(
        title="Relay", tlp="AMBER", alliance_ids=[alliance.id], objects=[indicator()]))
    factories.login(client, coordinator)

    for data, message in (({"kind": "comment", "text": "  "}, "Write something."),
                          ({"kind": "opinion", "text": "Looks right"},
                           "Choose agree, disagree or neutral.")):
        response = client.post(f"/notes/{note.uuid}/responses", data=data)
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        form = page.split('id="response-form"', 1)[1].split("</form>", 1)[0]
        assert message in form  # beside the form, not in a flash at the top
        assert 'id="response-errors"' in form and "autofocus" in form
        assert message not in page.split('id="response-form"', 1)[0]
        assert f'action="/notes/{note.uuid}/responses#response-errors"' in page
    assert "Looks right" in form  # what was typed is kept
    assert db.session.scalars(select(NoteComment)).all() == []


def test_a_bad_feed_filter_is_a_message_on_the_feed_with_the_filters_kept(as_member, alliance):
    response = as_member.get("/notes/?q=relay&since=2025-03-05&until=2025-03-01")
    page = response.get_data(as_text=True)

    assert response.status_code == 400
    assert 'id="feed-filters"' in page and 'id="error"' not in page  # the feed, not an error page
    message = page.split('id="filter-errors"', 1)[1].split("</div>", 1)[0]
    assert '<a href="#until">Posted until</a>' in message
    assert "The end date is before the start date." in message
    assert 'value="2025-03-05"' in page and 'value="2025-03-01"' in page and 'value="relay"' in page
    assert 'id="until-errors"' in page


def test_a_note_from_an_uploaded_bundle_names_its_author_organisation(as_member, member,
                                                                      alliance):
    org = member.organisation
    c2 = indicator()
    sighting = {"type": "sighting", "spec_version": "2.1", "id": sid("sighting"),
                "created": STAMP, "modified": STAMP, "sighting_of_ref": c2["id"],
                "where_sighted_refs": [org.stix_id]}  # the poster's identity, not in the bundle
    shared = _upload(as_member, alliance, "post", raw=orjson.dumps(bundle(c2, sighting)))
    assert shared.status_code == 302, shared.get_data(as_text=True)

    page = as_member.get(shared.headers["Location"]).get_data(as_text=True)
    objects = page.split('id="objects"', 1)[1].split('id="responses"', 1)[0]
    # Footers give every object's own id; everywhere else the organisation has its name.
    shown = re.sub(r'<code class="stix-id">[^<]*</code>', "", objects)
    assert org.stix_id not in shown
    assert "Member Org</a> <span class=\"muted small\">(the author organisation)" in shown
    assert "· by Member Org" in objects


def test_an_unknown_note_and_an_unreadable_one_still_look_the_same(as_outsider, member,
                                                                   alliance):
    note = posting.post_note(member, posting.NoteDraft(
        title="Relay", tlp="AMBER", alliance_ids=[alliance.id], objects=[indicator()]))
    for path in (f"/notes/{note.uuid}", f"/notes/{uuid.uuid4()}"):
        assert as_outsider.post(f"{path}/responses", data={"kind": "comment"}).status_code == 404
