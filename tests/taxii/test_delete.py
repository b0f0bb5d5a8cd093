"""DELETE …/objects/{id}/ withdraws whole notes, so it answers 200 only when the object is
gone from the collection and nothing posted beside it went with it."""
import json

from sqlalchemy import select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import indicator

TAXII = "application/taxii+json;version=2.1"


def _url(alliance, object_id):
    return f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/{object_id}/"


def _headers(key):
    return {"Authorization": f"Bearer {key}", "Accept": TAXII}


def _post(client, key, alliance, objects):
    response = client.post(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
        data=json.dumps({"objects": objects}), content_type=TAXII, headers=_headers(key))
    assert response.status_code == 202, response.get_data(as_text=True)


def _retracted():
    db.session.expire_all()
    return [n.retracted_at is not None for n in db.session.scalars(
        select(Note).order_by(Note.id))]


def test_an_object_another_organisation_shares_too_is_not_deleted(client, member, alliance):
    """Before: 200, the member's note retracted, and the object still served from the other
    organisation's note."""
    other = factories.make_user(factories.make_org("B Org"), "b@b.example", role="org_admin")
    factories.add_member(alliance, other.organisation, "active")
    key, theirs = create_key(member, "A")[1], create_key(other, "B")[1]
    shared = indicator()
    _post(client, key, alliance, [shared])
    _post(client, theirs, alliance, [shared])  # B links A's version in a note of its own

    deleted = client.delete(_url(alliance, shared["id"]), headers=_headers(key))

    assert deleted.status_code == 409, deleted.get_data(as_text=True)
    assert "Nothing was deleted" in deleted.get_json()["description"]
    assert _retracted() == [False, False]
    assert client.get(_url(alliance, shared["id"]), headers=_headers(key)).status_code == 200


def test_an_object_posted_with_others_is_not_deleted_and_they_stay(client, member, alliance):
    """Before: 200, and every other object of the envelope was withdrawn with it."""
    key = create_key(member, "A")[1]
    doomed, kept = indicator(), indicator("[domain-name:value = 'kept.example']")
    _post(client, key, alliance, [doomed, kept])

    deleted = client.delete(_url(alliance, doomed["id"]), headers=_headers(key))

    assert deleted.status_code == 409, deleted.get_data(as_text=True)
    [note] = db.session.scalars(select(Note)).all()
    description = deleted.get_json()["description"]
    assert "1 other object" in description and note.report_id in description
    assert _retracted() == [False]
    for obj in (doomed, kept):
        assert client.get(_url(alliance, obj["id"]), headers=_headers(key)).status_code == 200


def test_deleting_a_notes_report_withdraws_all_of_it(client, member, alliance):
    key = create_key(member, "A")[1]
    first, second = indicator(), indicator("[domain-name:value = 'second.example']")
    _post(client, key, alliance, [first, second])
    [note] = db.session.scalars(select(Note)).all()

    deleted = client.delete(_url(alliance, note.report_id), headers=_headers(key))

    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    assert _retracted() == [True]
    for stix_id in (first["id"], second["id"], note.report_id):
        assert client.get(_url(alliance, stix_id), headers=_headers(key)).status_code == 404
