"""core.queries.one_of: `column IN values` with the values as one parameter, on the engine
of the pass (SQLite: json_each; PostgreSQL: = ANY(array))."""
import pytest
from sqlalchemy import Integer, select

from alliance.core.queries import one_of
from alliance.orgs.models import Organisation
from tests import factories

NAMES = ["Plain", "O'Brien & Sons", 'Quote "d"', "Ünïcödé Ørg", "Back\\slash", "percent %s",
         "comma, [bracket]", "日本語の組織", "emoji 🛡️", "  spaced  "]


@pytest.fixture
def orgs(db):
    made = [factories.make_org(name) for name in NAMES]
    db.session.commit()
    return {org.name: org.id for org in made}


def _names(clause) -> set[str]:
    from alliance.extensions import db

    return set(db.session.scalars(select(Organisation.name).where(clause)))


@pytest.mark.parametrize("wanted", [
    [], NAMES[:1], NAMES, NAMES[1::2], NAMES[:3] + NAMES[:3],  # duplicates
], ids=["none", "one", "all", "every other", "repeated"])
def test_strings_select_exactly_the_rows_asked_for(orgs, wanted):
    assert _names(one_of(Organisation.name, wanted)) == set(wanted)


def test_values_of_no_row_and_near_misses_select_nothing(orgs):
    misses = ["plain", "Plain ", "O'Brien", "%", "", "null", "[]", '"Plain"']
    assert _names(one_of(Organisation.name, misses)) == set()


def test_integers_select_by_id(orgs):
    ids = sorted(orgs.values())
    picked = ids[::3]
    assert _names(one_of(Organisation.id, picked, Integer)) == {
        name for name, org_id in orgs.items() if org_id in picked}
    assert _names(one_of(Organisation.id, [max(ids) + 1, -1, 0], Integer)) == set()


def test_thousands_of_values_are_one_parameter(orgs):
    """Past SQLite's bound-parameter limits and the 500-value chunks it replaces: 5,000
    values, two of them stored, select those two, and the statement has one parameter."""
    wanted = [f"absent {n}" for n in range(4998)] + [NAMES[3], NAMES[7]]
    clause = one_of(Organisation.name, wanted)
    assert _names(clause) == {NAMES[3], NAMES[7]}
    statement = select(Organisation.id).where(clause)
    from alliance.extensions import db

    compiled = statement.compile(dialect=db.session.get_bind().dialect)
    assert len(compiled.params) == 1
    assert list(compiled.params.values())[0] is not None
