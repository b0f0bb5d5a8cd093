"""TAXII 2.1 collections and objects, per user, through the one read rule.

A collection is an alliance the key's organisation is an active member of (read and write),
plus a read-only collection of the organisation's own notes. A collection serves the object
versions held by the readable notes posted to it — never TLP:RED, never retracted notes.
Pages are a keyset over (date_added, row id): stable when thousands of objects share one
date added and when objects are added while a client pages. The `next` cursor is signed and
bound to the API key, the collection and the filters: another key's cursor, or a forged one,
is refused and reveals nothing."""
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import String, and_, exists, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError

from alliance.alliances.models import Alliance, Membership
from alliance.core.errors import DomainError, NotAllowed, NotFound
from alliance.core.queries import walk_index
from alliance.core.validators import one_line
from alliance.extensions import db
from alliance.notes.models import (
    SERVED_WITH,
    CollectionObject,
    Note,
    NoteAudience,
    NoteObject,
    OrganisationCollectionObject,
    StixObject,
)
from alliance.sharing.policy import Principal, readable_note_ids, readable_notes
from alliance.stix.markings import strictest_level
from alliance.stix.tlp import TLP_RANK

# Collection ids are derived from this namespace and the alliance or organisation id, so they
# never change (not even when the site's address does).
NAMESPACE = uuid.UUID("6f1c2a52-3e0b-4f43-9a53-7c1d2b8c9e11")
DEFAULT_PAGE = 100
MAX_PAGE = 1000
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"


class TaxiiError(DomainError):
    """An error the API answers as a TAXII error message with this HTTP status."""

    def __init__(self, status: int, title: str, description: str = "", details=None):
        super().__init__(title)
        self.status_code = status
        self.title = title
        self.description = description
        self.details = details


@dataclass
class Collection:
    id: str
    title: str
    description: str
    can_read: bool
    can_write: bool
    alliance: Alliance | None = None
    organisation_id: int | None = None

    def resource(self) -> dict:
        return {"id": self.id, "title": self.title, "description": self.description,
                "can_read": self.can_read, "can_write": self.can_write,
                "media_types": [STIX_MEDIA_TYPE]}


def _v4(name: str) -> str:
    """A stable id in the form TAXII 2.1 requires (a version 4 UUID): the name's version 5
    UUID with the version bits set to 4. Before 2026-12 ids were those version 5 UUIDs
    themselves (_legacy); they still answer."""
    return str(uuid.UUID(bytes=uuid.uuid5(NAMESPACE, name).bytes, version=4))


def _legacy(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def alliance_collection_id(alliance_id: int) -> str:
    return _v4(f"alliance:{alliance_id}")


def organisation_collection_id(organisation_id: int) -> str:
    return _v4(f"organisation:{organisation_id}")


def _legacy_collection_id(collection: "Collection") -> str:
    if collection.alliance is not None:
        return _legacy(f"alliance:{collection.alliance.id}")
    return _legacy(f"organisation:{collection.organisation_id}")


def collections_for(user) -> list[Collection]:
    """One collection per alliance the user's organisation is an active member of, and the
    organisation's own notes (read-only). Decided on every request."""
    alliances = db.session.scalars(
        select(Alliance).join(Membership, Membership.alliance_id == Alliance.id)
        .where(Membership.organisation_id == user.organisation_id,
               Membership.state == "active").order_by(Alliance.name)).all()
    found = [Collection(alliance_collection_id(a.id), a.name,
                        a.description or f"Notes shared in {a.name}.", True, True, alliance=a)
             for a in alliances]
    org = user.organisation
    found.append(Collection(organisation_collection_id(org.id), f"{org.name}: own notes",
                            f"Every note {org.name} posted, in any alliance (read-only).",
                            True, False, organisation_id=org.id))
    return found


def get_collection(user, collection_id: str) -> Collection:
    for collection in collections_for(user):
        if collection_id in (collection.id, _legacy_collection_id(collection)):
            return collection
    raise TaxiiError(404, "Collection not found",
                     "There is no such collection, or your key cannot see it.")


# --- reading --------------------------------------------------------------------------------

def _served(collection: Collection) -> list:
    """Conditions on readable notes: in the collection, not RED, not retracted."""
    where = [Note.tlp != "RED", Note.retracted_at.is_(None)]
    if collection.alliance is not None:
        where.append(Note.audiences.any(NoteAudience.alliance_id == collection.alliance.id))
    else:
        where.append(Note.organisation_id == collection.organisation_id)
    return where


def _note_ids(user, collection: Collection):
    return readable_note_ids(Principal.of(user)).where(*_served(collection))


def _held(user, collection: Collection, object_id):
    """EXISTS: a note of the collection that the user may read holds this object version.
    Correlated, i.e. checked row by row: a page then walks the (date_added, id) index and
    stops at its end. (`id IN (every visible object)` made SQLite list and sort every object
    of the collection on every page: not flat in the collection's size.)"""
    return _note_ids(user, collection).where(Note.id == NoteObject.note_id,
                                             NoteObject.object_id == object_id).exists()


def _visible(user, collection: Collection):
    """The condition on StixObject: held by a note of the collection the user may read."""
    return _held(user, collection, StixObject.id)


@dataclass
class Filters:
    added_after: datetime | None = None
    ids: tuple = ()
    types: tuple = ()
    versions: tuple = ("last",)
    spec_versions: tuple = ()

    def fingerprint(self) -> str:
        text = repr((self.added_after, self.ids, self.types, self.versions, self.spec_versions))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# RFC 3339 section 5.6 (date-time): fromisoformat alone also takes "2024-05-01 12:00",
# "20240501T120000" and digits of other scripts.
RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
                        re.ASCII)


