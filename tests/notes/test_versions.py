"""Versions of STIX objects (id + modified): idempotent reposts, 409 on a different body, only
the creator organisation adds versions, timestamps never filled in; and the TLP rule (a note is
never looser than the strictest TLP marking in it, TLP 1.0 and 2.0 ids alike)."""
import copy
import json

import pytest
from sqlalchemy import select

from alliance.core.errors import DomainError
from alliance.extensions import db
from alliance.notes import posting, reading, storage
from alliance.notes.models import SERVED_WITH, NoteObject, StixObject
from alliance.stix.markings import TLP1_IDS, marking_id
from alliance.stix.validation import BundleRejected, parse_bundle
from tests import factories
from tests.notes.helpers import CORPUS, bundle, counts, identity, indicator

LATER = "2024-06-01T08:30:00.000Z"


def post(actor, alliance, objects, tlp="AMBER", recipients=()):
    return posting.post_note(actor, posting.NoteDraft(
        title="Versions", tlp=tlp, alliance_ids=[alliance.id], objects=copy.deepcopy(objects),
        recipient_ids=list(recipients)))


def refused(actor, alliance, objects, tlp="AMBER", exc=BundleRejected):
    before = counts()
    with pytest.raises(exc) as caught:
        post(actor, alliance, objects, tlp)
    db.session.rollback()
    assert counts() == before, "a refused note stored something"
    return caught.value


def rows_of(stix_id):
    db.session.expire_all()
    return db.session.scalars(select(StixObject).where(StixObject.stix_id == stix_id)
                              .order_by(StixObject.modified)).all()


def linked(note):
    """The versions the note holds (not the platform's objects served beside them)."""
    return set(db.session.scalars(select(NoteObject.object_id).join(
        StixObject, StixObject.id == NoteObject.object_id).where(
        NoteObject.note_id == note.id, StixObject.scope != SERVED_WITH)).all())


@pytest.fixture
def second_member(alliance):
    """An org admin of a second active member organisation."""
    org = factories.make_org("Second Org")
    factories.add_member(alliance, org)
    return factories.make_user(org, "admin@second.example", role="org_admin")


def test_an_identical_repost_links_the_stored_version(member, alliance):
    obj = identity("Repost Org")
    first = post(member, alliance, [obj])
    (row,) = rows_of(obj["id"])
    _, objects_before, _ = counts()

    again = post(member, alliance, [obj])

    assert again.id != first.id
    assert rows_of(obj["id"]) == [row]
    assert counts()[1] == objects_before + 1  # only the new note's report
    assert row.id in linked(again) and row.id in linked(first)
    bodies = [o for o in reading.note_bundle(again)["objects"] if o["id"] == obj["id"]]
    assert bodies == [factories.as_served(obj, member.organisation.stix_id, "AMBER")]


def test_a_repost_with_its_properties_in_another_order_is_the_same_object(member, alliance):
    """JSON objects have no order: a tool that writes the keys differently reposts the same
    object (hashes are of the stored text, so the stored body decides)."""
    obj = identity("Reordered Org")
    post(member, alliance, [obj])
    (row,) = rows_of(obj["id"])
    reordered = dict(reversed(list(obj.items())))
    assert list(reordered) != list(obj) and reordered == obj

    again = post(member, alliance, [reordered])

    assert rows_of(obj["id"]) == [row] and row.id in linked(again)


def test_a_version_stored_under_another_hash_rule_still_matches(member, alliance):
    """Rows hashed before the hash was taken of the stored text (sorted keys) still answer
    an identical repost, and still refuse a different body."""
    obj = identity("Older Org")
    post(member, alliance, [obj])
    (row,) = rows_of(obj["id"])
    row.body_hash = "0" * 64  # a digest the current rule never produces for this body
    db.session.commit()

    again = post(member, alliance, [obj])
    assert rows_of(obj["id"]) == [row] and row.id in linked(again)
    exc = refused(member, alliance, [dict(obj, name="Changed Org")])
    assert exc.status_code == 409


def test_an_identical_repost_by_another_org_links_too(member, second_member, alliance):
    obj = identity("Shared Org")
    post(member, alliance, [obj])
    (row,) = rows_of(obj["id"])

    note = post(second_member, alliance, [obj])

    assert rows_of(obj["id"]) == [row] and row.id in linked(note)
    assert row.organisation_id == member.organisation_id


def test_a_different_body_for_a_stored_id_and_modified_is_a_409(member, second_member, alliance):
    obj = identity("Original Org")
    post(member, alliance, [obj])
    changed = dict(obj, name="Tampered Org")

    for actor in (member, second_member):
        exc = refused(actor, alliance, [changed])
        assert exc.status_code == 409
        assert [(p.object_id, p.property) for p in exc.problems] == [(obj["id"], "modified")]
        assert "a different object with this id and modified is stored" in exc.problems[0].reason
    assert [r.body["name"] for r in rows_of(obj["id"])] == ["Original Org"]


