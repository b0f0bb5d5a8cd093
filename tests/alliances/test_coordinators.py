"""Coordinators: the founder first, appointed among active member organisations' users, never
none left, and powerless while their organisation is not an active member."""
import pytest

from alliance.alliances import coordinators, services, transitions
from alliance.core.errors import Conflict, DomainError, NotAllowed, NotFound
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, events

REASON = "Repeated leaks."


def _coordinator_emails(alliance):
    db.session.expire_all()
    return sorted(u.email for u in services.coordinators_of(alliance))


def test_the_founder_is_the_first_coordinator(coordinator, alliance):
    assert _coordinator_emails(alliance) == ["coord@coord.example"]
    assert services.is_coordinator(coordinator, alliance)
    (appointed,) = events(action="coordinator.appointed")
    assert appointed.target_id == str(coordinator.id) and appointed.alliance_id == alliance.id


def test_a_coordinator_appoints_a_user_of_an_active_member_organisation(coordinator, alliance,
                                                                       member):
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    assert _coordinator_emails(alliance) == ["analyst@member.example", "coord@coord.example"]
    assert services.is_coordinator(member, alliance)
    event = events(action="coordinator.appointed")[-1]
    assert (event.actor_id, event.target_id) == (coordinator.id, str(member.id))
    assert event.organisation_id == member.organisation_id


def test_appointing_the_same_user_twice_is_a_conflict(coordinator, alliance, member):
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    with pytest.raises(Conflict):
        coordinators.appoint_coordinator(coordinator, alliance, member.id)


@pytest.mark.parametrize("state", ["requested", "invited", "suspended", "left", "removed"])
def test_users_of_organisations_that_are_not_active_members_cannot_be_appointed(
        state, coordinator, alliance, candidate_admin):
    factories.add_member(alliance, candidate_admin.organisation, state)
    with pytest.raises(NotFound):
        coordinators.appoint_coordinator(coordinator, alliance, candidate_admin.id)
    db.session.rollback()
    assert _coordinator_emails(alliance) == ["coord@coord.example"]


def test_an_outsider_cannot_be_appointed(coordinator, alliance, outsider):
    with pytest.raises(NotFound):
        coordinators.appoint_coordinator(coordinator, alliance, outsider.id)
    db.session.rollback()
    assert not services.is_coordinator(outsider, alliance)
    assert outsider not in coordinators.coordinator_candidates(alliance)


def test_a_deactivated_user_cannot_be_appointed(coordinator, alliance, member):
    from alliance.core.models import utcnow

    member.deactivated_at = utcnow()
    db.session.commit()
    with pytest.raises(NotFound):
        coordinators.appoint_coordinator(coordinator, alliance, member.id)


def test_only_a_coordinator_appoints_or_removes_coordinators(coordinator, alliance, member,
                                                             member_admin):
    with pytest.raises(NotAllowed):
        coordinators.appoint_coordinator(member_admin, alliance, member.id)
    with pytest.raises(NotAllowed):
        coordinators.remove_coordinator(member_admin, alliance, coordinator.id)
    db.session.rollback()
    assert _coordinator_emails(alliance) == ["coord@coord.example"]


def test_the_last_coordinator_cannot_be_removed(coordinator, alliance):
    with pytest.raises(Conflict, match="at least one coordinator"):
        coordinators.remove_coordinator(coordinator, alliance, coordinator.id)
    db.session.rollback()
    assert _coordinator_emails(alliance) == ["coord@coord.example"]


def test_a_coordinator_can_be_removed_while_another_remains(coordinator, alliance, member):
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    coordinators.remove_coordinator(member, alliance, coordinator.id)
    assert _coordinator_emails(alliance) == ["analyst@member.example"]
    removed = events(action="coordinator.removed")[-1]
    assert (removed.actor_id, removed.target_id) == (member.id, str(coordinator.id))


def test_a_coordinator_who_is_not_effective_does_not_count_as_the_one_remaining(
        coordinator, alliance, member, member_admin):
    """With the other coordinator's organisation suspended, removing the founder would leave
    nobody able to act."""
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    m = services.membership_of(member.organisation_id, alliance)
    transitions.decide(coordinator, alliance, m, "suspend", reason=REASON)
    with pytest.raises(Conflict):
        coordinators.remove_coordinator(coordinator, alliance, coordinator.id)
    db.session.rollback()
    assert services.is_coordinator(coordinator, alliance)


