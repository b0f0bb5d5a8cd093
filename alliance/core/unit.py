"""The unit of work: whatever one request, task or command asks for is stored whole or not at
all, and only the outermost boundary decides which.

A service wraps its writes in `unit_of_work()` (as a `with` block or a decorator) and never
commits itself. Called on its own (a view calling one service, a test, a task), its unit is
the outermost and commits when it ends. Called inside another unit (a view or a task storing
two services' rows in one transaction, the TAXII writer storing a note with its status), it
only flushes, and the outer unit commits everything once.

An error leaving any unit rolls the whole transaction back at once and goes on up: nothing is
half-stored, and a caller that catches the error and carries on starts a fresh transaction
(which is what SQLAlchemy demands after a failed flush in any case).

`after_commit(callback)` runs work that must see the unit's rows committed and must not hold
the unit's transaction open (refreshing the planner's statistics after a bulk write) once the
outermost unit has committed; a unit rolled back drops it."""
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from alliance.extensions import db

_DEPTH = "alliance.unit_depth"
_AFTER = "alliance.after_commit"


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Open a unit: commit at the end of the outermost one, flush at the end of an inner
    one, roll back the transaction when an error leaves any of them."""
    session = db.session()
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        yield session
        if depth:
            session.flush()
        else:
            session.commit()
    except BaseException:
        session.info.pop(_AFTER, None)
        session.rollback()
        raise
    finally:
        session.info[_DEPTH] = depth
    if not depth:
        for callback in session.info.pop(_AFTER, []):
            callback()


def in_unit() -> bool:
    """Whether a unit is open on this session (an inner unit only flushes)."""
    return bool(db.session().info.get(_DEPTH, 0))


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the outermost unit open now has committed; never when that unit
    rolls back. Only inside a unit: outside one, nothing says when the rows are stored."""
    session = db.session()
    if not session.info.get(_DEPTH, 0):
        raise RuntimeError("after_commit() is for work inside a unit of work")
    session.info.setdefault(_AFTER, []).append(callback)
