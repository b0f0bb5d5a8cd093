"""The unit of work (alliance.core.unit): the outermost unit commits, an inner one only
flushes, and an error leaving any unit rolls the whole transaction back. What is committed is
checked from a second connection, which sees only committed rows."""
import uuid

import pytest
from sqlalchemy import select, text

from alliance.core.errors import DomainError
from alliance.core.unit import after_commit, in_unit, unit_of_work
from alliance.orgs.models import Organisation
from tests import factories


def _org(name: str) -> Organisation:
    from alliance.core.models import utcnow
    from alliance.core.text import slugify
    from alliance.extensions import db
    from alliance.orgs.services import build_identity

    org = Organisation(name=name, slug=slugify(name), country="DE", sectors=["government"],
                       status="approved", stix_id=f"identity--{uuid.uuid4()}",
                       vetted_at=utcnow())
    org.stix_identity = build_identity(org)
    db.session.add(org)
    return org


def _committed_names(db) -> set[str]:
    """Organisation names as another connection sees them: committed rows only."""
    with db.engine.connect() as other:
        return set(other.execute(text("SELECT name FROM organisations")).scalars())


def test_the_outermost_unit_commits(db):
    with unit_of_work():
        _org("Outer Org")
        assert in_unit()
    assert not in_unit()
    assert _committed_names(db) == {"Outer Org"}


def test_an_inner_unit_flushes_and_the_outer_one_commits_both(db):
    with unit_of_work():
        _org("First Org")
        with unit_of_work():
            _org("Second Org")
        # Flushed: this session reads it; not committed: another connection does not.
        assert db.session.scalar(select(Organisation.id).where(
            Organisation.name == "Second Org")) is not None
        assert _committed_names(db) == set()
    assert _committed_names(db) == {"First Org", "Second Org"}


def test_an_error_in_an_inner_unit_rolls_back_the_outer_units_work_too(db):
    with pytest.raises(DomainError, match="refused"):
        with unit_of_work():
            _org("Earlier Org")
            with unit_of_work():
                _org("Inner Org")
                raise DomainError("refused")
    assert _committed_names(db) == set()
    assert db.session.scalars(select(Organisation.name)).all() == []
    assert not in_unit()  # the depth is restored for whatever comes next


def test_a_caller_that_catches_an_inner_error_goes_on_in_a_fresh_transaction(db):
    with unit_of_work():
        _org("Before Org")
        with pytest.raises(DomainError):
            with unit_of_work():
                raise DomainError("refused")
        _org("After Org")
    assert _committed_names(db) == {"After Org"}


def test_as_a_decorator_each_call_is_a_unit(db):
    @unit_of_work()
    def add(name, fail=False):
        _org(name)
        if fail:
            raise DomainError("refused")

    add("Decorated Org")
    with pytest.raises(DomainError):
        add("Refused Org", fail=True)
    assert _committed_names(db) == {"Decorated Org"}
    with unit_of_work():  # called inside a unit, it only flushes
        add("Nested Org")
        assert "Nested Org" not in _committed_names(db)
    assert _committed_names(db) == {"Decorated Org", "Nested Org"}


def test_services_store_nothing_when_called_in_a_unit_that_fails(db, coordinator, alliance):
    """A service's own commit became its unit: inside a caller's unit it waits for the
    caller, so the caller's failure takes the service's rows back too."""
    from alliance.alliances.services import update_settings

    with pytest.raises(RuntimeError):
        with unit_of_work():
            update_settings(coordinator, alliance, name="Renamed Alliance")
            raise RuntimeError("the caller's next step failed")
    with db.engine.connect() as other:
        names = set(other.execute(text("SELECT name FROM alliances")).scalars())
    assert "Renamed Alliance" not in names and alliance.name in names
    factories.make_org("Made Later")  # the session works on after the rollback
    assert "Made Later" in _committed_names(db)


def test_after_commit_runs_once_the_outermost_unit_has_committed(db):
    seen = []
    with unit_of_work():
        _org("Waiting Org")
        with unit_of_work():
            after_commit(lambda: seen.append(_committed_names(db)))
        assert seen == []  # the inner unit only flushed
    assert seen == [{"Waiting Org"}]  # it ran after the commit, and saw the committed row


def test_after_commit_is_dropped_when_the_unit_rolls_back(db):
    seen = []
    with pytest.raises(DomainError):
        with unit_of_work():
            after_commit(lambda: seen.append("ran"))
            raise DomainError("refused")
    with unit_of_work():
        _org("Next Org")
    assert seen == []  # neither at the rollback nor at the next unit's commit


def test_after_commit_outside_a_unit_is_refused(db):
    with pytest.raises(RuntimeError, match="inside a unit"):
        after_commit(lambda: None)
