"""Objects marked looser than their note (a TLP:CLEAR indicator in a TLP:AMBER note) are shown
in the preview with a warning, and the upload form shares them only once the poster ticks an
explicit confirmation (issue 18, point 9). Consumers that enforce markings per object would
otherwise pass them on at their own looser level without the poster knowing."""
import io

import orjson
import pytest
from sqlalchemy import func, select

from alliance.extensions import db
from alliance.notes.models import FormSubmission, Note, StixObject
from alliance.stix.markings import marking_id
from tests.notes.helpers import bundle, counts, identity, indicator

CONFIRM = b"I confirm these objects are shared at their own looser marking"


def marked(level, **extra):
    return indicator(object_marking_refs=[marking_id(level)], **extra)


def send(client, alliance, objects, *, action="post", tlp="AMBER", as_file=False, **extra):
    raw = orjson.dumps(bundle(*objects))
    data = {"title": "Looser", "tlp": tlp, "alliances": str(alliance.id), action: "1", **extra}
    if as_file:
        data["bundle_file"] = (io.BytesIO(raw), "bundle.json", "application/json")
        return client.post("/notes/new/bundle", data=data, content_type="multipart/form-data")
    data["bundle_text"] = raw.decode()
    return client.post("/notes/new/bundle", data=data)


@pytest.mark.parametrize("as_file", [False, True], ids=["pasted", "file"])
def test_the_preview_warns_of_a_clear_indicator_in_an_amber_upload(as_member, alliance,
                                                                  as_file):
    clear = marked("CLEAR", name="Shared <b>widely</b>")
    response = send(as_member, alliance, [clear, marked("AMBER"), identity("Unmarked")],
                    action="preview", as_file=as_file)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="audience-preview"' in page and 'id="looser-markings"' in page
    assert "1 object marked looser than the note" in page
    assert "will treat it as its own looser level" in page
    table = page[page.index('id="looser-table"'):page.index("</table>", page.index(
        'id="looser-table"'))]
    assert clear["id"] in table and "<code>indicator</code>" in table
    assert "Shared &lt;b&gt;widely&lt;/b&gt;" in table  # autoescaped
    assert "TLP:CLEAR" in table and "TLP:AMBER" in table
    assert table.count("<tr>") == 2  # the header and the one looser object
    assert CONFIRM in response.data and 'name="confirm_looser"' in page
    assert counts() == (0, 0, 0)


def test_share_without_the_confirmation_is_refused_on_the_field_and_stores_nothing(
        as_member, alliance):
    clear = marked("CLEAR")
    response = send(as_member, alliance, [clear, identity("Unmarked")], submission="tok-1")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    errors = page[page.index('id="confirm_looser-errors"'):]
    assert "1 object(s) are marked looser than the note&#39;s TLP:AMBER" in errors[:400]
    assert 'id="looser-markings"' in page and clear["id"] in page
    assert 'aria-invalid="true"' in page[page.index('id="field-confirm_looser"'):]
    assert counts() == (0, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(FormSubmission)) == 0


def test_share_with_the_confirmation_stores_the_objects_with_their_own_marking(
        as_member, alliance):
    clear = marked("CLEAR")
    send(as_member, alliance, [clear], submission="tok-2")  # refused first, same token
    response = send(as_member, alliance, [clear], submission="tok-2", confirm_looser="y")
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.expire_all()
    note = db.session.scalar(select(Note))
    assert note.tlp == "AMBER" and response.headers["Location"] == f"/notes/{note.uuid}"
    stored = db.session.scalar(select(StixObject).where(StixObject.stix_id == clear["id"]))
    assert stored.body["object_marking_refs"] == [marking_id("CLEAR")]


@pytest.mark.parametrize("tlp, objects", [
    ("AMBER", lambda: [marked("AMBER")]),
    ("AMBER", lambda: [marked("AMBER+STRICT")]),
    ("RED", lambda: [marked("RED"), marked("RED", name="Other")]),
    ("AMBER", lambda: [indicator(), identity("Unmarked")]),
], ids=["equal", "stricter", "equal-red", "unmarked"])
def test_no_warning_and_no_confirmation_for_objects_as_strict_as_the_note(
        as_member, alliance, coordinator, tlp, objects):
    objects = objects()
    # The note's TLP may not be looser than its objects': AMBER+STRICT objects need at
    # least an AMBER+STRICT note (refused otherwise), so that case is shared at it.
    tlp = "AMBER+STRICT" if objects[0].get("object_marking_refs") == [
        marking_id("AMBER+STRICT")] else tlp
    extra = {"recipients": str(coordinator.id)} if tlp == "RED" else {}
    preview = send(as_member, alliance, objects, action="preview", tlp=tlp, **extra)
    assert preview.status_code == 200 and b'id="audience-preview"' in preview.data
    assert b'id="looser-markings"' not in preview.data and CONFIRM not in preview.data
    response = send(as_member, alliance, objects, tlp=tlp, **extra)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert counts()[0] == 1


def test_the_warning_follows_the_tlp_chosen(as_member, alliance):
    """GREEN objects are looser than an AMBER note, not than a GREEN one."""
    objects = [marked("GREEN")]
    assert b'id="looser-markings"' in send(as_member, alliance, objects, action="preview").data
    assert b'id="looser-markings"' not in send(as_member, alliance, objects, action="preview",
                                               tlp="GREEN").data


def test_the_preview_reports_a_bundle_that_does_not_parse(as_member, alliance):
    response = as_member.post("/notes/new/bundle", data={
        "title": "Broken", "tlp": "AMBER", "alliances": str(alliance.id), "preview": "1",
        "bundle_text": "{not json"})
    assert response.status_code == 200
    assert b'id="audience-preview"' in response.data and b'id="problems"' in response.data
    assert counts() == (0, 0, 0)


def test_compose_forms_need_no_confirmation(as_member, alliance):
    """Their objects carry the note's own marking: never looser."""
    response = as_member.post("/notes/new/indicators", data={
        "title": "Set", "tlp": "AMBER", "alliances": str(alliance.id), "post": "1",
        "observables": "203.0.113.9"})
    assert response.status_code == 302 and counts()[0] == 1
