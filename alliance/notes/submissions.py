"""A form sent twice is posted once: the sending of a compose or response form (Sending),
what it stored before (AlreadyPosted), recorded in the posting transaction."""
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    and_,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError

from alliance.core.errors import Conflict
from alliance.core.models import utcnow
from alliance.extensions import db
from alliance.notes.models import (
    FormSubmission,
    Note,
)
from alliance.sharing.policy import (
    Principal,
    readable_notes,
)


class AlreadyPosted(Conflict):
    """The same form, with the same content, was sent before and stored: note_id or
    comment_id names what it stored. Nothing was stored this time."""

    def __init__(self, done: FormSubmission):
        super().__init__("This form was sent twice; it is posted once.")
        self.note_id, self.comment_id = done.note_id, done.comment_id


# A form sent again with the same content this soon after is the same post, whatever page
# it came from: Back re-fetches the compose page (signed-in pages are not cached), with a
# token of its own, and the browser fills the fields in again as they were.
RESENT_WITHIN = timedelta(minutes=10)


@dataclass(frozen=True)
class Sending:
    """One sending of a compose or response form (notes.views._sending): `key`, its page's
    token with the digest of what was sent (unique per user: of two sendings at the same
    moment, one stores); `content`, the digest alone."""

    key: str
    content: str


def _submission(actor, sending: Sending) -> FormSubmission | None:
    """What the same sending stored before: the same key, or the same content within
    RESENT_WITHIN."""
    return db.session.scalar(select(FormSubmission).where(
        FormSubmission.user_id == actor.id,
        or_(FormSubmission.form_key == sending.key,
            and_(FormSubmission.content_key == sending.content,
                 FormSubmission.created_at >= utcnow() - RESENT_WITHIN)))
        .order_by(FormSubmission.id).limit(1))


def check_submission(actor, sending: Sending | None) -> None:
    """Before any work: a form sent before is AlreadyPosted."""
    if sending and (done := _submission(actor, sending)) is not None:
        raise AlreadyPosted(done)


def record_submission(actor, sending: Sending | None, **stored) -> None:
    """In the posting transaction, flushed at once. Of two sendings at the same moment, both
    past check_submission, the second's insert waits for the first's commit and fails on
    the unique key: it rolls back, storing nothing, and is AlreadyPosted."""
    if not sending:
        return
    db.session.add(FormSubmission(user_id=actor.id, form_key=sending.key,
                                  content_key=sending.content, **stored))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        done = _submission(actor, sending)
        if done is None:
            raise
        raise AlreadyPosted(done) from None


def submitted_note(actor, note_id: int | None) -> Note | None:
    """The note a form sent before stored, if the actor may still read it."""
    if note_id is None:
        return None
    return db.session.scalar(readable_notes(Principal.of(actor)).where(Note.id == note_id))
