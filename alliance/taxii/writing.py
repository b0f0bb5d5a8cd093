"""Writing to a TAXII 2.1 collection: adding an envelope (one note, through the posting
service), the status resources of those posts, and withdrawing an object (DELETE)."""
import hashlib
import uuid

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from alliance.core.errors import NotAllowed, NotFound
from alliance.core.unit import unit_of_work
from alliance.core.validators import one_line
from alliance.extensions import db
from alliance.notes.models import SERVED_WITH, CollectionObject, Note, NoteObject, StixObject
from alliance.sharing.policy import Principal, readable_notes
from alliance.stix.markings import strictest_level
from alliance.stix.tlp import TLP_RANK
from alliance.taxii.filters import Filters, rfc3339
from alliance.taxii.reading import objects_statement, page_keys
from alliance.taxii.services import (
    Collection,
    TaxiiError,
    legacy_id,
    served_conditions,
    stable_id,
    visible,
)


def _any_unmarked(objects: list) -> bool:
    return any(isinstance(o, dict) and o.get("type") != "marking-definition"
               and strictest_level([o]) is None for o in objects)


def add_objects(user, collection: Collection, objects: list[dict], refs=None):
    """Store an envelope as one note in the collection's alliance, through the same posting
    service as the web (validation, versions, ownership, TLP). The note's TLP is the strictest
    TLP marking on its objects, and never looser than the alliance's default while any object
    carries no TLP marking. Returns the status resource.
    `refs`: the references the objects hold, when parsing gathered them (Parsed.refs)."""
    from alliance.notes.posting import NoteDraft, post_note
    from alliance.notes.submissions import AlreadyPosted, Sending, submitted_note
    from alliance.taxii.models import TaxiiStatus

    if not collection.can_write or collection.alliance is None:
        raise TaxiiError(403, "Not writable", "This collection is read-only for your key.")
    alliance = collection.alliance
    tlp = _envelope_tlp(alliance, objects)
    title = _envelope_title(objects)
    status = TaxiiStatus(user_id=user.id, collection_id=collection.id,
                         status="complete", total_count=len(objects),
                         success_count=len(objects))
    # The same envelope from the same user to the same collection within RESENT_WITHIN is
    # one post (a client retrying what it thinks was lost): the first's status answers.
    content = hashlib.sha256(orjson.dumps(["taxii", collection.id, objects])).hexdigest()
    sending = Sending(key=f"taxii:{uuid.uuid4().hex}", content=content)

    def post(submission):
        # One unit of work: a status is stored with its note or not at all, and a client
        # that saw an error may send the envelope again without doubling it.
        with unit_of_work():
            note = post_note(user, NoteDraft(title=title[:300], tlp=tlp,
                                             alliance_ids=[alliance.id], objects=objects,
                                             kind="bundle", refs=refs),
                             alerts=False, submission=submission)
            _store_status(status, note, objects, alliance.id)

    try:
        try:
            post(sending)
        except IntegrityError:
            # Another request stored one of these versions between this one's versions
            # check and its insert (the same envelope sent again at once, say). Checked
            # again: the same envelope is AlreadyPosted, an identical version is linked, a
            # different one is a 409. (The unit rolled the first try back.)
            post(sending)
    except AlreadyPosted as exc:
        first = _posted_status(exc.note_id) if exc.note_id else None
        note = submitted_note(user, exc.note_id)
        if first is not None and first.user_id == user.id and note is not None \
                and note.retracted_at is None:
            return first
        post(None)  # the first was withdrawn since (DELETE, then sent again): a new post
    return status


def _envelope_tlp(alliance, objects: list) -> str:
    """The TLP of the note an envelope becomes (see add_objects); TLP:RED is refused."""
    tlp = strictest_level([o for o in objects if isinstance(o, dict)]) or alliance.default_tlp
    if tlp == "RED":
        raise TaxiiError(422, "TLP:RED over TAXII",
                         "TLP:RED notes need named recipients; post them on the web.")
    if TLP_RANK[tlp] < TLP_RANK[alliance.default_tlp] and _any_unmarked(objects):
        # An object that carries no TLP marking is shared as the alliance shares by
        # default: one TLP:CLEAR object beside it does not make it public.
        tlp = alliance.default_tlp
    return tlp


def _envelope_title(objects: list) -> str:
    """The name of the envelope's one report, else a count of its objects."""
    reports = [o for o in objects if isinstance(o, dict) and o.get("type") == "report"
               and isinstance(o.get("name"), str)]
    title = one_line(reports[0]["name"]) if len(reports) == 1 else ""
    return title or f"TAXII upload of {len(objects):,} object{'s' if len(objects) != 1 else ''}"


def _store_status(status, note: Note, objects: list, alliance_id: int) -> None:
    """Fill in and add a post's status: each object's id and version, under the id derived
    from its note (_status_id)."""
    unversioned = {o["id"] for o in objects if not (o.get("modified") or o.get("created"))}
    # An SCO's version is the date it entered this collection (reading._version_text): earlier
    # than this note when another note brought it first.
    added = dict(db.session.execute(
        select(StixObject.stix_id, func.min(CollectionObject.date_added))
        .join(NoteObject, NoteObject.object_id == StixObject.id)
        .join(CollectionObject, CollectionObject.object_id == StixObject.id)
        .where(NoteObject.note_id == note.id, StixObject.stix_id.in_(unversioned),
               CollectionObject.alliance_id == alliance_id)
        .group_by(StixObject.stix_id)).all()) if unversioned else {}
    status.successes = [{"id": o["id"], "version": o.get("modified") or o.get("created")
                         or rfc3339(added.get(o["id"], note.created_at))} for o in objects]
    status.id = _status_id(note.id)
    db.session.add(status)


