"""Notes for the dashboard tests, stored as rows (as tests/sharing/test_read_rule_properties.py
does): each with its audience, RED recipients, observables, ATT&CK attack patterns, sector
facets and responses, at a chosen time. What a chart should count is then written down in the
test from this data, not from the code under test."""
import uuid
from datetime import timedelta

from alliance.core.models import utcnow
from alliance.extensions import db
from alliance.notes.models import (
    Note,
    NoteAudience,
    NoteComment,
    NoteFacet,
    NoteObject,
    NoteRecipient,
    Observable,
    StixObject,
)


def add_note(author, tlp, alliances, *, title=None, recipients=(), values=(), techniques=(),
             sectors=(), days_ago=0, retracted=False, responses=(), sightings=()) -> Note:
    """A note by `author` to `alliances`. values: (kind, value) observables; techniques:
    ATT&CK ids, one attack-pattern object each; responses / sightings: users who commented
    or reported a sighting."""
    stamp = utcnow() - timedelta(days=days_ago)
    note = Note(report_id=f"report--{uuid.uuid4()}", organisation_id=author.organisation_id,
                author_id=author.id, kind="incident", title=title or f"A {tlp} note",
                description="", labels=[], tlp=tlp, types=["report"], publish_public=False,
                created_at=stamp, updated_at=stamp)
    if retracted:
        note.retracted_at, note.retracted_by_id = stamp, author.id
        note.retraction_reason = "Withdrawn."
    note.audiences = [NoteAudience(alliance_id=a.id) for a in alliances]
    note.recipients = [NoteRecipient(user_id=u.id) for u in recipients]
    db.session.add(note)
    db.session.flush()
    db.session.add_all(Observable(note_id=note.id, kind=kind, value=value)
                       for kind, value in values)
    db.session.add_all(NoteFacet(facet="sector", value=s, note_id=note.id) for s in sectors)
    for technique in techniques:
        stix_id = f"attack-pattern--{uuid.uuid4()}"
        obj = StixObject(stix_id=stix_id, type="attack-pattern", modified="2025-01-01T00:00:00Z",
                         organisation_id=note.organisation_id, first_note_id=note.id,
                         body_hash=stix_id,
                         body={"type": "attack-pattern", "id": stix_id, "name": technique,
                               "external_references": [{"source_name": "mitre-attack",
                                                        "external_id": technique}]})
        db.session.add(obj)
        db.session.flush()
        db.session.add(NoteObject(note_id=note.id, object_id=obj.id))
    for kind, users in (("comment", responses), ("sighting", sightings)):
        db.session.add_all(NoteComment(note_id=note.id, kind=kind, author_id=u.id,
                                       organisation_id=u.organisation_id, text="Seen.", stix={})
                           for u in users)
    db.session.commit()
    return note
