"""How a post's rows are written: the hash and scope of a stored object version, the bulk
writes of one note (NoteWriter), and the one bulk writer (insert_rows: an executemany
straight to the driver on SQLite, COPY on PostgreSQL) that bench data writes with too."""
import hashlib
import json
from typing import cast

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    Table,
    Text,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from alliance.core.models import utcnow
from alliance.core.queries import refresh_statistics
from alliance.extensions import db
from alliance.notes import ranges, served_with, warninglists
from alliance.notes.models import (
    Note,
    NoteFacet,
    NoteObject,
    Observable,
    StixObject,
    facet_rows,
)
from alliance.stix import observables
from alliance.taxii.collections import collect_objects

# Rows a bulk write builds and inserts at once (object versions, observables): the JSON text
# of a 100,000-object import's versions would otherwise be held whole beside its objects.
ROWS_AT_ONCE = 5000
# The tables a note's bulk write fills, the largest first (core.queries.refresh_statistics).
BULK_TABLES = (StixObject.__tablename__, NoteObject.__tablename__, "collection_objects",
               "organisation_collection_objects", Observable.__tablename__)


def stix_now() -> str:
    """Now as a STIX timestamp (UTC, to the millisecond)."""
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def hash_body(obj: dict, stored=None) -> str:
    """sha256 of an object's JSON text: `stored` when it is the text being stored (one
    serialisation for both), else orjson's. Key order is kept, so equal hashes mean identical
    objects but different ones do not mean different objects: check_versions then compares
    the stored body itself (rows stored before this rule hashed sorted keys)."""
    if type(stored) is not str:
        try:
            return hashlib.sha256(orjson.dumps(obj)).hexdigest()
        except TypeError:  # beyond orjson (integers over 64 bits): the column's fallback
            stored = json.dumps(obj)
    return hashlib.sha256(stored.encode()).hexdigest()


def version_scope(note: Note) -> int:
    """StixObject.scope of the versions a note stores: a TLP:RED note's are its own."""
    return note.id if note.tlp == "RED" else 0


class NoteWriter:
    """A note's rows written as its objects are given, a part at a time (`add`, in order:
    the note's report first), then what depends on all of them (`finish`): a note read from
    a file in parts (alliance import) is never held whole."""

    def __init__(self, note: Note, now) -> None:
        self.note, self.now = note, now
        self.existing: set[int] = set()  # the rows of stored versions the note links
        self.stored = 0  # versions stored by the note
        self.needs = served_with.Needs()
        self.found: set[tuple[str, str]] = set()  # observables

    def add(self, new: list[dict], existing: list, objects: list[dict]) -> None:
        """Store the new versions `new`, to link with the stored `existing` (rows), of
        `objects` (the part's objects as stored: their observables and needs)."""
        note = self.note
        if new:
            # Rows as tuples, built a chunk at a time (the JSON text of a 100,000-object
            # import would otherwise be held whole beside its objects); the body goes
            # through the column's own processor here (SQLite) and the values the same on
            # every row are processed once (insert_rows).
            body = _processor(StixObject.__table__, "body")
            constants = {"organisation_id": note.organisation_id, "first_note_id": note.id,
                         "date_added": self.now, "scope": version_scope(note)}
            for start in range(0, len(new), ROWS_AT_ONCE):
                insert_rows(StixObject.__table__,
                            ("stix_id", "type", "modified", "body", "body_hash"),
                            [(o["id"], o["type"], o.get("modified") or o.get("created") or "",
                              stored, hash_body(o, stored))
                             for o in new[start:start + ROWS_AT_ONCE] for stored in (body(o),)],
                            processed=("body",), constants=constants)
        self.stored += len(new)
        self.existing.update(row.id for row in existing)
        self.needs.add(objects)  # its creators' identities, markings
        extract = observables.extract
        self.found.update(hit for obj in objects for hit in extract(obj))

    def finish(self) -> None:
        note, note_id = self.note, self.note.id
        links = cast(Table, NoteObject.__table__)  # a model's __table__ is typed FromClause
        if not self.existing:
            # Every version the note holds is one it stored just now: link them in the
            # database, in row order (as sorted() below would), without a round trip for
            # their ids.
            db.session.execute(links.insert().from_select(
                ["note_id", "object_id", "note_version"],
                select(literal(note_id), StixObject.id, literal(1))
                .where(StixObject.first_note_id == note_id).order_by(StixObject.id)))
        else:
            stored = db.session.scalars(select(StixObject.id).where(
                StixObject.first_note_id == note_id)).all()
            insert_rows(links, ("object_id",), [
                (object_id,) for object_id in sorted(set(stored) | self.existing)],
                constants={"note_id": note_id, "note_version": 1})
        served_with.link(note, self.needs, self.now)
        collect_objects(note)
        found = sorted(self.found)
        if found:
            # Each stored with the warning list it is on, if any: correlation and watch
            # alerts leave those out (alliance.notes.warninglists); an address or network
            # with its first and last address, for correlation by range
            # (alliance.notes.ranges).
            warning_of, bounds = warninglists.warning_of, ranges.bounds
            for start in range(0, len(found), ROWS_AT_ONCE):
                insert_rows(Observable.__table__,
                            ("kind", "value", "warning", "net_lo", "net_hi"),
                            [(kind, value, warning_of(kind, value), *bounds(kind, value))
                             for kind, value in found[start:start + ROWS_AT_ONCE]],
                            constants={"note_id": note_id})
        facets = facet_rows(note.id, types=note.types, sectors=note.sectors,
                            countries=note.countries, policy_tags=note.policy_tags)
        if facets:
            insert_rows(NoteFacet.__table__, ("facet", "value", "note_id"),
                        [(row["facet"], row["value"], row["note_id"]) for row in facets])
        refresh_statistics(BULK_TABLES, self.stored + len(self.existing))


