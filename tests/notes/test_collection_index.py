"""collection_objects (what each alliance's served notes hold, the index TAXII alliance pages
walk) is kept in step with note_objects and note_audiences by every way content gets in and
out: posting, an identical repost (a link to a stored version), a note to two alliances, an
edit (a new version of the report), a TLP:RED note (never served), a retraction. Each row is
dated when a served note first brought the version to the alliance. The rows and dates are
exactly those of the set-based statement bench-data fills the table with. The same holds for
organisation_collection_objects (each organisation's own collection: what its served notes
hold, dated when one first held the version)."""
import copy
from datetime import datetime, timedelta

from sqlalchemy import select, text

from alliance.extensions import db
from alliance.notes import editing, posting
from alliance.notes.models import (
    SERVED_WITH,
    CollectionObject,
    Note,
    OrganisationCollectionObject,
    StixObject,
)
from alliance.taxii.collections import collect_every_note
from tests import factories
from tests.notes.helpers import identity, indicator


def dated() -> dict[tuple, tuple]:
    """(alliance, object version) -> (type, when it entered that alliance's collection)."""
    db.session.expire_all()
    return {(r.alliance_id, r.object_id): (r.type, r.date_added)
            for r in db.session.scalars(select(CollectionObject))}


def posted_rows(found: dict[tuple, tuple]) -> dict[tuple, tuple]:
    """Of dated() or own_dated(), the rows of posted versions: not the platform's objects
    served beside them (alliance.notes.served_with, tests/taxii/test_served_with.py)."""
    platform = set(db.session.scalars(select(StixObject.id).where(
        StixObject.scope == SERVED_WITH)))
    return {key: value for key, value in found.items() if key[1] not in platform}


def own_dated() -> dict[tuple, tuple]:
    """(organisation, object version) -> (type, when it entered the organisation's own
    collection)."""
    db.session.expire_all()
    return {(r.organisation_id, r.object_id): (r.type, r.date_added)
            for r in db.session.scalars(select(OrganisationCollectionObject))}


def expected(own: bool = False) -> dict[tuple, tuple]:
    """Computed here from the notes, not by the service: every version a served note (not
    RED, not retracted) holds, under each of its alliances (`own`: under its organisation),
    at the earliest of those notes' posts (or the version's storing, when that is later)."""
    found = db.session.execute(text(
        "SELECT notes.organisation_id, note_objects.object_id, note_objects.note_id "
        "FROM note_objects JOIN notes ON notes.id = note_objects.note_id" if own else
        "SELECT note_audiences.alliance_id, note_objects.object_id, note_objects.note_id "
        "FROM note_objects JOIN note_audiences "
        "ON note_audiences.note_id = note_objects.note_id")).all()
    objects = {o.id: o for o in db.session.scalars(select(StixObject))}
    notes = {n.id: n for n in db.session.scalars(select(Note))}
    rows: dict[tuple, tuple] = {}
    for alliance_id, object_id, note_id in found:
        note, obj = notes[note_id], objects[object_id]
        if note.tlp == "RED" or note.retracted_at is not None:
            continue
        entered = max(note.created_at, obj.date_added)
        key = (alliance_id, object_id)
        if key not in rows or entered < rows[key][1]:
            rows[key] = (obj.type, entered)
    return rows


def collected(got: dict, want: dict) -> bool:
    """The rows `expected` computes, each dated no earlier than it entered the collection,
    and no two rows of one collection (alliance or organisation) on the same date: a client
    polling with added_after = the last date it saw must miss none (dates of one insert are
    a microsecond apart, after the collection's latest)."""
    assert {k: t for k, (t, _when) in got.items()} == {k: t for k, (t, _when) in want.items()}
    assert all(got[k][1] >= want[k][1] for k in want), (got, want)
    per_collection = {}
    for (owner, _object_id), (_t, when) in got.items():
        per_collection.setdefault(owner, []).append(when)
    assert all(len(set(dates)) == len(dates) for dates in per_collection.values())
    return True


def near(when, entered) -> bool:
    """Dated when it entered, give or take the microseconds that keep dates unique."""
    return entered <= when < entered + timedelta(milliseconds=1)


def post(actor, alliance_ids, objects, tlp="AMBER", **extra):
    return posting.post_note(actor, posting.NoteDraft(
        title="Collections", tlp=tlp, alliance_ids=alliance_ids, objects=copy.deepcopy(objects),
        **extra))


