"""The TAXII collection index: collection_objects (what each alliance's served notes hold)
and organisation_collection_objects (what each organisation's served notes hold), the rows
TAXII pages walk, kept in step with posting, editing and retracting notes.

Where the rows come from: a note TAXII serves (sharing.policy.taxii_served_links: not
TLP:RED, not retracted) that links an object version, under each of its audience alliances
(under its organisation, for the organisation's own collection). A version enters a
collection when such a note first brings it there: at the later of the note's post and the
version's storing (an edit stores a new report version after its note was posted). That is
TAXII's date_added for the collection."""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from typing import cast as type_cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    Table,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    select,
    true,
)

from alliance.core.models import UTCDateTime, utcnow
from alliance.extensions import db
from alliance.notes.models import (
    CollectionObject,
    Note,
    NoteObject,
    OrganisationCollectionObject,
    StixObject,
)
from alliance.sharing.policy import ServedLinks, taxii_served_links

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

# Advisory lock keys of the collections (bigint): an alliance's, an organisation's own.
_COLLECTION_LOCK = 0x5441584949 << 24   # "TAXII"
_OWN_COLLECTION = 1 << 23


@dataclass(frozen=True)
class _Index:
    """One collection index: its table and the column naming its collection (`owner`);
    `own`: an organisation's own collections (served links without their audiences)."""

    table: Table
    owner: str
    own: bool

    @property
    def links(self) -> ServedLinks:
        return taxii_served_links(own=self.own)


# Cast: a declarative model's __table__ is typed as any FromClause; these are Tables.
_INDEXES = (_Index(type_cast(Table, CollectionObject.__table__), "alliance_id", own=False),
            _Index(type_cast(Table, OrganisationCollectionObject.__table__), "organisation_id",
                   own=True))


def _microseconds(stored):
    """SQLite: a stored timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', SQLAlchemy's form) as whole
    microseconds since 1970."""
    return (cast(func.strftime("%s", func.substr(stored, 1, 19)), Integer) * 1000000
            + cast(func.substr(stored, 21, 6), Integer))


def _date_added(dialect: str, index: _Index, entered, floor):
    """A row's date added: unique and strictly increasing within its collection, so that a
    client polling with added_after = the last page's X-TAXII-Date-Added-Last gets every
    version once (TAXII has no tie-breaker: versions that share an instant with the last one
    it saw would be skipped). The latest of when it entered (`entered`), one microsecond
    after the collection's latest date and `floor` (if not None), plus the row's rank in
    this insert (in order of entering, then row id). Dates then move at most a microsecond
    a row past the later of those."""
    owner = index.links.owner
    rank = func.row_number().over(partition_by=owner, order_by=(entered, StixObject.id)) - 1
    other = index.table.alias("latest")
    latest = (select(func.max(other.c.date_added)).where(other.c[index.owner] == owner)
              .scalar_subquery())
    if dialect == "postgresql":
        tick = literal(timedelta(microseconds=1), Interval())
        bounds = [entered, latest + tick] + ([floor] if floor is not None else [])
        return func.greatest(*bounds) + rank * tick
    bounds = [_microseconds(entered), func.coalesce(_microseconds(latest) + 1, 0)]
    at = func.max(*bounds, *([_microseconds(floor)] if floor is not None else [])) + rank
    return func.strftime("%Y-%m-%d %H:%M:%S", at // 1000000, "unixepoch").concat(".").concat(
        func.printf("%06d", at % 1000000))


