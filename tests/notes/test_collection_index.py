"""collection_objects (what each alliance's notes hold, the index TAXII alliance pages walk)
is kept in step with note_objects and note_audiences by every way content gets in: posting,
an identical repost (a link to a stored version), a note to two alliances, an edit (a new
version of the report). Its rows are exactly those of the set-based statement the migration
and bench-data fill it with."""
import copy

from sqlalchemy import select, text

from alliance.extensions import db
from alliance.notes import services
from alliance.notes.models import CollectionObject, StixObject
from tests import factories
from tests.notes.helpers import identity, indicator


def rows() -> set[tuple]:
    db.session.expire_all()
    return {(r.alliance_id, r.object_id, r.type) for r in
            db.session.scalars(select(CollectionObject))}


def dates() -> dict[tuple, object]:
    """(alliance, object version) -> when it was added to that alliance's collection."""
    db.session.expire_all()
    return {(r.alliance_id, r.object_id): r.date_added
            for r in db.session.scalars(select(CollectionObject))}


def expected() -> set[tuple]:
    """What notes hold, under each of their alliances (computed here, not by the service)."""
    found = db.session.execute(text(
        "SELECT note_audiences.alliance_id, note_objects.object_id FROM note_objects "
        "JOIN note_audiences ON note_audiences.note_id = note_objects.note_id")).all()
    objects = {o.id: o for o in db.session.scalars(select(StixObject))}
    return {(a, o, objects[o].type) for a, o in found}


def post(actor, alliance_ids, objects):
    return services.post_note(actor, title="Collections", tlp="AMBER",
                              alliance_ids=alliance_ids, objects=copy.deepcopy(objects))


def test_every_way_in_keeps_the_alliance_collections_in_step(member, coordinator, alliance):
    second = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(second, member.organisation, "active")
    shared = indicator()
    first = post(member, [alliance.id], [shared, identity("Collected Org")])
    assert rows() == expected() and len(rows()) == 3  # the report, two objects
    stored = {o.id: o.date_added for o in db.session.scalars(select(StixObject))}
    assert set(dates().values()) == {first.created_at} == set(stored.values())

    repost = post(member, [second.id], [shared])  # the stored indicator, now in Pacific too
    post(member, [alliance.id], [shared])  # again in Atlantic: already in its collection
    post(member, [alliance.id, second.id], [indicator()])
    services.edit_note(member, first, title="Collections, edited", description="")
    got = rows()
    assert got == expected()
    indicators = [o for o in db.session.scalars(select(StixObject)) if o.stix_id == shared["id"]]
    assert len(indicators) == 1  # one stored version, in both alliances' collections
    assert {a for a, o, _t in got if o == indicators[0].id} == {alliance.id, second.id}
    # Each collection dates the version by when it entered that collection.
    added = dates()
    assert added[(alliance.id, indicators[0].id)] == first.created_at == indicators[0].date_added
    assert added[(second.id, indicators[0].id)] == repost.created_at > first.created_at
    edited = max((o for o in db.session.scalars(select(StixObject))
                  if o.stix_id == first.report_id), key=lambda o: o.modified)
    assert added[(alliance.id, edited.id)] == edited.date_added > repost.created_at

    # The statement the migration and bench-data fill the table with gives the same rows.
    db.session.execute(text("DELETE FROM collection_objects"))
    db.session.execute(text(services.COLLECT_SQL.format(added="stix_objects.date_added",
                                                        where="1 = 1")))
    assert rows() == got
