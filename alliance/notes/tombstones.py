"""Tombstones: what a retracted note's former readers are told at its address.

A retracted note leaves the feed, search, digests and TAXII, and only its organisation and the
coordinators of its alliances still read it (DESIGN.md). Those who could read it before (the
one read rule as if it were not retracted: sharing.policy.former_readable_clause) find a
tombstone at its address instead: its title and TLP, who retracted it, when and why, and that
its indicators should no longer be used. Answered 410 Gone, at every address of the note (its
page, its bundle download, its forms). Nothing of its content is shown. Everyone else gets the
same 404 as for a note that never existed: the lookup answers None for both."""
from dataclasses import dataclass
from datetime import datetime

from flask import abort, make_response, render_template

from alliance.auth.models import User
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.sharing.policy import Principal, get_retracted_note_for_former_reader

GONE = 410


@dataclass(frozen=True)
class Tombstone:
    """What a former reader is told of a retracted note."""

    uuid: str
    title: str
    tlp: str
    organisation: str  # the author organisation's name
    retracted_at: datetime
    reason: str
    retracted_by: str | None  # the person who retracted it, if their account still exists
    retracted_by_organisation: str | None
    by_author: bool  # retracted from within the author's organisation (else by a coordinator)


def tombstone_of(note: Note) -> Tombstone:
    """The tombstone of a retracted note (the caller found it through the policy)."""
    if note.retracted_at is None:
        raise ValueError(f"note #{note.id} is not retracted: it has no tombstone")
    actor = db.session.get(User, note.retracted_by_id) if note.retracted_by_id else None
    actor_org = actor.organisation if actor is not None else None
    return Tombstone(
        uuid=note.uuid, title=note.title, tlp=note.tlp, organisation=note.organisation.name,
        retracted_at=note.retracted_at, reason=note.retraction_reason or "",
        retracted_by=actor.name if actor is not None else None,
        retracted_by_organisation=actor_org.name if actor_org is not None else None,
        by_author=actor is not None and actor.organisation_id == note.organisation_id)


def abort_if_former_reader(principal: Principal, report_id: str) -> None:
    """Answer 410 with the note's tombstone when it is retracted and the principal could
    read it before; return (for the caller's 404) in every other case."""
    note = get_retracted_note_for_former_reader(principal, report_id)
    if note is None:
        return
    page = render_template("notes/tombstone.html", tombstone=tombstone_of(note))
    abort(make_response(page, GONE))