def collect_statements(dialect: str, where, *, every_note: bool = False, after=None) -> list:
    """The INSERTs of both indexes' rows for the links `where` (a condition on note_objects)
    selects. One note's rows (a version the collection holds already keeps its row and
    date), or with `every_note` the rows of many notes at once (bench-data, rebuilds): each
    version dated by the first served note that brought it there (_date_added: never at or
    before a date the collection holds, nor before `after`)."""
    # Imported here: sqlalchemy.dialects.postgresql is heavy, and a command-line start (which
    # builds the app) never needs it.
    insert: Callable[[Table], PostgresqlInsert | SqliteInsert]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    floor = literal(after, UTCDateTime()) if after is not None else None
    statements = []
    for index in _INDEXES:
        links = index.links
        entered: ColumnElement[Any] = case((links.posted > StixObject.date_added, links.posted),
                       else_=StixObject.date_added)
        if every_note:
            entered = func.min(entered)
        rows = (select(links.owner, _date_added(dialect, index, entered, floor), StixObject.id,
                       StixObject.type)
                .select_from(links.source.join(StixObject.__table__,
                                               StixObject.id == NoteObject.object_id))
                .where(where))
        if every_note:
            rows = rows.group_by(links.owner, StixObject.id, StixObject.type)
        statements.append(
            insert(index.table).from_select([index.owner, "date_added", "object_id", "type"],
                                            rows)
            .on_conflict_do_nothing(index_elements=["object_id", index.owner]))
    return statements


@lru_cache
def _note_statements(dialect: str) -> tuple:
    """collect_statements for one note (bound as :note_id), built once per dialect."""
    return tuple(collect_statements(dialect, NoteObject.note_id == bindparam("note_id")))


def collect_objects(note: Note) -> None:
    """The note's objects into its alliances' collections (CollectionObject) and its
    organisation's own (OrganisationCollectionObject), when TAXII serves the note. A
    version a collection holds already keeps its date; one new to it is dated now, even
    when it was stored long ago (an identical repost to another alliance, a version of
    another organisation's linked), so that a client reading the collection with
    added_after gets it.

    On PostgreSQL the collections' dates are taken under a transaction lock per collection
    (held to the commit): a post that dates its rows after another's commits after it, so a
    client that has read up to a date never misses a row dated before it later. SQLite has
    one writer at a time."""
    dialect = db.session.connection().dialect.name
    if dialect == "postgresql":
        keys = sorted({_COLLECTION_LOCK + a.alliance_id for a in note.audiences}
                      | {_COLLECTION_LOCK + _OWN_COLLECTION + note.organisation_id})
        for key in keys:  # in one order: two posts never wait on each other's
            db.session.execute(select(func.pg_advisory_xact_lock(key)))
    for statement in _note_statements(dialect):
        db.session.execute(statement, {"note_id": note.id})


def collect_every_note(where=None, *, after=None) -> None:
    """The collection rows of every note `where` (a condition on note_objects; None: every
    note) selects, at once: for bulk fills (bench-data) and rebuilds. `after`: no row dated
    before it (a rebuild after rows were taken out: a date they had may be later than what
    is left)."""
    dialect = db.session.connection().dialect.name
    for statement in collect_statements(dialect, true() if where is None else where,
                                        every_note=True, after=after):
        db.session.execute(statement)


def uncollect_objects(*, note_id: int | None = None, object_id: int | None = None) -> None:
    """Out of the collections (alliances' and organisations') where no served note holds
    them any more: one object version (an edit replaced a report version), or every version
    a note holds (it was retracted). If a later note brings one back, it is new to the
    collection then. After a retraction the versions that other served notes still hold
    are dated again by those notes (collect_every_note): a date the retracted note set would
    still tell when it was posted. A date only moves later, so no client misses a version."""
    if note_id is not None:
        held = select(NoteObject.object_id).where(NoteObject.note_id == note_id)
        for index in _INDEXES:
            db.session.execute(delete(index.table).where(index.table.c.object_id.in_(held)))
        # Dated from now on: a date the rows just taken out had is never given again, so
        # a client polling with added_after misses no version dated anew.
        collect_every_note(NoteObject.object_id.in_(held), after=utcnow())
        return
    for index in _INDEXES:
        table, links = index.table, index.links
        still_held = exists(select(literal(1)).select_from(links.source).where(
            NoteObject.object_id == table.c.object_id, links.owner == table.c[index.owner]))
        db.session.execute(delete(table).where(table.c.object_id == object_id, ~still_held))
