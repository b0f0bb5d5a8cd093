"""One object version is served once: versions, the manifest and match[version]=last each
show it once, however many rows hold it."""
import json

from sqlalchemy import func, select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import SERVED_WITH, StixObject
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import identity, indicator, sid
from tests.taxii.live import posted_only

TAXII = "application/taxii+json;version=2.1"


def _get(client, key, alliance, tail="objects/", **query):
    response = client.get(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/{tail}",
                          headers={"Authorization": f"Bearer {key}", "Accept": TAXII},
                          query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _post(client, key, alliance, objects):
    return client.post(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
                       data=json.dumps({"objects": objects}), content_type=TAXII,
                       headers={"Authorization": f"Bearer {key}", "Accept": TAXII})


def test_an_instant_written_another_way_is_no_second_latest_version(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    ident = sid("identity")
    first = identity("First", id=ident, created="2024-06-01T12:00:00Z",
                     modified="2024-06-01T12:00:00Z")
    other = dict(first, name="Second", modified="2024-06-01T12:00:00.000Z")
    assert _post(client, key, alliance, [first]).status_code == 202

    assert _post(client, key, alliance, [other]).status_code == 409

    assert [o["name"] for o in _get(client, key, alliance, f"objects/{ident}/")["objects"]] == [
        "First"]
    assert _get(client, key, alliance, f"objects/{ident}/versions/")["versions"] == [
        "2024-06-01T12:00:00Z"]


def test_a_version_two_organisations_each_stored_is_served_once(client, member, alliance):
    """B stored the objects where A could not see them, A stored its own rows of the same
    versions, then B shared its rows in A's alliance too: each version was served twice."""
    b_admin = factories.make_user(factories.make_org("B Org"), "b@b.example", role="org_admin")
    b_only = factories.make_alliance(b_admin, slug="b-only", name="B only")
    key_a, key_b = create_key(member, "A")[1], create_key(b_admin, "B")[1]
    ip = {"type": "ipv4-addr", "spec_version": "2.1",
          "id": "ipv4-addr--ff8c5cd1-67a1-5aa2-9b6f-0d7c8a6b1f11", "value": "198.51.100.9"}
    shared = indicator("[domain-name:value = 'shared.example']")
    assert _post(client, key_b, b_only, [ip, shared]).status_code == 202
    assert _post(client, key_a, alliance, [ip, shared]).status_code == 202
    factories.add_member(alliance, b_admin.organisation, "active")
    assert _post(client, key_b, alliance, [ip, shared]).status_code == 202

    for key in (key_a, key_b):
        objects = _get(client, key, alliance, **{"match[type]": "ipv4-addr,indicator"})
        assert sorted(o["id"] for o in objects["objects"]) == sorted([ip["id"], shared["id"]])
        every = _get(client, key, alliance, **{"match[version]": "all",
                                               "match[id]": shared["id"]})
        assert len(every["objects"]) == 1
        manifest = _get(client, key, alliance, "manifest/", **{"match[id]": shared["id"]})
        assert [(e["id"], e["version"]) for e in manifest["objects"]] == [
            (shared["id"], shared["modified"])]
        versions = _get(client, key, alliance, f"objects/{shared['id']}/versions/")
        assert versions["versions"] == [shared["modified"]]


def test_the_same_envelope_posted_at_the_same_moment_is_stored_once(app, client, member,
                                                                     alliance, monkeypatch):
    """A client retrying an envelope it thinks was lost: the retry lands between the first
    request's versions check and its insert. The first then hit the unique key and answered
    409, though the versions are identical (DESIGN.md: idempotent)."""
    from alliance.notes import posting
    from tests.notes.helpers import counts

    key = create_key(member, "SIEM")[1]
    envelope = [indicator("[domain-name:value = 'raced.example']")]
    real, raced = posting.check_versions, []

    def racing(actor, objects, *args):
        checked = real(actor, objects, *args)  # nothing stored yet
        if not raced:  # the retry: another request, with its own session, commits now
            raced.append(None)
            raced[0] = _post(app.test_client(), key, alliance, envelope)
        return checked

    monkeypatch.setattr(posting, "check_versions", racing)
    first = _post(client, key, alliance, envelope)

    assert raced[0].status_code == 202
    assert first.status_code == 202, first.get_data(as_text=True)
    assert first.get_json() == raced[0].get_json()  # one post, one status
    assert counts()[0] == 1  # one note: its report and the indicator, stored once
    assert db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.scope != SERVED_WITH)) == 2
    assert len(posted_only(_get(client, key, alliance)["objects"])) == 2


def test_the_same_envelope_sent_again_is_the_same_post(client, member, alliance):
    """A client that lost the answer sends the envelope again: the first's status answers,
    and the feed gets no second "TAXII upload" note. Another envelope is another post, and
    the same one sent after the first was deleted is posted again."""
    from tests.notes.helpers import counts

    key = create_key(member, "SIEM")[1]
    envelope = [indicator("[domain-name:value = 'again.example']")]
    first = _post(client, key, alliance, envelope)
    again = _post(client, key, alliance, envelope)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.get_json() == first.get_json()
    assert counts()[0] == 1
    status = client.get(f"/taxii2/api/status/{first.get_json()['id']}/",
                        headers={"Authorization": f"Bearer {key}", "Accept": TAXII})
    assert status.status_code == 200 and status.get_json()["id"] == first.get_json()["id"]

    other = _post(client, key, alliance, envelope + [identity("Us")])
    assert other.status_code == 202 and other.get_json()["id"] != first.get_json()["id"]
    assert counts()[0] == 2

    from sqlalchemy import select

    from alliance.extensions import db
    from alliance.notes.models import Note

    report_id = db.session.scalar(select(Note.report_id).order_by(Note.id).limit(1))
    # The first note holds the indicator alone: deleting its report withdraws it.
    deleted = client.delete(f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}"
                            f"/objects/{report_id}/",
                            headers={"Authorization": f"Bearer {key}", "Accept": TAXII})
    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    posted_again = _post(client, key, alliance, envelope)
    assert posted_again.status_code == 202
    assert posted_again.get_json()["id"] != first.get_json()["id"]
    assert counts()[0] == 3


def test_a_status_names_the_version_the_collection_serves(client, member, alliance):
    """An SCO's version is the date it entered the collection; the status of a second
    envelope holding it named that envelope's date, a version the collection does not have."""
    key = create_key(member, "SIEM")[1]
    ip = {"type": "ipv4-addr", "spec_version": "2.1",
          "id": "ipv4-addr--ff8c5cd1-67a1-5aa2-9b6f-0d7c8a6b1f11", "value": "198.51.100.9"}
    assert _post(client, key, alliance, [ip]).status_code == 202
    second = _post(client, key, alliance, [ip, indicator()])
    assert second.status_code == 202

    [reported] = [s["version"] for s in second.get_json()["successes"] if s["id"] == ip["id"]]
    served = _get(client, key, alliance, f"objects/{ip['id']}/versions/")["versions"]
    assert served == [reported]
    assert len(_get(client, key, alliance, **{"match[version]": reported,
                                              "match[id]": ip["id"]})["objects"]) == 1