def _timestamp(value: str, what: str) -> datetime:
    value = value.strip()
    try:
        if not RFC3339_RE.fullmatch(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise TaxiiError(400, f"Bad {what}", f"{value[:60]!r} is not an RFC 3339 timestamp "
                                             "such as 2024-05-01T12:00:00.000Z.") from exc
    if parsed.tzinfo is None:
        raise TaxiiError(400, f"Bad {what}", "The timestamp needs a time zone (Z).")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before the first UTC instant
        raise TaxiiError(400, f"Bad {what}", f"{value[:60]!r} is out of range.") from exc


STIX_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]--[0-9a-f]{8}-[0-9a-f]{4}-"
                        r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
STIX_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,248}[a-z0-9]", re.ASCII)  # STIX 2.1 3.1
SPEC_VERSION_RE = re.compile(r"\d+\.\d+", re.ASCII)
# The URL parameters of TAXII 2.1 section 3.4; each may be given once.
PARAMETERS = ("added_after", "limit", "next", "match[id]", "match[type]", "match[version]",
              "match[spec_version]")


def check_parameters(args) -> None:
    """TAXII 2.1 3.4: a parameter given twice is a bad request (which would count?). `args`:
    the request's MultiDict (a plain dict, from the service's own callers, has each once)."""
    if not hasattr(args, "getlist"):
        return
    for name in PARAMETERS:
        if len(args.getlist(name)) > 1:
            raise TaxiiError(400, f"Bad {name}", f"{name} may be given once; give several "
                                                 "values comma-separated.")


def parse_filters(args, with_version: bool = True) -> Filters:
    check_parameters(args)

    def listed(name, grammar=None, what=""):
        raw = args.get(name)
        if raw is None:
            return ()
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        if not values or len(values) > 100:
            raise TaxiiError(400, f"Bad {name}", "Give 1 to 100 comma-separated values.")
        for value in values:
            if grammar is not None and not grammar.fullmatch(value):
                raise TaxiiError(400, f"Bad {name}", f"{value[:60]!r} is not {what}.")
        return values

    filters = Filters(
        ids=listed("match[id]", STIX_ID_RE, "a STIX identifier (type--UUID)"),
        types=listed("match[type]", STIX_TYPE_RE, "a STIX type name"),
        spec_versions=listed("match[spec_version]", SPEC_VERSION_RE, "a STIX version (2.1)"))
    if "added_after" in args:
        filters.added_after = _timestamp(args["added_after"], "added_after")
    if with_version and "match[version]" in args:
        versions = listed("match[version]")
        for v in versions:
            if v not in ("first", "last", "all"):
                _timestamp(v, "match[version]")
        if "all" in versions and len(versions) > 1:
            raise TaxiiError(400, "Bad match[version]", "all takes every version: give it "
                                                        "alone.")
        filters.versions = versions
    return filters