def test_the_creator_org_adds_versions_and_no_one_else(member, member_admin, second_member,
                                                        alliance):
    # An indicator naming no creator is the poster's. (A third party's identity naming none
    # describes itself: another organisation's version of it is that one's own copy.)
    obj = indicator(name="Versioned Org")
    post(member, alliance, [obj])

    exc = refused(second_member, alliance, [dict(obj, modified=LATER, name="Hijacked")])
    assert exc.status_code == 422
    assert (exc.problems[0].object_id, exc.problems[0].property) == (obj["id"], "id")
    assert "another organisation posted this object first" in exc.problems[0].reason

    post(member_admin, alliance, [dict(obj, modified=LATER, name="Renamed Org")])
    assert [(r.modified, r.body["name"]) for r in rows_of(obj["id"])] == [
        (obj["modified"], "Versioned Org"), (LATER, "Renamed Org")]


def test_modified_earlier_than_created_is_refused(member, alliance):
    obj = identity(created=LATER)
    exc = refused(member, alliance, [obj])
    assert [(p.object_id, p.property, p.reason) for p in exc.problems] == [
        (obj["id"], "modified", "earlier than created")]


def test_missing_modified_is_refused_and_never_filled_in(member, alliance):
    obj = identity(modified=None)
    assert "modified" not in obj
    exc = refused(member, alliance, [obj])
    assert [(p.object_id, p.property) for p in exc.problems] == [(obj["id"], "modified")]
    assert "never filled in" in exc.problems[0].reason
    assert "modified" not in obj

    parsed = parse_bundle(json.dumps(bundle(obj)))
    assert "modified" not in parsed.objects[0]


def test_the_same_id_and_modified_twice_in_one_bundle(member, alliance):
    obj = identity("Twice Org")
    exc = refused(member, alliance, [obj, dict(obj, name="Other Twice Org")])
    assert [(p.object_id, p.property) for p in exc.problems] == [(obj["id"], "modified")]
    assert "appear twice with different content" in exc.problems[0].reason

    # The same object twice is folded into one, not refused.
    note = post(member, alliance, [obj, dict(obj)])
    assert len(rows_of(obj["id"])) == 1 and len(linked(note)) == 2


@pytest.mark.parametrize("marking, strictest", [
    (marking_id("RED"), "RED"),
    (marking_id("AMBER+STRICT"), "AMBER+STRICT"),
    (next(k for k, v in TLP1_IDS.items() if v == "AMBER"), "AMBER"),
    (next(k for k, v in TLP1_IDS.items() if v == "RED"), "RED"),
])
def test_a_note_is_never_looser_than_its_strictest_marking(member, alliance, coordinator,
                                                           marking, strictest):
    obj = identity("Marked Org", object_marking_refs=[marking])
    exc = refused(member, alliance, [obj], tlp="GREEN", exc=DomainError)
    assert not isinstance(exc, BundleRejected)
    assert exc.field == "tlp"
    assert f"TLP:{strictest}" in exc.message and "TLP:GREEN" in exc.message

    note = post(member, alliance, [obj], tlp=strictest,
                recipients=[coordinator.id] if strictest == "RED" else [])
    assert note.tlp == strictest


def test_a_granular_marking_counts_too(member, alliance):
    obj = identity("Granular Org", granular_markings=[
        {"marking_ref": marking_id("RED"), "selectors": ["description"]}],
        description="secret")
    exc = refused(member, alliance, [obj], tlp="AMBER", exc=DomainError)
    assert exc.field == "tlp" and "TLP:RED" in exc.message


