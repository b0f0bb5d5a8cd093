"""Coordinators deciding: approve, reject, suspend, reinstate, remove; the mail the
organisation's admins get, and the audit event each decision leaves."""
import pytest

from alliance.alliances import services, transitions
from alliance.core.errors import Conflict, DomainError
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, events

REASON = "Shared a TLP:RED report outside the alliance."


@pytest.fixture
def applicant(alliance, candidate_admin):
    """The candidate organisation's admin, with a pending request to join."""
    transitions.request_to_join(candidate_admin, alliance, message="Please.", accept_charter=True)
    return candidate_admin


def _membership(user, alliance):
    db.session.expire_all()
    return services.membership_of(user.organisation_id, alliance)


def _decision_mails(address):
    return [m for m in factories.queued_mails()
            if m["to"] == address and m["template"] == "membership_decision"]


@pytest.mark.parametrize("action, start, end, reason, audited_as", [
    ("approve", "requested", "active", "", "membership.approved"),
    ("reject", "requested", "rejected", REASON, "membership.rejected"),
    ("suspend", "active", "suspended", REASON, "membership.suspended"),
    ("reinstate", "suspended", "active", "", "membership.reinstated"),
    ("remove", "active", "removed", REASON, "membership.removed"),
    ("remove", "suspended", "removed", REASON, "membership.removed"),
])
def test_each_decision_moves_the_membership_mails_the_admins_and_is_audited(
        action, start, end, reason, audited_as, coordinator, alliance, candidate_admin):
    org = candidate_admin.organisation
    second_admin = factories.make_user(org, "second@candidate.example", role="org_admin")
    analyst = factories.make_user(org, "analyst@candidate.example")
    m = factories.add_member(alliance, org, start)

    transitions.decide(coordinator, alliance, m, action, reason=reason)

    m = factories.fresh(m)
    assert m.state == end
    assert m.decision_reason == (reason or None)
    for admin in (candidate_admin, second_admin):
        (mail,) = _decision_mails(admin.email)
        assert mail["context"]["reason"] == reason
        assert mail["context"]["state"] == end
        assert mail["context"]["alliance_name"] == "Atlantic Alliance"
    assert not _decision_mails(analyst.email)  # only the organisation's admins are told
    (event,) = events(organisation_id=org.id)
    assert event.action == audited_as
    assert event.actor_id == coordinator.id
    assert event.alliance_id == alliance.id
    assert event.target_type == "organisation" and event.target_id == str(org.id)
    assert event.reason == (reason or None)
    assert event.details.get("previous_state") == start


@pytest.mark.parametrize("action, start", [
    ("reject", "requested"), ("suspend", "active"), ("remove", "active"),
    ("remove", "suspended")])
@pytest.mark.parametrize("reason", ["", "   "])
def test_rejecting_suspending_and_removing_need_a_reason(action, start, reason, coordinator,
                                                         alliance, candidate_admin):
    m = factories.add_member(alliance, candidate_admin.organisation, start)
    with pytest.raises(DomainError, match="reason") as refused:
        transitions.decide(coordinator, alliance, m, action, reason=reason)
    assert refused.value.field == "reason"
    db.session.rollback()
    assert factories.fresh(m).state == start
    assert count_events(organisation_id=candidate_admin.organisation_id) == 0
    assert not _decision_mails(candidate_admin.email)


def test_approving_a_request_makes_the_organisation_an_active_member(coordinator, alliance,
                                                                     applicant):
    m = services.get_membership(alliance, _membership(applicant, alliance).id)
    transitions.decide(coordinator, alliance, m, "approve")
    assert services.is_active_member(applicant.organisation_id, alliance)
    (welcome,) = _decision_mails(applicant.email)
    assert "Atlantic Alliance" in welcome["subject"]


@pytest.mark.parametrize("start", ["requested", "active", "invited", "rejected", "left",
                                   "removed"])
def test_reinstating_works_only_from_suspended(start, coordinator, alliance, candidate_admin):
    m = factories.add_member(alliance, candidate_admin.organisation, start)
    with pytest.raises(Conflict, match=start):
        transitions.decide(coordinator, alliance, m, "reinstate")
    db.session.rollback()
    assert factories.fresh(m).state == start


def test_a_suspended_member_is_reinstated_not_approved(coordinator, alliance, candidate_admin):
    m = factories.add_member(alliance, candidate_admin.organisation, "suspended")
    with pytest.raises(Conflict, match="suspended"):
        transitions.decide(coordinator, alliance, m, "approve")
    db.session.rollback()
    assert factories.fresh(m).state == "suspended"


def test_an_unknown_action_is_not_found(coordinator, alliance, applicant):
    from alliance.core.errors import NotFound

    m = _membership(applicant, alliance)
    with pytest.raises(NotFound):
        transitions.decide(coordinator, alliance, m, "promote")
    db.session.rollback()
    assert _membership(applicant, alliance).state == "requested"


def test_a_plain_member_cannot_decide(coordinator, alliance, member, applicant):
    from alliance.core.errors import NotAllowed

    m = _membership(applicant, alliance)
    with pytest.raises(NotAllowed):
        transitions.decide(member, alliance, m, "approve")
    db.session.rollback()
    assert _membership(applicant, alliance).state == "requested"


def test_a_membership_of_another_alliance_cannot_be_decided_through_this_one(
        coordinator, alliance, applicant):
    from alliance.core.errors import NotFound

    other = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    transitions.request_to_join(applicant, other, accept_charter=True)
    foreign = services.membership_of(applicant.organisation_id, other)
    with pytest.raises(NotFound):
        services.get_membership(alliance, foreign.id)
    with pytest.raises(NotFound):
        transitions.decide(coordinator, alliance, foreign, "approve")
    db.session.rollback()
    assert factories.fresh(foreign).state == "requested"


def test_a_suspended_organisation_is_not_an_active_member_until_reinstated(
        coordinator, alliance, member_admin):
    m = services.membership_of(member_admin.organisation_id, alliance)
    transitions.decide(coordinator, alliance, m, "suspend", reason=REASON)
    assert not services.is_active_member(member_admin.organisation_id, alliance)
    assert alliance not in services.active_alliances_of(member_admin.organisation_id)
    transitions.decide(coordinator, alliance, m, "reinstate")
    assert services.is_active_member(member_admin.organisation_id, alliance)
    actions = [e.action for e in events(organisation_id=member_admin.organisation_id)]
    assert actions == ["membership.suspended", "membership.reinstated"]