def _version_text(row: StixObject, added: datetime) -> str:
    """An object's version: `modified`, else `created` (stored in the same column), else the
    date it was added to the collection (SCOs have neither; TAXII 2.1 then versions by
    date_added, the one this collection's manifest shows)."""
    return row.modified or rfc3339(added)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_condition(filters: Filters, user, collection: Collection, added):
    """match[version]: first, last, all, or exact timestamps (several allowed, any match).
    An SCO's version is its date added to the collection (`added`; _version_text)."""
    if "all" in filters.versions:
        return None
    later = StixObject.__table__.alias("later")
    conditions = []
    for version in filters.versions:
        if version in ("first", "last"):
            mine, theirs = _instant(StixObject.modified), _instant(later.c.modified)
            newer = theirs > mine if version == "last" else theirs < mine
            conditions.append(~exists().where(
                later.c.stix_id == StixObject.stix_id, newer,
                later.c.organisation_id == StixObject.organisation_id,
                _held(user, collection, later.c.id)))
        else:
            stamp = _timestamp(version, "match[version]")
            conditions.append(_instant(StixObject.modified)
                              == stamp.strftime("%Y-%m-%dT%H:%M:%S%f000"))
            conditions.append(and_(StixObject.modified == "", added == stamp))
    return or_(*conditions)


def _instant(modified):
    """A stored STIX timestamp as text that compares like the instant it stands for: the
    seconds, then the fraction padded to 9 digits. STIX allows any number of fraction digits,
    and as plain strings "12:00:00Z" sorts after "12:00:00.5Z"."""
    fraction = func.replace(func.replace(func.substr(modified, 20, type_=String), ".", ""),
                            "Z", "", type_=String)
    return func.substr(modified, 1, 19, type_=String) + func.substr(
        fraction + "000000000", 1, 9, type_=String)


def _keys(collection: Collection) -> tuple:
    """The columns a page walks, in order, and the type: an alliance collection walks its
    own objects (CollectionObject's primary key, whatever the alliance's share of the
    table), in the order its versions entered the alliance's collection (TAXII's date
    added: a version stored earlier for another alliance is new here when a note brings it);
    the organisation's collection likewise walks OrganisationCollectionObject's."""
    if collection.alliance is not None:
        return CollectionObject.date_added, CollectionObject.object_id, CollectionObject.type
    return (OrganisationCollectionObject.date_added, OrganisationCollectionObject.object_id,
            OrganisationCollectionObject.type)


def _statement(user, collection: Collection, filters: Filters, keys: tuple):
    """The collection's objects, each with its date added to the collection (`keys`:
    _keys(collection))."""
    visible = _visible(user, collection)
    added, _row_id, stix_type = keys
    stmt = select(StixObject, added).where(visible)
    if collection.alliance is not None:
        stmt = stmt.join(CollectionObject, CollectionObject.object_id == StixObject.id).where(
            CollectionObject.alliance_id == collection.alliance.id)
    else:
        stmt = stmt.join(OrganisationCollectionObject,
                         OrganisationCollectionObject.object_id == StixObject.id).where(
            OrganisationCollectionObject.organisation_id == collection.organisation_id)
    if filters.ids:
        # An object's rows, looked up by id (the stix_id index) before the statement runs:
        # the collection is then read through its (object_id, owner) index for those rows
        # alone, instead of walked in date order until they turn up (which grew with the
        # collection: issue 22).
        rows = db.session.scalars(select(StixObject.id).where(
            StixObject.stix_id.in_(filters.ids))).all()
        stmt = stmt.where(StixObject.stix_id.in_(filters.ids), _row_id.in_(rows))
    if filters.types:
        stmt = stmt.where(stix_type.in_(filters.types))
    if filters.spec_versions and "2.1" not in filters.spec_versions:
        stmt = stmt.where(False)  # everything stored here is STIX 2.1
    if filters.added_after is not None:
        stmt = stmt.where(added > filters.added_after)
    condition = _version_condition(filters, user, collection, added)
    if condition is not None:
        stmt = stmt.where(condition)
    # One version is served once. Two organisations can each hold a row of the same object
    # version (each stored it where the other could not see it; both later shared it here):
    # of such twins the collection serves the first row.
    twin = StixObject.__table__.alias("twin")
    return stmt.where(~exists().where(
        twin.c.stix_id == StixObject.stix_id, twin.c.id < StixObject.id,
        _instant(twin.c.modified) == _instant(StixObject.modified),
        _held(user, collection, twin.c.id)), _not_a_later_copy(user, collection))


