"""Responses to a note: comments (STIX notes), opinions and sightings, which share the
note's audience and TLP."""
import json
import uuid
from collections.abc import Sequence

from sqlalchemy import select

from alliance.audit.services import record
from alliance.core.errors import DomainError
from alliance.core.unit import unit_of_work
from alliance.extensions import db
from alliance.notes.models import (
    Note,
    NoteComment,
)
from alliance.notes.posting import audit_target
from alliance.notes.storage import stix_now
from alliance.notes.submissions import Sending, check_submission, record_submission
from alliance.stix.markings import marking_id


@unit_of_work()
def add_comment(actor, note: Note, kind: str, text: str = "", opinion: str | None = None,
                submission: Sending | None = None):
    """A comment (STIX note), opinion or sighting on a note the actor has read; it inherits
    the note's audience and TLP. `submission`: as post_note's."""
    check_submission(actor, submission)
    if kind not in ("comment", "opinion", "sighting"):
        raise DomainError("Unknown kind of response.")
    text = (text or "").strip()
    org = actor.organisation
    base = {"spec_version": "2.1", "created": stix_now(), "modified": stix_now(),
            "created_by_ref": org.stix_id, "object_marking_refs": [marking_id(note.tlp)]}
    if kind == "comment":
        if not text:
            raise DomainError("Write something.", field="text")
        stix = {"type": "note", "id": f"note--{uuid.uuid4()}", "content": text,
                "object_refs": [note.report_id], **base}
    elif kind == "opinion":
        choices = ("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree")
        if opinion not in choices:
            raise DomainError("Choose agree, disagree or neutral.", field="opinion")
        stix = {"type": "opinion", "id": f"opinion--{uuid.uuid4()}", "opinion": opinion,
                "object_refs": [note.report_id], **base}
        if text:
            stix["explanation"] = text
    else:
        stix = {"type": "sighting", "id": f"sighting--{uuid.uuid4()}",
                "sighting_of_ref": note.report_id, "where_sighted_refs": [org.stix_id],
                "count": 1, **base}
        if text:
            stix["description"] = text
    import stix2

    stix2.parse(stix, allow_custom=True, version="2.1")
    comment = NoteComment(note_id=note.id, kind=kind, author_id=actor.id, organisation_id=org.id,
                          text=text, opinion=opinion, stix=json.loads(json.dumps(stix)))
    db.session.add(comment)
    db.session.flush()
    record_submission(actor, submission, comment_id=comment.id)
    record(f"note.{kind}", actor, audit_target(note), organisation=org)
    return comment


def comments_of(note: Note) -> Sequence[NoteComment]:
    """Responses to a note the caller has read through the policy (they share its rule)."""
    return db.session.scalars(select(NoteComment).where(NoteComment.note_id == note.id)
                              .order_by(NoteComment.created_at)).all()
