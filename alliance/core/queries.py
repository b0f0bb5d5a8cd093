"""Running a keyset page as a walk of its index, on both engines."""
from sqlalchemy import text

from alliance.extensions import db

_WALK = (("enable_sort", "off"), ("enable_material", "off"),
         ("max_parallel_workers_per_gather", "0"))


def walk_index(stmt, *, scalars: bool = False) -> list:
    """The rows of a keyset page (a TAXII collection's, the feed's with a common filter) read
    as a walk of the index it is ordered by, checking each row on the way and stopping at the
    page's end: on PostgreSQL by turning off, for this statement only, sort and materialize
    steps and parallel workers; SQLite walks the index by itself.

    Why: the planner charges the read rule's and the filters' per-row lookups in full (~57
    cost units each; in fact a few microseconds), so it expects to walk far more rows than a
    page needs. It then prefers to gather every match and sort it (measured for a TAXII
    collection of 100,000 objects: ~150 ms a page and growing, against ~12 ms for the walk),
    or to walk in two parallel workers, whose start costs ~5 ms a page."""
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