def _not_a_later_copy(user, collection: Collection):
    """One organisation's versions of an object id per collection: those of the organisation
    that posted it first among those whose versions the collection holds. Another
    organisation's versions of the same id (its own copy of a third-party object,
    notes.authorship) never replace or revoke them here. SCOs (no `modified`) are per-value
    copies and served as before."""
    earlier = StixObject.__table__.alias("earlier")

    def first_of(organisation_id):
        rows = StixObject.__table__.alias()
        return select(func.min(rows.c.id)).where(
            rows.c.stix_id == StixObject.stix_id, rows.c.organisation_id == organisation_id
        ).correlate_except(rows).scalar_subquery()

    return or_(StixObject.modified == "", ~exists().where(
        earlier.c.stix_id == StixObject.stix_id,
        earlier.c.organisation_id != StixObject.organisation_id,
        first_of(earlier.c.organisation_id) < first_of(StixObject.organisation_id),
        _held(user, collection, earlier.c.id)))


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="taxii-next")


def _cursor(key_id: int, collection: Collection, filters: Filters, added: datetime,
            row_id: int) -> str:
    return _serializer().dumps({"k": key_id, "c": collection.id, "f": filters.fingerprint(),
                                "d": rfc3339(added), "i": row_id})


def _read_cursor(token: str, key_id: int, collection: Collection, filters: Filters):
    # One answer for a forged cursor and a genuine one of another key, collection or filters:
    # telling them apart would confirm that a leaked cursor is genuine.
    refused = TaxiiError(400, "Bad next", "The next value is not one this server gave out "
                                          "for this key, collection and filters.")
    try:
        data = _serializer().loads(token)
    except BadSignature as exc:
        raise refused from exc
    if (not isinstance(data, dict) or data.get("k") != key_id
            or data.get("c") != collection.id or data.get("f") != filters.fingerprint()):
        raise refused
    return _timestamp(data["d"], "next"), int(data["i"])


@dataclass
class Page:
    rows: list  # StixObject
    added: list  # when each was added to the collection (TAXII's date_added)
    more: bool
    next: str | None

    @property
    def first_added(self):
        return self.added[0] if self.added else None

    @property
    def last_added(self):
        return self.added[-1] if self.added else None


def page(user, key_id: int, collection: Collection, filters: Filters, limit: str | None,
         next_token: str | None) -> Page:
    """One page of the collection's objects, oldest date added first."""
    if not collection.can_read:
        raise TaxiiError(403, "Not readable", "This collection cannot be read with your key.")
    try:
        if limit not in (None, "") and not (limit.isascii() and limit.strip().isdigit()):
            raise ValueError(limit)
        size = DEFAULT_PAGE if limit in (None, "") else int(limit)
    except ValueError as exc:
        raise TaxiiError(400, "Bad limit", "limit must be a whole number.") from exc
    if size < 1:
        raise TaxiiError(400, "Bad limit", "limit must be at least 1.")
    size = min(size, MAX_PAGE)
    keys = _keys(collection)
    stmt = _statement(user, collection, filters, keys)
    added_column, id_column, _type = keys
    if next_token:
        added, row_id = _read_cursor(next_token, key_id, collection, filters)
        # A row value: SQLite and PostgreSQL start the index range there (the equivalent
        # `a > x OR (a = x AND id > y)` made SQLite scan the index from its start).
        stmt = stmt.where(tuple_(added_column, id_column) > (added, row_id))
    stmt = stmt.order_by(added_column, id_column).limit(size + 1)
    # By id: a few rows, found through the index and sorted; else a walk of the collection.
    rows = db.session.execute(stmt).all() if filters.ids else walk_index(stmt)
    more = len(rows) > size
    rows = rows[:size]
    return Page([row for row, _added in rows], [added for _row, added in rows], more,
                _cursor(key_id, collection, filters, rows[-1][1], rows[-1][0].id)
                if more else None)