def _identity(value):
    return value


def _processor(table, name: str):
    """What a column's values go through before they reach the driver directly: SQLite's
    bind processor, or on PostgreSQL the value COPY is given (the JSON text the engine's
    serializer writes, a UTCDateTime's naive UTC) — the same as an ORM insert stores."""
    dialect = db.session.connection().dialect
    column_type = table.c[name].type
    if dialect.name == "sqlite":
        # dialect_impl: the processor SQLite's own DateTime uses (a fixed text form that
        # sorts and compares like every other stored date), not the generic type's.
        return column_type.dialect_impl(dialect).bind_processor(dialect) or _identity
    if _copies(dialect):
        if isinstance(column_type, JSON):
            return getattr(dialect, "_json_serializer", None) or json.dumps
        if isinstance(column_type, TypeDecorator):
            return lambda value: column_type.process_bind_param(value, dialect)
        if isinstance(column_type, Boolean | Integer | String | Text):
            return _identity
        raise TypeError(f"no COPY form for {table.name}.{name}")  # a column added later
    return _identity


def _copies(dialect) -> bool:
    """Bulk rows go in with COPY (PostgreSQL through psycopg 3)."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def insert_rows(table, columns: tuple, rows: list[tuple], *, processed=(),
                 constants: dict | None = None) -> None:
    """Bulk insert of rows (tuples of values for `columns`) plus `constants` (one value for
    every row) into a table, in the session's transaction: on SQLite an executemany straight
    to the driver, on PostgreSQL a COPY; the values go through the columns' processors
    (_processor; those named in `processed` already did), each constant once. SQLAlchemy's
    per-row statement work would otherwise cost more than the insert itself."""
    if not rows:
        return
    constants = constants or {}
    conn = db.session.connection()
    names = tuple(columns) + tuple(constants)
    dialect = conn.dialect
    if dialect.name != "sqlite" and not _copies(dialect):
        conn.execute(table.insert(), [dict(zip(names, row + tuple(constants.values()),
                                               strict=True)) for row in rows])
        return
    fixed = tuple(_processor(table, name)(value) for name, value in constants.items())
    fns = [_identity if name in processed else _processor(table, name) for name in columns]
    if any(fn is not _identity for fn in fns):
        rows = [tuple(fn(v) for fn, v in zip(fns, row, strict=True)) for row in rows]
    if dialect.name == "sqlite":
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 (our names)
               f"VALUES ({', '.join('?' * len(names))})")
        conn.exec_driver_sql(sql, [row + fixed for row in rows] if fixed else rows)
        return
    import psycopg

    # The session's own connection and transaction: all or nothing still holds. (A
    # connection the session holds is checked out: it has its driver's connection.)
    assert conn.connection.driver_connection is not None
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row + fixed)
    except psycopg.errors.IntegrityError as exc:
        # The driver's own error, past SQLAlchemy: given as SQLAlchemy's, so a unique key
        # lost to a concurrent post is handled (a 409, or checked again) as on SQLite, not
        # a 500.
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