def test_the_organisation_holding_the_only_coordinators_cannot_leave(coordinator, alliance):
    m = services.membership_of(coordinator.organisation_id, alliance)
    events_before = count_events()
    with pytest.raises(Conflict, match="only coordinators"):
        transitions.leave(coordinator, alliance)
    assert m.state == "active"  # not even in the session the view will roll back
    db.session.rollback()
    assert factories.fresh(m).state == "active"
    assert _coordinator_emails(alliance) == ["coord@coord.example"]
    assert count_events() == events_before


@pytest.mark.parametrize("action", ["suspend", "remove"])
def test_the_organisation_holding_the_only_coordinators_cannot_be_suspended_or_removed(
        action, coordinator, alliance, member_admin):
    founder_org = services.membership_of(coordinator.organisation_id, alliance)
    with pytest.raises(Conflict, match="only coordinators"):
        transitions.decide(coordinator, alliance, founder_org, action, reason=REASON)
    assert founder_org.state == "active"  # not even in the session the view will roll back
    db.session.rollback()
    assert factories.fresh(founder_org).state == "active"
    assert _coordinator_emails(alliance) == ["coord@coord.example"]
    # With a coordinator in another member organisation, the same decision goes through.
    coordinators.appoint_coordinator(coordinator, alliance, member_admin.id)
    transitions.decide(member_admin, alliance, founder_org, action, reason=REASON)
    assert factories.fresh(founder_org).state == {"suspend": "suspended",
                                                  "remove": "removed"}[action]


def test_a_coordinator_organisation_can_leave_once_another_organisation_coordinates(
        coordinator, alliance, member_admin):
    coordinators.appoint_coordinator(coordinator, alliance, member_admin.id)
    transitions.leave(coordinator, alliance)
    assert _coordinator_emails(alliance) == ["admin@member.example"]
    assert not services.is_coordinator(coordinator, alliance)


def test_a_coordinator_whose_organisation_is_suspended_loses_coordinator_powers(
        coordinator, alliance, member_admin, candidate_admin):
    coordinators.appoint_coordinator(coordinator, alliance, member_admin.id)
    founder_org = services.membership_of(coordinator.organisation_id, alliance)
    transitions.decide(member_admin, alliance, founder_org, "suspend", reason=REASON)
    assert not services.is_coordinator(coordinator, alliance)
    transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    request = services.membership_of(candidate_admin.organisation_id, alliance)
    with pytest.raises(NotAllowed):
        transitions.decide(coordinator, alliance, request, "approve")
    with pytest.raises(NotAllowed):
        services.update_settings(coordinator, alliance, default_tlp="RED")
    db.session.rollback()
    assert factories.fresh(request).state == "requested"
    # ...and has them back once reinstated (the appointment itself was kept).
    transitions.decide(member_admin, alliance, founder_org, "reinstate")
    assert services.is_coordinator(coordinator, alliance)


def test_a_coordinator_whose_organisation_is_suspended_gets_403_over_http(
        client, coordinator, alliance, member_admin, candidate_admin):
    coordinators.appoint_coordinator(coordinator, alliance, member_admin.id)
    founder_org = services.membership_of(coordinator.organisation_id, alliance)
    transitions.decide(member_admin, alliance, founder_org, "suspend", reason=REASON)
    transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    request = services.membership_of(candidate_admin.organisation_id, alliance)
    factories.login(client, coordinator)
    response = client.post(f"/alliances/atlantic/memberships/{request.id}/approve")
    assert response.status_code == 403
    assert client.get("/alliances/atlantic/members").status_code == 403
    assert factories.fresh(request).state == "requested"


@pytest.mark.parametrize("how", ["removed", "left"])
def test_an_organisation_that_is_removed_or_leaves_loses_its_coordinators(
        how, coordinator, alliance, member_admin, member):
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    if how == "removed":
        m = services.membership_of(member.organisation_id, alliance)
        transitions.decide(coordinator, alliance, m, "remove", reason=REASON)
    else:
        transitions.leave(member_admin, alliance)
    assert _coordinator_emails(alliance) == ["coord@coord.example"]
    dropped = events(action="coordinator.removed")
    assert [e.target_id for e in dropped] == [str(member.id)]


def test_deactivating_the_last_coordinator_is_refused(coordinator, alliance):
    with pytest.raises(DomainError, match="last coordinator"):
        coordinators.check_user_can_leave_coordination(coordinator)