def _listing(result: Page, name: str, items: list) -> dict:
    """A TAXII list resource: `more`, the list only when it holds something (STIX and TAXII
    lists are never empty: an empty page is {"more": false}), `next` when there is more."""
    body = {"more": result.more}
    if items:
        body[name] = items
    if result.next:
        body["next"] = result.next
    return body


def envelope(result: Page) -> dict:
    return _listing(result, "objects", [row.body for row in result.rows])


def manifest(result: Page) -> dict:
    return _listing(result, "objects", [
        {"id": row.stix_id, "date_added": rfc3339(added),
         "version": _version_text(row, added), "media_type": STIX_MEDIA_TYPE}
        for row, added in zip(result.rows, result.added, strict=True)])


def versions(result: Page) -> dict:
    return _listing(result, "versions", [
        _version_text(row, added) for row, added in zip(result.rows, result.added, strict=True)])


# --- writing --------------------------------------------------------------------------------

def _any_unmarked(objects: list) -> bool:
    return any(isinstance(o, dict) and o.get("type") != "marking-definition"
               and strictest_level([o]) is None for o in objects)


def add_objects(user, collection: Collection, objects: list[dict], refs=None):
    """Store an envelope as one note in the collection's alliance, through the same posting
    service as the web (validation, versions, ownership, TLP). The note's TLP is the strictest
    TLP marking on its objects, and never looser than the alliance's default while any object
    carries no TLP marking. Returns the status resource.
    `refs`: the references the objects hold, when parsing gathered them (Parsed.refs)."""
    from alliance.notes.services import AlreadyPosted, Sending, post_note, submitted_note
    from alliance.taxii.models import TaxiiStatus

    if not collection.can_write or collection.alliance is None:
        raise TaxiiError(403, "Not writable", "This collection is read-only for your key.")
    alliance = collection.alliance
    tlp = strictest_level([o for o in objects if isinstance(o, dict)]) or alliance.default_tlp
    if tlp == "RED":
        raise TaxiiError(422, "TLP:RED over TAXII",
                         "TLP:RED notes need named recipients; post them on the web.")
    if TLP_RANK[tlp] < TLP_RANK[alliance.default_tlp] and _any_unmarked(objects):
        # An object that carries no TLP marking is shared as the alliance shares by
        # default: one TLP:CLEAR object beside it does not make it public.
        tlp = alliance.default_tlp
    reports = [o for o in objects if isinstance(o, dict) and o.get("type") == "report"
               and isinstance(o.get("name"), str)]
    title = one_line(reports[0]["name"]) if len(reports) == 1 else ""
    title = title or f"TAXII upload of {len(objects):,} object{'s' if len(objects) != 1 else ''}"
    status = TaxiiStatus(user_id=user.id, collection_id=collection.id,
                         status="complete", total_count=len(objects),
                         success_count=len(objects))
    # The same envelope from the same user to the same collection within RESENT_WITHIN is
    # one post (a client retrying what it thinks was lost): the first's status answers.
    content = hashlib.sha256(orjson.dumps(["taxii", collection.id, objects])).hexdigest()
    sending = Sending(key=f"taxii:{uuid.uuid4().hex}", content=content)

    def record_status(note):
        # In the note's own transaction: a status is stored with its note or not at all,
        # and a client that saw an error may send the envelope again without doubling it.
        unversioned = {o["id"] for o in objects if not (o.get("modified") or o.get("created"))}
        # An SCO's version is the date it entered this collection (_version_text): earlier
        # than this note when another note brought it first.
        added = dict(db.session.execute(
            select(StixObject.stix_id, func.min(CollectionObject.date_added))
            .join(NoteObject, NoteObject.object_id == StixObject.id)
            .join(CollectionObject, CollectionObject.object_id == StixObject.id)
            .where(NoteObject.note_id == note.id, StixObject.stix_id.in_(unversioned),
                   CollectionObject.alliance_id == alliance.id)
            .group_by(StixObject.stix_id)).all()) if unversioned else {}
        status.successes = [{"id": o["id"], "version": o.get("modified") or o.get("created")
                             or rfc3339(added.get(o["id"], note.created_at))} for o in objects]
        status.id = _status_id(note.id)
        db.session.add(status)

    def post(submission):
        post_note(user, title=title[:300], tlp=tlp, alliance_ids=[alliance.id],
                  objects=objects, kind="bundle", alerts=False, refs=refs, also=record_status,
                  submission=submission)

    try:
        try:
            post(sending)
        except IntegrityError:
            # Another request stored one of these versions between this one's versions
            # check and its insert (the same envelope sent again at once, say). Checked
            # again: the same envelope is AlreadyPosted, an identical version is linked, a
            # different one is a 409.
            db.session.rollback()
            post(sending)
    except AlreadyPosted as exc:
        db.session.rollback()
        first = _posted_status(exc.note_id) if exc.note_id else None
        note = submitted_note(user, exc.note_id)
        if first is not None and first.user_id == user.id and note is not None \
                and note.retracted_at is None:
            return first
        post(None)  # the first was withdrawn since (DELETE, then sent again): a new post
    return status


