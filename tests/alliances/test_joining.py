"""Organisations joining (by each join policy), accepting invitations and leaving."""
import pytest

from alliance.alliances import services, transitions
from alliance.core.errors import Conflict, DomainError, NotAllowed
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_outbox, events


def _set_policy(alliance, policy):
    alliance.join_policy = policy
    db.session.commit()


def _mails_to(address, template=None):
    return [m for m in factories.queued_mails()
            if m["to"] == address and (template is None or m["template"] == template)]


def test_an_open_alliance_admits_at_once_and_tells_the_coordinators(coordinator, alliance,
                                                                   candidate_admin):
    _set_policy(alliance, "open")
    m = transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    assert factories.fresh(m).state == "active"
    assert services.is_active_member(candidate_admin.organisation_id, alliance)
    joined = _mails_to(coordinator.email, "member_joined")
    assert len(joined) == 1
    assert joined[0]["context"]["org_name"] == "Candidate Org"
    assert not _mails_to(coordinator.email, "membership_requested")


def test_an_approval_alliance_leaves_the_request_pending_and_asks_the_coordinators(
        coordinator, alliance, candidate_admin):
    m = transitions.request_to_join(candidate_admin, alliance, message="We run a CERT.",
                                 accept_charter=True)
    m = factories.fresh(m)
    assert m.state == "requested" and m.request_message == "We run a CERT."
    assert not services.is_active_member(candidate_admin.organisation_id, alliance)
    asked = _mails_to(coordinator.email, "membership_requested")
    assert len(asked) == 1 and asked[0]["context"]["message"] == "We run a CERT."
    assert not _mails_to(coordinator.email, "member_joined")


def test_an_invite_only_alliance_refuses_requests(coordinator, alliance, candidate_admin):
    _set_policy(alliance, "invite")
    with pytest.raises(Conflict, match="invitation"):
        transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    db.session.rollback()
    assert services.membership_of(candidate_admin.organisation_id, alliance) is None
    assert count_outbox() == 0


@pytest.mark.parametrize("policy", ["open", "approval"])
def test_joining_needs_the_charter_accepted(policy, coordinator, alliance, candidate_admin):
    _set_policy(alliance, policy)
    with pytest.raises(DomainError, match="charter") as refused:
        transitions.request_to_join(candidate_admin, alliance, accept_charter=False)
    assert refused.value.field == "accept_charter"
    db.session.rollback()
    assert services.membership_of(candidate_admin.organisation_id, alliance) is None


def test_joining_records_when_the_charter_was_accepted(coordinator, alliance, candidate_admin):
    m = transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    assert factories.fresh(m).charter_accepted_at is not None


def test_accepting_an_invitation_needs_the_charter_and_then_makes_the_org_active(
        coordinator, alliance, candidate_admin):
    transitions.invite_organisation(coordinator, alliance, candidate_admin.organisation)
    invited = _mails_to(candidate_admin.email, "membership_invited")
    assert len(invited) == 1 and invited[0]["context"]["alliance_name"] == "Atlantic Alliance"
    with pytest.raises(DomainError, match="charter"):
        transitions.accept_invitation(candidate_admin, alliance, accept_charter=False)
    db.session.rollback()
    assert services.membership_of(candidate_admin.organisation_id, alliance).state == "invited"
    m = transitions.accept_invitation(candidate_admin, alliance, accept_charter=True)
    m = factories.fresh(m)
    assert m.state == "active" and m.charter_accepted_at is not None
    assert _mails_to(coordinator.email, "member_joined")
    assert [e.action for e in events(organisation_id=m.organisation_id)] == [
        "membership.invited", "membership.accepted"]


def test_only_org_admins_ask_to_join_or_leave(coordinator, alliance, member):
    with pytest.raises(NotAllowed):
        transitions.leave(member, alliance)
    stranger = factories.make_user(factories.make_org("Quiet Org"), "analyst@quiet.example")
    with pytest.raises(NotAllowed):
        transitions.request_to_join(stranger, alliance, accept_charter=True)
    db.session.rollback()
    assert services.membership_of(stranger.organisation_id, alliance) is None
    assert services.is_active_member(member.organisation_id, alliance)


def test_an_organisation_that_is_not_vetted_cannot_ask_to_join(coordinator, alliance):
    pending = factories.make_org("Pending Org", status="pending")
    admin = factories.make_user(pending, "admin@pending.example", role="org_admin")
    with pytest.raises(NotAllowed):
        transitions.request_to_join(admin, alliance, accept_charter=True)
    db.session.rollback()
    assert services.membership_of(pending.id, alliance) is None


def test_a_coordinator_cannot_invite_an_organisation_that_is_not_vetted(coordinator, alliance):
    pending = factories.make_org("Pending Org", status="pending")
    with pytest.raises(Conflict, match="vetted"):
        transitions.invite_organisation(coordinator, alliance, pending)
    db.session.rollback()
    assert services.membership_of(pending.id, alliance) is None


def test_leaving_is_audited_and_ends_membership(coordinator, alliance, member_admin):
    transitions.leave(member_admin, alliance)
    assert not services.is_active_member(member_admin.organisation_id, alliance)
    (left,) = events(action="membership.left")
    assert left.actor_id == member_admin.id
    assert left.organisation_id == member_admin.organisation_id
    assert left.alliance_id == alliance.id


def test_an_organisation_that_left_may_ask_again(coordinator, alliance, member_admin):
    transitions.leave(member_admin, alliance)
    m = transitions.request_to_join(member_admin, alliance, message="Back again.",
                                 accept_charter=True)
    assert factories.fresh(m).state == "requested"