def test_the_pystix2_malware_versions_import_in_turn(member, second_member, alliance):
    """valid/pystix2__malware-6b616fc1__v1..v4 are four versions of one object. They point to
    MITRE's identity and copyright marking (refused on their own, see test_corpus); once those
    are shared with the poster, they import one after the other as versions of one object."""
    mobile = json.loads((CORPUS / "valid" / "attack__mobile-attack-17.1.json").read_text())
    mitre = [o for o in mobile["objects"] if o["id"] in (
        "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5",
        "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168")]
    assert len(mitre) == 2
    post(member, alliance, mitre)

    names = sorted(p.name for p in (CORPUS / "valid").glob("pystix2__malware-6b616fc1__v*.json"))
    for name in names:
        parsed = parse_bundle((CORPUS / "valid" / name).read_bytes())
        post(member, alliance, parsed.objects)
    malware_id = "malware--6b616fc1-1505-48e3-8b2c-0d19337bff38"
    assert [r.modified for r in rows_of(malware_id)] == [
        "2017-05-31T21:32:58.226Z", "2018-11-01T23:24:48.456Z", "2018-11-01T23:24:48.457Z",
        "2018-11-16T22:54:20.390Z"]

    # The STIX 2.0 copy of version 2 (same id) is refused as 2.0 content, not as a conflict.
    v20 = CORPUS / "invalid" / "pystix2__v20__malware-6b616fc1.json"
    with pytest.raises(BundleRejected) as caught:
        post(member, alliance, parse_bundle(v20.read_bytes()).objects)
    db.session.rollback()
    assert caught.value.problems[0].property == "spec_version"

    # Another organisation may repost a stored version. The malware is MITRE's, no platform
    # organisation's: another organisation's newer version is stored as its own copy, and
    # the first poster's history does not show it.
    latest = parse_bundle((CORPUS / "valid" / names[-1]).read_bytes()).objects
    post(second_member, alliance, latest)
    newer = [dict(latest[0], modified="2019-01-01T00:00:00.000Z")]
    post(second_member, alliance, newer)
    rows = rows_of(malware_id)
    assert [(r.modified, r.organisation_id) for r in rows[4:]] == [
        ("2019-01-01T00:00:00.000Z", second_member.organisation_id)]
    assert {r.organisation_id for r in rows[:4]} == {member.organisation_id}
    # It may not claim the object as its own creation, though.
    mine = second_member.organisation.stix_id
    exc = refused(second_member, alliance, [dict(latest[0], modified="2020-01-01T00:00:00.000Z",
                                                 created_by_ref=mine)])
    assert [(p.object_id, p.property) for p in exc.problems] == [(malware_id, "id")]
    assert "another organisation posted this object first" in exc.problems[0].reason


def test_a_stored_sco_in_an_unreadable_note_is_not_revealed_by_a_conflict(alliance, member,
                                                                            outsider):
    """SCO ids are derived from their values: a 409 for a different body, or a refusal to
    "add a version", would tell an outsider that someone stored that value."""
    from alliance.core.errors import DomainError
    from tests import factories

    sco = {"type": "ipv4-addr", "spec_version": "2.1",
           "id": "ipv4-addr--ff26c055-6336-5bc5-b89d-13d6226742dd", "value": "198.51.100.3"}
    posting.post_note(member, posting.NoteDraft(
        title="secret", tlp="AMBER", alliance_ids=[alliance.id], objects=[dict(sco)]))
    other = factories.make_alliance(outsider, slug="elsewhere", name="Elsewhere")
    changed = dict(sco, x_seen_by="outsider")
    try:
        note = posting.post_note(outsider, posting.NoteDraft(
            title="mine", tlp="AMBER", alliance_ids=[other.id], objects=[changed]))
    except DomainError as exc:  # pragma: no cover - the failure this test guards against
        raise AssertionError(f"the outsider learned the SCO is stored: {exc.message}") from exc
    bodies = [o.body for o in reading.note_objects(note) if o.type == "ipv4-addr"]
    assert bodies == [factories.as_served(changed, outsider.organisation.stix_id, "AMBER")]


def test_stored_dates_compare_equal_to_the_instant_even_on_a_whole_second(
        member, alliance, monkeypatch):
    """Rows stored by the bulk insert use the same text form as every other date: a date
    on a whole second must not lose its '.000000' (keyset paging compares these)."""
    from datetime import UTC, datetime

    from sqlalchemy import func

    from tests.notes.helpers import identity

    whole = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(posting, "utcnow", lambda: whole)
    monkeypatch.setattr(storage, "utcnow", lambda: whole)
    posting.post_note(member, posting.NoteDraft(
        title="On the second", tlp="GREEN", alliance_ids=[alliance.id],
        objects=[identity(f"Org {i}") for i in range(5)]))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.date_added == whole, StixObject.scope != SERVED_WITH)) == 6
    assert db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.date_added > whole)) == 0


@pytest.mark.parametrize("spelling", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.0Z",
                                      "2024-05-01T12:00:00.000000Z"])
def test_the_same_instant_written_another_way_is_the_same_version(member, alliance, spelling):
    """Compared as text, "12:00:00.000Z" and "12:00:00Z" were two versions of one instant:
    a different body was stored beside the first, and TAXII served both as the latest."""
    obj = identity("Original Org")  # modified 2024-05-01T12:00:00.000Z
    post(member, alliance, [obj])

    for changed in (dict(obj, modified=spelling), dict(obj, modified=spelling, name="Other")):
        exc = refused(member, alliance, [changed])
        assert exc.status_code == 409
        assert [(p.object_id, p.property) for p in exc.problems] == [(obj["id"], "modified")]
        assert "the same instant" in exc.problems[0].reason
    assert [r.body["name"] for r in rows_of(obj["id"])] == ["Original Org"]


def test_one_bundle_may_not_hold_one_instant_twice_with_different_content(member, alliance):
    obj = identity("Original Org")
    again = dict(obj, modified="2024-05-01T12:00:00Z", name="Other")

    exc = refused(member, alliance, [obj, again])

    assert [(p.object_id, p.property) for p in exc.problems] == [(obj["id"], "modified")]