def _status_id(note_id: int) -> str:
    """A TAXII post's status id, derived from its note: an envelope sent again finds the
    first one's status (only its own user may read a status)."""
    return _v4(f"taxii-status:{note_id}")


def _posted_status(note_id: int):
    """The status a post stored (its id as made then: version 4, or before 2026-12 the
    legacy version 5 id)."""
    from alliance.taxii.models import TaxiiStatus

    return db.session.get(TaxiiStatus, _status_id(note_id)) or db.session.get(
        TaxiiStatus, _legacy(f"taxii-status:{note_id}"))


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
    from alliance.notes.services import retract_note

    if not collection.can_write:
        raise TaxiiError(403, "Not writable", "This collection is read-only for your key.")
    if filters is None:
        rows = db.session.scalars(select(StixObject).where(
            StixObject.stix_id == object_id, _visible(user, collection))).all()
    else:
        filters.ids, filters.added_after = (object_id,), None
        rows = [row for row, _added in db.session.execute(
            _statement(user, collection, filters, _keys(collection))).all()]
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
    row_ids = [r.id for r in rows]
    note_ids = db.session.scalars(select(NoteObject.note_id).where(
        NoteObject.object_id.in_(row_ids))).all()
    holders = db.session.scalars(readable_notes(Principal.of(user)).where(
        *_served(collection), Note.id.in_(note_ids))).all()
    notes = [n for n in holders if n.organisation_id == user.organisation_id]
    if len(notes) < len(holders):
        # A 200 must mean the object is gone: it would still be served from their notes.
        raise TaxiiError(409, "Shared by others too", "Notes of other organisations in this "
                                                      "collection hold this object too, so it "
                                                      "would stay. Nothing was deleted.")
    for note in notes:
        others = db.session.scalar(select(func.count()).select_from(NoteObject).join(
            StixObject, StixObject.id == NoteObject.object_id).where(
            NoteObject.note_id == note.id, NoteObject.object_id.not_in(row_ids),
            StixObject.stix_id != note.report_id, StixObject.scope != SERVED_WITH))
        if others and object_id != note.report_id:
            # DELETE withdraws whole notes: it must not take the objects posted beside this
            # one with it.
            raise TaxiiError(409, "Posted with other objects", (
                f"This object came in a note with {others} other object"
                f"{'s' if others != 1 else ''} ({note.report_id}); DELETE withdraws whole "
                "notes. Delete that report to withdraw all of it, or retract it on the web. "
                "Nothing was deleted."))
    try:  # all of them or none: a refusal part-way must not leave some withdrawn
        for note in notes:
            retract_note(user, note, f"Deleted over TAXII ({object_id}).", commit=False)
    except (NotAllowed, NotFound) as exc:
        db.session.rollback()
        raise TaxiiError(403, "Not allowed", f"{exc} Nothing was deleted.") from exc
    db.session.commit()
    return len(notes)