def version_of(stix_id: str, note=None) -> StixObject:
    """The one stored version of an id (`note`: the one that note first stored)."""
    [row] = [o for o in db.session.scalars(select(StixObject)) if o.stix_id == stix_id
             and (note is None or o.first_note_id == note.id)]
    return row


def test_every_way_in_and_out_keeps_the_alliance_collections_in_step(member, coordinator,
                                                                     alliance):
    second = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(second, member.organisation, "active")
    shared, hidden = indicator(), indicator("[ipv4-addr:value = '198.51.100.4']")
    first = post(member, [alliance.id], [shared, identity("Collected Org")])
    # The report and two objects (and beside them the platform's: served_with).
    assert collected(dated(), expected()) and len(posted_rows(dated())) == 3
    assert collected(own_dated(), expected(own=True)) and len(posted_rows(own_dated())) == 3
    # One note into an empty collection: its rows a microsecond apart from its post on.
    assert sorted(when for _t, when in posted_rows(dated()).values()) == [
        first.created_at + timedelta(microseconds=i) for i in range(3)]

    # TLP:RED is never served over TAXII: its objects stay out of every collection.
    red = post(member, [second.id], [hidden], tlp="RED", recipient_ids=[member.id])
    assert not any(o == version_of(hidden["id"]).id for _a, o in dated())
    repost = post(member, [second.id], [shared])  # the stored indicator, now in Pacific too
    again = post(member, [alliance.id], [shared])  # in Atlantic again: already collected
    # The RED note's indicator, now posted in a served note: a version of the organisation's
    # own (the RED note's copy is that note's alone, scope), in the collection from now.
    served_later = post(member, [second.id], [hidden])
    both = post(member, [alliance.id, second.id], [indicator()])
    editing.edit_note(member, first, title="Collections, edited", description="")
    got = dated()
    assert collected(got, expected())
    assert collected(own_dated(), expected(own=True))
    stored = version_of(shared["id"])  # one stored version, in both alliances' collections
    assert first.created_at == stored.date_added
    assert near(got[(alliance.id, stored.id)][1], first.created_at)
    assert near(got[(second.id, stored.id)][1], repost.created_at)
    assert repost.created_at > first.created_at
    assert near(got[(second.id, version_of(hidden["id"], served_later).id)][1],
                served_later.created_at)
    assert not any(o == version_of(hidden["id"], red).id for _a, o in got)
    edited = max((o for o in db.session.scalars(select(StixObject))
                  if o.stix_id == first.report_id), key=lambda o: o.modified)
    assert near(got[(alliance.id, edited.id)][1], edited.date_added)
    assert edited.date_added > both.created_at

    # A retraction takes what no other served note holds out of the collection.
    editing.retract_note(member, served_later, "Posted by mistake.")
    got = dated()
    assert collected(got, expected())
    own = own_dated()
    assert collected(own, expected(own=True))
    assert (member.organisation_id, version_of(hidden["id"], served_later).id) not in own
    assert (second.id, version_of(hidden["id"], served_later).id) not in got
    assert (second.id, stored.id) in got  # still held by the repost

    # Retracting the note that first brought a version to a collection dates it again, after
    # every date the collection holds: the collection no longer shows when the retracted
    # note was posted, and a date only moves later, past what any client has seen, so no
    # client polling with added_after misses the version.
    latest = max(when for (a, _o), (_t, when) in got.items() if a == alliance.id)
    own_latest = max(when for _t, when in own.values())
    editing.retract_note(member, first, "Superseded.")
    got, own = dated(), own_dated()
    assert collected(got, expected()) and collected(own, expected(own=True))
    assert got[(alliance.id, stored.id)][1] > latest > again.created_at
    assert own[(member.organisation_id, stored.id)][1] > own_latest
    assert got[(alliance.id, stored.id)][1] > first.retracted_at - timedelta(seconds=1)

    # The statement bench-data fills the table with gives the same rows, each dated when it
    # entered (a microsecond apart within a collection).
    db.session.execute(text("DELETE FROM collection_objects"))
    db.session.execute(text("DELETE FROM organisation_collection_objects"))
    collect_every_note()
    assert collected(dated(), expected()) and collected(own_dated(), expected(own=True))
    assert all(near(when, want) for (when, want) in (
        (dated()[k][1], w) for k, (_t, w) in expected().items()))
    assert all(isinstance(when, datetime) for _t, when in got.values())