def _own_versions(user, collection: Collection, object_id: str,
                  filters: Filters | None) -> list:
    """The stored versions of the object a DELETE withdraws (see delete_object): 404 when
    there are none, 403 when the platform serves it or another organisation created it."""
    if filters is None:
        rows = db.session.scalars(select(StixObject).where(
            StixObject.stix_id == object_id, visible(user, collection))).all()
    else:
        filters.ids, filters.added_after = (object_id,), None
        rows = [row for row, _added in db.session.execute(
            objects_statement(user, collection, filters, page_keys(collection))).all()]
    if not rows:
        raise TaxiiError(404, "Object not found", "No such object in this collection.")
    if any(r.scope == SERVED_WITH for r in rows):
        raise TaxiiError(403, "Served by the platform", (
            "The platform serves this object beside the objects that need it (an "
            "organisation's identity, a TLP marking definition); it goes when they go. "
            "Nothing was deleted."))
    if any(r.organisation_id != user.organisation_id for r in rows):
        raise TaxiiError(403, "Not yours", "Only the organisation that created an object may "
                                           "delete it.")
    return list(rows)


def _check_holds_only(note: Note, object_id: str, row_ids: list[int]) -> None:
    """409 unless withdrawing the note takes nothing but the object (or the object is the
    note's report): DELETE withdraws whole notes, and must not take the objects posted
    beside this one with it."""
    others = db.session.scalar(select(func.count()).select_from(NoteObject).join(
        StixObject, StixObject.id == NoteObject.object_id).where(
        NoteObject.note_id == note.id, NoteObject.object_id.not_in(row_ids),
        StixObject.stix_id != note.report_id, StixObject.scope != SERVED_WITH))
    if others and object_id != note.report_id:
        raise TaxiiError(409, "Posted with other objects", (
            f"This object came in a note with {others} other object"
            f"{'s' if others != 1 else ''} ({note.report_id}); DELETE withdraws whole "
            "notes. Delete that report to withdraw all of it, or retract it on the web. "
            "Nothing was deleted."))


def _status_id(note_id: int) -> str:
    """A TAXII post's status id, derived from its note: an envelope sent again finds the
    first one's status (only its own user may read a status)."""
    return stable_id(f"taxii-status:{note_id}")


def _posted_status(note_id: int):
    """The status a post stored (its id as made then: version 4, or before 2026-12 the
    legacy version 5 id)."""
    from alliance.taxii.models import TaxiiStatus

    return db.session.get(TaxiiStatus, _status_id(note_id)) or db.session.get(
        TaxiiStatus, legacy_id(f"taxii-status:{note_id}"))


def status_resource(status) -> dict:
    body = {"id": status.id, "status": status.status,
            "request_timestamp": rfc3339(status.request_timestamp),
            "total_count": status.total_count, "success_count": status.success_count,
            "failure_count": status.failure_count, "pending_count": status.pending_count}
    # Optional lists, never empty (TAXII 2.1 4.3.1): an empty one is left out.
    for name, items in (("successes", status.successes), ("failures", status.failures),
                        ("pendings", [])):
        if items:
            body[name] = items
    return body


def get_status(user, status_id: str):
    from alliance.taxii.models import TaxiiStatus

    status = db.session.get(TaxiiStatus, status_id)
    if status is None or status.user_id != user.id:
        raise TaxiiError(404, "Status not found", "There is no such status for your key.")
    return status


@unit_of_work()
def delete_object(user, collection: Collection, object_id: str,
                  filters: Filters | None = None) -> int:
    """Withdraw an object from the collection: the notes of the key's organisation in this
    collection that hold it are retracted (only the creator organisation may), all in one
    transaction, or none when the key's user may not retract one of them. Refused (409) when
    it would not be gone (other organisations' notes here hold it) or would take other
    objects with it (a note that holds more than it; its report id withdraws the whole
    note). `filters`: match[version] / match[spec_version] (TAXII 2.1 5.7): only the
    versions they name (as GET …/objects/{id}/ finds them) are withdrawn; without them,
    every version. Returns how many notes were retracted."""
    from alliance.notes.editing import retract_note

    if not collection.can_write:
        raise TaxiiError(403, "Not writable", "This collection is read-only for your key.")
    row_ids = [r.id for r in _own_versions(user, collection, object_id, filters)]
    note_ids = db.session.scalars(select(NoteObject.note_id).where(
        NoteObject.object_id.in_(row_ids))).all()
    holders = db.session.scalars(readable_notes(Principal.of(user)).where(
        *served_conditions(collection), Note.id.in_(note_ids))).all()
    notes = [n for n in holders if n.organisation_id == user.organisation_id]
    if len(notes) < len(holders):
        # A 200 must mean the object is gone: it would still be served from their notes.
        raise TaxiiError(409, "Shared by others too", "Notes of other organisations in this "
                                                      "collection hold this object too, so it "
                                                      "would stay. Nothing was deleted.")
    for note in notes:
        _check_holds_only(note, object_id, row_ids)
    try:  # all of them or none: a refusal part-way rolls back this unit whole
        for note in notes:
            retract_note(user, note, f"Deleted over TAXII ({object_id}).")
    except (NotAllowed, NotFound) as exc:
        raise TaxiiError(403, "Not allowed", f"{exc} Nothing was deleted.") from exc
    return len(notes)
