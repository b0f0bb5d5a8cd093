"""Reading a TAXII 2.1 collection: objects, an object by id, its versions and the manifest,
as pages of the object versions the collection serves to the user (taxii.services.visible).

Pages are a keyset over (date_added, row id): stable when thousands of objects share one
date added and when objects are added while a client pages. The `next` cursor is signed and
bound to the API key, the collection and the filters: another key's cursor, or a forged one,
is refused and reveals nothing."""
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import String, and_, exists, false, func, or_, select, tuple_

from alliance.core.queries import walk_index
from alliance.extensions import db
from alliance.notes.models import CollectionObject, OrganisationCollectionObject, StixObject
from alliance.taxii.filters import Filters, parse_timestamp, rfc3339
from alliance.taxii.services import (
    STIX_MEDIA_TYPE,
    Collection,
    TaxiiError,
    held,
    visible,
)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _version_text(row: StixObject, added: datetime) -> str:
    """An object's version: `modified`, else `created` (stored in the same column), else the
    date it was added to the collection (SCOs have neither; TAXII 2.1 then versions by
    date_added, the one this collection's manifest shows)."""
    return row.modified or rfc3339(added)


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
                held(user, collection, later.c.id)))
        else:
            stamp = parse_timestamp(version, "match[version]")
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


def page_keys(collection: Collection) -> tuple:
    """The columns a page walks, in order, and the type: an alliance collection walks its
    own objects (CollectionObject's primary key, whatever the alliance's share of the
    table), in the order its versions entered the alliance's collection (TAXII's date
    added: a version stored earlier for another alliance is new here when a note brings it);
    the organisation's collection likewise walks OrganisationCollectionObject's."""
    if collection.alliance is not None:
        return CollectionObject.date_added, CollectionObject.object_id, CollectionObject.type
    return (OrganisationCollectionObject.date_added, OrganisationCollectionObject.object_id,
            OrganisationCollectionObject.type)


def objects_statement(user, collection: Collection, filters: Filters, keys: tuple):
    """The collection's objects, each with its date added to the collection (`keys`:
    page_keys(collection))."""
    added, _row_id, stix_type = keys
    stmt = select(StixObject, added).where(visible(user, collection))
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
        stmt = stmt.where(false())  # everything stored here is STIX 2.1
    if filters.added_after is not None:
        stmt = stmt.where(added > filters.added_after)
    condition = _version_condition(filters, user, collection, added)
    if condition is not None:
        stmt = stmt.where(condition)
    # One version is served once. Two organisations can each hold a row of the same object
    # version (each stored it where the other could not see it; both later shared it here):
    # of such twins the collection serves the first row.
    # (`twin.id + 0`: twins are found by stix_id alone; planned from default estimates,
    # PostgreSQL otherwise also read every row id below this one, a range that grows with
    # the collection.)
    twin = StixObject.__table__.alias("twin")
    return stmt.where(~exists().where(
        twin.c.stix_id == StixObject.stix_id, twin.c.id + 0 < StixObject.id,
        _instant(twin.c.modified) == _instant(StixObject.modified),
        held(user, collection, twin.c.id)), _not_a_later_copy(user, collection))


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
        held(user, collection, earlier.c.id)))


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
    return parse_timestamp(data["d"], "next"), int(data["i"])


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
    keys = page_keys(collection)
    stmt = objects_statement(user, collection, filters, keys)
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
    body: dict[str, object] = {"more": result.more}
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
