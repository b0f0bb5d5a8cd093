"""The platform's vocabularies (alliance/core/states.py) are the database's: the CHECK
constraints are built from the enums, so the database refuses what the enum does not name and
takes every member; and "may act" and "active member" are one rule in Python and in SQL."""
import itertools

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alliance.alliances.models import Membership
from alliance.auth.models import User
from alliance.core.states import MembershipState, OrgStatus, Role
from alliance.extensions import db
from tests import factories


def _tried(row) -> bool:
    """Whether the database stores the row (its CHECK constraints allow it)."""
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def test_every_membership_state_is_stored_and_nothing_else():
    founder = factories.make_org("Founder CERT")
    admin = factories.make_user(founder, "a@founder.example", role="org_admin")
    alliance = factories.make_alliance(admin)
    stored = []
    for i, state in enumerate([*MembershipState, "bogus", "ACTIVE"]):
        org = factories.make_org(f"Member {i}")
        stored.append(_tried(Membership(alliance_id=alliance.id, organisation_id=org.id,
                                        state=state)))
    assert stored == [True] * len(MembershipState) + [False, False]


def test_every_role_and_status_is_stored_and_nothing_else():
    org = factories.make_org("Roles CERT")
    assert [_tried(User(email=f"{role}@roles.example", name="R", role=role,
                        organisation=org, password_hash="x"))
            for role in [*Role, "owner"]] == [True, True, False]
    assert [_tried(factories.Organisation(name=f"Org {status}", slug=f"org-{status}",
                                          country="DE", sectors=[], status=status,
                                          stix_id=f"identity--0000000{i}-0000-4000-8000-"
                                                  "000000000000", stix_identity={}))
            for i, status in enumerate([*OrgStatus, "vetted"])] == [True, True, True, False]


@pytest.mark.parametrize("active", [True, False])
def test_active_membership_is_one_rule_in_python_and_sql(active):
    founder = factories.make_org("Founder CERT")
    admin = factories.make_user(founder, "a@founder.example", role="org_admin")
    alliance = factories.make_alliance(admin)
    for state in MembershipState:
        factories.add_member(alliance, factories.make_org(f"Org {state}"), state)
    rows = db.session.scalars(select(Membership)).all()
    in_sql = set(db.session.scalars(select(Membership.id).where(
        Membership.is_active if active else ~Membership.is_active)))
    assert in_sql == {m.id for m in rows if m.is_active == active}
    assert {m.state for m in rows if m.is_active} == {"active"}


def test_may_act_is_one_rule_in_python_and_sql():
    """Every combination of deactivated, verified and the organisation's status: the SQL
    form picks exactly the users the Python form says may act."""
    orgs = {status: factories.make_org(f"Org {status}", status=status) for status in OrgStatus}
    for n, (status, verified, deactivated) in enumerate(
            itertools.product(OrgStatus, (True, False), (True, False))):
        user = factories.make_user(orgs[status], f"u{n}@act.example", verified=verified)
        if deactivated:
            user.deactivated_at = factories.utcnow()
    factories.make_admin("admin@act.example")  # no organisation: may not act as a member
    db.session.commit()
    users = db.session.scalars(select(User)).all()
    in_sql = set(db.session.scalars(select(User.id).where(User.can_act)))
    assert in_sql == {u.id for u in users if u.can_act}
    assert len(in_sql) == 1  # approved, verified, not deactivated
