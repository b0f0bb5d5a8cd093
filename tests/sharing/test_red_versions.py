"""A version a TLP:RED note stores is that note's alone. Posting compares the posted objects
with the versions the poster's organisation stored; before, that included versions only a
colleague's RED note held, so a colleague the note does not name learned what it holds: an
SCO (its id comes from its value) posted changed was a 409 naming the id, and posted
unchanged it linked the RED note's stored version, whose date then showed in the history."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from alliance.extensions import db
from alliance.notes import posting, reading
from alliance.notes.models import Note, StixObject
from alliance.sharing.policy import Principal, get_readable_note
from alliance.stix.validation import BundleRejected
from tests import factories

SCO = {"type": "ipv4-addr", "spec_version": "2.1",
       "id": "ipv4-addr--ff26c055-6336-5bc5-b89d-13d6226742dd", "value": "198.51.100.3"}


def _red(member_admin, alliance, coordinator):
    red = posting.post_note(member_admin, posting.NoteDraft(
        title="Secret", tlp="RED", alliance_ids=[alliance.id], objects=[dict(SCO)],
        recipient_ids=[coordinator.id]))
    return red


def _versions() -> int:
    return db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.stix_id == SCO["id"]))


def test_a_colleague_posting_a_changed_copy_learns_nothing(alliance, coordinator,
                                                           member_admin, member):
    red = _red(member_admin, alliance, coordinator)
    assert get_readable_note(Principal.of(member), red.report_id) is None
    # The same as for a value no one stored: accepted, as a version of its own.
    note = posting.post_note(member, posting.NoteDraft(
        title="Probe", tlp="AMBER", alliance_ids=[alliance.id], objects=[dict(SCO, x_probe="anything")]))
    assert _versions() == 2
    [held] = [o for o in reading.note_objects(note) if o.stix_id == SCO["id"]]
    assert held.body["x_probe"] == "anything" and held.first_note_id == note.id


def test_a_colleague_posting_the_same_copy_stores_its_own(alliance, coordinator, member_admin,
                                                          member):
    red = _red(member_admin, alliance, coordinator)
    note = posting.post_note(member, posting.NoteDraft(
        title="Probe", tlp="AMBER", alliance_ids=[alliance.id], objects=[dict(SCO)]))
    history = reading.history(Principal.of(member), note)
    assert all(h.first_note_id != red.id for h in history)
    assert [h.first_note_id for h in history if h.stix_id == SCO["id"]] == [note.id]
    assert _versions() == 2


def test_the_organisations_shared_versions_are_still_linked(alliance, coordinator,
                                                            member_admin, member):
    """Outside TLP:RED nothing changes: an identical repost in the organisation links the
    stored version, and a changed copy with the same modified is still a conflict."""
    first = posting.post_note(member_admin, posting.NoteDraft(
        title="Shared", tlp="AMBER", alliance_ids=[alliance.id], objects=[dict(SCO)]))
    again = posting.post_note(member, posting.NoteDraft(
        title="Again", tlp="GREEN", alliance_ids=[alliance.id], objects=[dict(SCO)]))
    assert _versions() == 1
    [held] = [o for o in reading.note_objects(again) if o.stix_id == SCO["id"]]
    assert held.first_note_id == first.id
    with pytest.raises(BundleRejected) as refused:
        posting.post_note(member, posting.NoteDraft(
            title="Changed", tlp="GREEN", alliance_ids=[alliance.id],
            objects=[dict(SCO, x_other="value")]))
    assert refused.value.status_code == 409
    db.session.rollback()
    # A RED note of the organisation links it too: that reveals nothing new to anyone.
    red = _red(member_admin, alliance, coordinator)
    assert _versions() == 1 and SCO["id"] in {o.stix_id for o in reading.note_objects(red)}


def test_the_red_notes_author_posting_again_stores_another_private_copy(
        alliance, coordinator, member_admin):
    first = _red(member_admin, alliance, coordinator)
    second = _red(member_admin, alliance, coordinator)
    scopes = sorted(db.session.scalars(select(StixObject.scope).where(
        StixObject.stix_id == SCO["id"])).all())
    assert scopes == [first.id, second.id]


def test_a_named_recipient_in_another_organisation_still_cannot_version_the_object(
        alliance, coordinator, member_admin):
    """Only the organisation's own RED versions are set aside: another organisation that
    may read the RED note still sees its versions, so only the creator adds versions."""
    _red(member_admin, alliance, coordinator)  # coordinator (another organisation) is named
    with pytest.raises(BundleRejected) as refused:
        posting.post_note(coordinator, posting.NoteDraft(
            title="New version", tlp="GREEN", alliance_ids=[alliance.id],
            objects=[dict(SCO, x_more="yes")]))
    assert refused.value.status_code == 409  # the same id and modified, another body
    db.session.rollback()
    assert _versions() == 1


def _posted_days_ago(note, days: int):
    """The note and the versions it stored, as if posted `days` days ago."""
    past = note.created_at - timedelta(days=days)
    db.session.execute(update(StixObject).where(StixObject.first_note_id == note.id)
                       .values(date_added=past))
    db.session.execute(update(Note).where(Note.id == note.id).values(created_at=past))
    db.session.commit()
    return past


def _history_dates(client, reader, note) -> str:
    factories.login(client, reader)
    page = client.get(f"/notes/{note.uuid}").get_data(as_text=True)
    return page[page.index('id="history"'):page.index('id="raw"')]


@pytest.mark.parametrize("first_in", ["red", "other-alliance"])
def test_a_linked_version_is_dated_as_the_note_its_reader_may_read(
        client, alliance, coordinator, member_admin, member, first_in):
    """A version first stored by a note the reader may not read (a TLP:RED note naming
    someone else, a note in an alliance they are not in), then linked by a note they may
    read: the history dates it as the later note, not as the first, whose date would tell
    them when a note they may not read was posted."""
    if first_in == "red":
        third = factories.make_org("Third Org")
        reposter = factories.make_user(third, "lead@third.example", role="org_admin")
        factories.add_member(alliance, third, "active")
        first = posting.post_note(member_admin, posting.NoteDraft(
            title="Secret", tlp="RED", alliance_ids=[alliance.id], objects=[dict(SCO)],
            recipient_ids=[reposter.id]))
    else:
        pacific = factories.make_alliance(member_admin, slug="pacific", name="Pacific")
        reposter = member
        first = posting.post_note(member_admin, posting.NoteDraft(
            title="Elsewhere", tlp="AMBER", alliance_ids=[pacific.id], objects=[dict(SCO)]))
    past = _posted_days_ago(first, 5)
    green = posting.post_note(reposter, posting.NoteDraft(
        title="Seen", tlp="GREEN", alliance_ids=[alliance.id], objects=[dict(SCO)]))
    [linked] = [o for o in reading.note_objects(green) if o.stix_id == SCO["id"]]
    assert linked.first_note_id == first.id  # linked, not stored again: the case in question

    [shown] = [v for v in reading.history(Principal.of(coordinator), green)
               if v.stix_id == SCO["id"]]
    assert shown.added == green.created_at
    assert past.strftime("%Y-%m-%d") not in _history_dates(client, coordinator, green)
    # Who may read the first note still sees its own date.
    [own] = [v for v in reading.history(Principal.of(member_admin), green)
             if v.stix_id == SCO["id"]]
    assert own.added == past
