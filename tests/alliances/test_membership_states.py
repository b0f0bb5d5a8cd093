"""The membership state machine, pair by pair, through the services that move memberships.

The allowed edges are written out here from DESIGN.md ("requested -> active, requested ->
rejected, invited -> active, active <-> suspended, active -> left, active/suspended -> removed")
plus the entry edges documented at the top of alliances/services.py: a membership starts or
starts again with (none | rejected | left) -> requested or (none | rejected | left | removed)
-> invited; and invited -> rejected, the organisation declining an invitation."""
import re

import pytest
from sqlalchemy import select

from alliance.alliances import services, transitions
from alliance.alliances.models import Membership
from alliance.core.errors import DomainError, NotFound
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, count_outbox

STATES = ("requested", "invited", "active", "rejected", "suspended", "left", "removed")
FROM_STATES = (None,) + STATES

ALLOWED = {
    # DESIGN.md
    ("requested", "active"), ("requested", "rejected"), ("invited", "active"),
    ("active", "suspended"), ("suspended", "active"), ("active", "left"),
    ("active", "removed"), ("suspended", "removed"),
    # entry edges (services.py)
    (None, "requested"), ("rejected", "requested"), ("left", "requested"),
    (None, "invited"), ("rejected", "invited"), ("left", "invited"), ("removed", "invited"),
    # declining an invitation (services.py)
    ("invited", "rejected"),
}

# Every way the services can move a membership into each state. An allowed pair uses the one
# route meant for it; a forbidden pair must be refused by every route.
ROUTES = {
    "requested": ["join"],
    "invited": ["invite"],
    "active": ["approve", "reinstate", "accept"],
    "rejected": ["reject", "decline"],
    "suspended": ["suspend"],
    "left": ["leave"],
    "removed": ["remove"],
}
ROUTE_FOR_ALLOWED = {("requested", "active"): "approve", ("invited", "active"): "accept",
                     ("suspended", "active"): "reinstate", ("invited", "rejected"): "decline"}
MISSING_ID = 987654


def _run(route, coordinator, alliance, org_admin, membership):
    """Perform one route as the person who would: the org admin for their own organisation,
    the coordinator for decisions (looking the membership up as the view does)."""
    if route == "join":
        return transitions.request_to_join(org_admin, alliance, message="We watch the Baltic.",
                                        accept_charter=True)
    if route == "invite":
        return transitions.invite_organisation(coordinator, alliance, org_admin.organisation)
    if route == "accept":
        return transitions.accept_invitation(org_admin, alliance, accept_charter=True)
    if route == "decline":
        return transitions.decline_invitation(org_admin, alliance)
    if route == "leave":
        return transitions.leave(org_admin, alliance)
    target = services.get_membership(alliance, membership.id if membership else MISSING_ID)
    return transitions.decide(coordinator, alliance, target, route, reason="Charter breach.")


def _snapshot(membership):
    if membership is None:
        return None
    return (membership.state, membership.decision_reason, membership.updated_at)


def _row(alliance, org):
    db.session.expire_all()
    return db.session.scalar(select(Membership).where(Membership.alliance_id == alliance.id,
                                                      Membership.organisation_id == org.id))


@pytest.mark.parametrize("to_state", STATES)
@pytest.mark.parametrize("from_state", FROM_STATES, ids=lambda s: s or "none")
def test_membership_moves_only_along_allowed_edges(from_state, to_state, coordinator, alliance,
                                                   candidate_admin):
    org = candidate_admin.organisation
    membership = factories.add_member(alliance, org, from_state) if from_state else None
    events_before, mails_before = count_events(), count_outbox()

    if (from_state, to_state) in ALLOWED:
        route = ROUTE_FOR_ALLOWED.get((from_state, to_state), ROUTES[to_state][0])
        _run(route, coordinator, alliance, candidate_admin, membership)
        row = _row(alliance, org)
        assert row is not None and row.state == to_state
        assert count_events(organisation_id=org.id, alliance_id=alliance.id) > 0
        assert count_events() > events_before
        return

    before = _snapshot(membership)
    for route in ROUTES[to_state]:
        with pytest.raises(DomainError) as refused:
            _run(route, coordinator, alliance, candidate_admin, membership)
        message = refused.value.message
        if from_state is None:
            # There is nothing to move: the organisation is told it has no membership (or the
            # coordinator that there is no such membership), and nothing is created.
            assert isinstance(refused.value, NotFound) or refused.value.status_code == 409
            assert re.search(r"\b(no|not)\b", message, re.I), message
        else:
            assert refused.value.status_code == 409, (route, message)
            assert from_state in message and to_state in message, (route, message)
            # The refusal touched nothing, not even in the session the view rolls back.
            assert _snapshot(membership) == before, route
        db.session.rollback()
        row = _row(alliance, org)
        assert _snapshot(row) == before, route
        membership = row
    assert count_events() == events_before
    assert count_outbox() == mails_before


def test_a_coordinator_cannot_approve_an_invitation_on_the_organisations_behalf(
        coordinator, alliance, candidate_admin):
    """invited -> active is the organisation accepting (and accepting the charter); a
    coordinator's approve must not skip that."""
    m = factories.add_member(alliance, candidate_admin.organisation, "invited")
    with pytest.raises(DomainError, match="invited"):
        transitions.decide(coordinator, alliance, m, "approve")
    db.session.rollback()
    assert factories.fresh(m).state == "invited"
    assert factories.fresh(m).charter_accepted_at is None


def test_a_removed_organisation_cannot_ask_to_come_back_but_can_be_invited(
        coordinator, alliance, candidate_admin):
    m = factories.add_member(alliance, candidate_admin.organisation, "removed")
    with pytest.raises(DomainError, match="removed"):
        transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    db.session.rollback()
    transitions.invite_organisation(coordinator, alliance, candidate_admin.organisation)
    transitions.accept_invitation(candidate_admin, alliance, accept_charter=True)
    assert factories.fresh(m).state == "active"


def test_the_database_refuses_a_state_outside_the_machine(alliance, candidate_admin):
    from sqlalchemy.exc import IntegrityError

    db.session.add(Membership(alliance_id=alliance.id,
                              organisation_id=candidate_admin.organisation_id, state="banned"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
