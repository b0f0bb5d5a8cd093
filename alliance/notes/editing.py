"""Changing a posted note: editing its title and text (a new version of its report, never in
place) and retracting it."""

from typing import cast

from sqlalchemy import CursorResult, update

from alliance.audit.services import record
from alliance.core.errors import Conflict, DomainError, NotAllowed
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.extensions import db
from alliance.notes.models import (
    Note,
    NoteObject,
    StixObject,
)
from alliance.notes.posting import audit_target
from alliance.notes.reading import note_objects
from alliance.notes.storage import hash_body, stix_now, version_scope
from alliance.sharing.policy import can_moderate
from alliance.taxii.collections import collect_objects, uncollect_objects


def can_edit(user, note: Note) -> bool:
    """The author and their organisation's admins edit a note (new versions, never in place)."""
    return bool(getattr(user, "can_act", False) and note.organisation_id == user.organisation_id
                and (note.author_id == user.id or user.is_org_admin)
                and note.retracted_at is None)


@unit_of_work()
def edit_note(actor, note: Note, *, title: str, description: str) -> Note:
    """Change the title and text: a new version of the note's report (same id, later
    `modified`); the earlier versions stay in the history."""
    if not can_edit(actor, note):
        raise NotAllowed("Only the author and their organisation's admins can edit this note.")
    title = (title or "").strip()
    if not title or len(title) > 300:
        raise DomainError("Give the note a title of at most 300 characters.", field="title")
    current = next(o for o in note_objects(note) if o.stix_id == note.report_id)
    if title == note.title and (description or "") == (note.description or ""):
        return note
    body = dict(current.body, name=title, modified=stix_now())
    if description:
        body["description"] = description
    else:
        body.pop("description", None)
    if body["modified"] <= current.modified:  # same millisecond as the previous version
        raise Conflict("The note changed a moment ago; reload it and edit again.")
    import stix2

    stix2.parse(body, allow_custom=True, version="2.1")
    # The version this edit read, or nothing: of two edits at once the second would also
    # replace the version the first replaced, and the note would hold two reports.
    seen = note.version
    # Cast: an UPDATE's result is a CursorResult (typed as any Result), which has rowcount.
    if cast(CursorResult, db.session.execute(update(Note).where(
            Note.id == note.id, Note.version == seen).values(version=seen + 1))).rowcount != 1:
        raise Conflict("Someone else edited this note meanwhile; reload it and edit again.")
    now = utcnow()
    row = StixObject(stix_id=note.report_id, type="report", modified=body["modified"],
                     organisation_id=note.organisation_id, first_note_id=note.id, body=body,
                     body_hash=hash_body(body), date_added=now, scope=version_scope(note))
    db.session.add(row)
    db.session.flush()
    db.session.query(NoteObject).filter_by(note_id=note.id, object_id=current.id).delete()
    db.session.add(NoteObject(note_id=note.id, object_id=row.id, note_version=note.version))
    db.session.flush()
    collect_objects(note)
    uncollect_objects(object_id=current.id)
    changed = [f for f, old, new in (("title", note.title, title),
                                     ("description", note.description or "", description or ""))
               if old != new]
    note.title, note.description, note.updated_at = title, description or "", utcnow()
    record("note.edited", actor, audit_target(note), organisation=note.organisation,
           version=note.version, changed=changed)
    return note


@unit_of_work()
def retract_note(actor, note: Note, reason: str) -> None:
    """Withdraw a note from every path except its organisation and its coordinators.
    Inside a caller's unit of work (several notes withdrawn as one action), it only flushes."""
    if not can_moderate(actor, note):
        raise NotAllowed("Only the author, their organisation's admins or a coordinator of the "
                         "note's alliances can retract it.")
    if note.retracted_at is not None:
        raise Conflict("This note is already retracted.")
    if not (reason or "").strip():
        raise DomainError("Say why the note is retracted.", field="reason")
    note.retracted_at = utcnow()
    note.retracted_by_id = actor.id
    note.retraction_reason = reason.strip()
    db.session.flush()
    uncollect_objects(note_id=note.id)  # TAXII no longer serves it
    # Not the reason: it is free text about the note (a TAXII deletion names the object),
    # kept on the note for those who may still read it; audit readers may not.
    record("note.retracted", actor, audit_target(note), organisation=note.organisation)
