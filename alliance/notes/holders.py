"""The notes holding an observable value, as correlation reads them (issue 22): for each
value, the newest CORRELATION_HOLDERS notes holding it — the highest note ids (ids follow
posting order) — walked from the top of the (value, note_id) index ix_observables_value_note
and stopped there. A value ten thousand or a million notes share then costs what one a
thousand share does: correlation (reading.correlated) and the note page's observables table
(summary) read the newest holders, and the table says "at least" for a value with more.

These are candidates, readable or not: every caller filters them through the read rule
(sharing.policy.readable_notes), so nothing here is shown as it is."""
from functools import cache

from sqlalchemy import Integer, String, bindparam, func, select, true, union_all

from alliance.extensions import db
from alliance.notes.models import Observable

# The holders read per value, newest first. Tests lower it (monkeypatch): read it at call time.
CORRELATION_HOLDERS = 1000
# Values per statement. SQLite: one subquery each in a UNION ALL, under its limit of 500.
# PostgreSQL: one array parameter, so a note's thousand values are one statement.
CHUNK = 100
CHUNK_POSTGRESQL = 1000


def chunks(values: list[str], size: int | None = None):
    """`values` in chunks of `size` (by default, what one statement of `newest` takes on
    this session's database)."""
    if size is None:
        size = CHUNK_POSTGRESQL if db.session.get_bind().dialect.name == "postgresql" else CHUNK
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _held(value):
    """The newest holders of one value (a column or a parameter), but the note looked at."""
    return (select(Observable.note_id)
            .where(Observable.value == value,
                   Observable.note_id != bindparam("holders_other", type_=Integer))
            .order_by(Observable.note_id.desc())
            .limit(bindparam("holders_limit", type_=Integer)))


@cache
def _template(dialect: str, size: int):
    """The subquery `newest` returns, for `size` values, with its values, the note left out
    and the limit as parameters: built (and compiled) once per process, not per page; the
    statement of one value each in a UNION ALL costs more to build than to run."""
    if dialect == "postgresql":
        # Imported here: sqlalchemy.dialects.postgresql is heavy, and SQLite never needs it.
        from sqlalchemy.dialects.postgresql import ARRAY

        given = func.unnest(bindparam("holders_values", type_=ARRAY(String))).table_valued(
            "value").render_derived("given", with_types=False)
        held = _held(given.c.value).lateral("held")
        return (select(given.c.value, held.c.note_id)
                .select_from(given.join(held, true())).subquery("holders"))
    parts = []
    for i in range(size):
        value = bindparam(f"holders_v{i}", type_=String)
        held = _held(value).subquery()
        parts.append(select(value.label("value"), held.c.note_id))
    return union_all(*parts).subquery("holders")


def newest(values: list[str], other_than: int) -> tuple:
    """(subquery (value, note_id), its parameters): for each of `values` (a chunk: at most
    CHUNK, or CHUNK_POSTGRESQL), the newest CORRELATION_HOLDERS notes holding it, note
    `other_than` (the note being looked at) left out. PostgreSQL: a LATERAL subquery per
    value of an array; SQLite: a UNION ALL of one subquery per value. Either way an index
    walk of at most CORRELATION_HOLDERS entries per value. Execute a statement using the
    subquery with the parameters (db.session.execute(stmt, params))."""
    dialect = db.session.get_bind().dialect.name
    params = {"holders_other": other_than, "holders_limit": CORRELATION_HOLDERS}
    if dialect == "postgresql":
        return _template(dialect, 0), params | {"holders_values": list(values)}
    return _template(dialect, len(values)), params | {
        f"holders_v{i}": value for i, value in enumerate(values)}


def crowded(values: list[str], other_than: int) -> set[str]:
    """Those of `values` with CORRELATION_HOLDERS holders or more besides note `other_than`:
    what correlation says of them is about the newest of their holders only ("at least")."""
    found: set[str] = set()
    for chunk in chunks(values):
        held, params = newest(chunk, other_than)
        found.update(db.session.scalars(
            select(held.c.value).group_by(held.c.value)
            .having(func.count() >= CORRELATION_HOLDERS), params))
    return found
