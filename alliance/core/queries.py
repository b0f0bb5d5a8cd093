"""Running a keyset page as a walk of its index, on both engines; keeping PostgreSQL's
statistics true after a bulk write; a list of values as one parameter."""
import logging

import orjson
from sqlalchemy import String, any_, bindparam, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from alliance.core.unit import after_commit
from alliance.extensions import db

log = logging.getLogger(__name__)

# A bulk write of at least this many rows, into a table whose statistics know of fewer than
# ten times as many, refreshes the statistics as soon as it is committed (refresh_statistics).
REFRESH_AFTER_ROWS = 1000

_WALK = (("enable_sort", "off"), ("enable_material", "off"), ("enable_seqscan", "off"),
         ("max_parallel_workers_per_gather", "0"))


def walk_index(stmt, *, scalars: bool = False) -> list:
    """The rows of a keyset page (a TAXII collection's, the feed's with a common filter) read
    as a walk of the index it is ordered by, checking each row on the way and stopping at the
    page's end: on PostgreSQL by turning off, for this statement only, sort and materialize
    steps, sequential scans and parallel workers; SQLite walks the index by itself.

    Why: the planner charges the read rule's and the filters' per-row lookups in full (~57
    cost units each; in fact a few microseconds), so it expects to walk far more rows than a
    page needs. It then prefers to gather every match and sort it (measured for a TAXII
    collection of 100,000 objects: ~150 ms a page and growing, against ~12 ms for the walk),
    or to walk in two parallel workers, whose start costs ~5 ms a page. Every check on the way
    is a lookup by an index: without statistics of a freshly written table (or with stale
    ones) the planner would rather scan it from its start, expecting an early hit, and read
    k rows for the k-th row of a page (tests/taxii/test_statistics.py, seen in CI)."""
    def run():
        result = db.session.execute(stmt)
        return (result.scalars() if scalars else result).all()

    if db.session.get_bind().dialect.name != "postgresql":
        return run()
    for name, value in _WALK:
        db.session.execute(text(f"SET LOCAL {name} = {value}"))
    try:
        return run()
    finally:
        for name, _value in _WALK:
            db.session.execute(text(f"RESET {name}"))


def one_of(column, values, type_=String):
    """`column IN values`, the values sent as one parameter whatever their number: on
    PostgreSQL `column = ANY(:array)`, on SQLite `column IN (SELECT value FROM
    json_each(:json))` (`type_`: the values' type, String or Integer).

    Why not `column.in_(values)`: it sends one bound parameter per value. A page that asks
    about a note's 1,000 objects then sends statements of 500 parameters in turn, and the
    driver's parsing of such a statement's text (psycopg) costs more than running it (~20 ms
    for 500 ids); SQLite also caps the parameters of a statement. Either way the database
    looks each value up in the column's index, as it does for IN."""
    values = list(values)
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        # Imported here: sqlalchemy.dialects.postgresql is heavy, and SQLite never needs it.
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == any_(bindparam(None, values, type_=ARRAY(type_)))
    if dialect == "sqlite":
        each = func.json_each(bindparam(None, orjson.dumps(values).decode(), type_=String))
        return column.in_(select(each.table_valued("value").c.value))
    return column.in_(values)


def refresh_statistics(tables: tuple[str, ...], rows: int) -> None:
    """After a bulk write of `rows` rows into `tables` (the first the largest), ANALYZE them
    once the unit commits, when the write is large beside what the statistics describe (a
    first import into a fresh or emptied database; autovacuum waits a minute or more). Why:
    with statistics of a near-empty table the planner takes a note's objects for a handful
    of rows and checks each TAXII page row against every object of the note instead of
    looking the row up: a page of 1,000 objects of one 5,000-object note took 16 s instead
    of 20 ms (seen on PostgreSQL, tests/taxii/test_paging.py). PostgreSQL only: SQLite's
    planner reads no statistics unless asked to and walks these pages by itself."""
    if rows < REFRESH_AFTER_ROWS or db.session.get_bind().dialect.name != "postgresql":
        return
    known = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = "
                                   "CAST(:name AS regclass)"), {"name": tables[0]})
    if known is not None and known >= 10 * rows:
        return
    after_commit(lambda: _analyze(tables))


def _analyze(tables: tuple[str, ...]) -> None:
    try:
        with db.engine.begin() as conn:
            conn.execute(text(f"ANALYZE {', '.join(tables)}"))
    except SQLAlchemyError:  # the rows are stored; autovacuum will analyze them later
        log.warning("ANALYZE %s after a bulk write failed", ", ".join(tables), exc_info=True)
