"""The buttons work end to end over HTTP, and refusals come back as messages with nothing
changed."""
from alliance.alliances import services
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events


def _follow(client, path, data=None):
    return client.post(path, data=data or {}, follow_redirects=True)


def test_an_org_admin_asks_to_join_and_the_coordinator_approves(client, coordinator, alliance,
                                                                candidate_admin):
    factories.login(client, candidate_admin)
    response = _follow(client, "/alliances/atlantic/join",
                       {"accept_charter": "y", "message": "We run a CERT."})
    assert b"Your request to join Atlantic Alliance was sent" in response.data
    m = services.membership_of(candidate_admin.organisation_id, alliance)
    assert factories.fresh(m).state == "requested"
    factories.login(client, coordinator)
    response = _follow(client, f"/alliances/atlantic/memberships/{m.id}/approve")
    assert (b"The request from Candidate Org was approved: Candidate Org is now a member of "
            b"Atlantic Alliance.") in response.data
    assert factories.fresh(m).state == "active"


def test_joining_without_accepting_the_charter_is_refused_with_a_message(
        client, alliance, candidate_admin):
    factories.login(client, candidate_admin)
    response = _follow(client, "/alliances/atlantic/join", {"message": "Hi."})
    assert b"charter" in response.data
    assert services.membership_of(candidate_admin.organisation_id, alliance) is None


def test_an_invited_organisation_accepts_over_http(client, coordinator, alliance,
                                                   candidate_admin):
    factories.login(client, coordinator)
    response = _follow(client, "/alliances/atlantic/invite",
                       {"organisation_id": candidate_admin.organisation_id})
    assert b"Candidate Org was invited to join Atlantic Alliance" in response.data
    m = services.membership_of(candidate_admin.organisation_id, alliance)
    assert factories.fresh(m).state == "invited"
    factories.login(client, candidate_admin)
    response = _follow(client, "/alliances/atlantic/accept", {"accept_charter": "y"})
    assert b"Candidate Org is now a member of Atlantic Alliance" in response.data
    assert factories.fresh(m).state == "active"


def test_a_coordinator_cannot_invite_an_organisation_that_is_already_a_member(
        as_coordinator, alliance, member_admin):
    before = count_events()
    response = _follow(as_coordinator, "/alliances/atlantic/invite",
                       {"organisation_id": member_admin.organisation_id})
    assert response.status_code == 200
    assert services.membership_of(member_admin.organisation_id, alliance).state == "active"
    assert count_events() == before


def test_a_coordinator_appoints_a_member_over_http(as_coordinator, alliance, member):
    response = _follow(as_coordinator, "/alliances/atlantic/coordinators",
                       {"user_id": member.id})
    assert b"Analyst of Member Org is now a coordinator of Atlantic Alliance." in response.data
    db.session.expire_all()
    assert services.is_coordinator(member, alliance)


def test_an_outsider_cannot_be_appointed_over_http(as_coordinator, alliance, outsider):
    before = count_events()
    response = _follow(as_coordinator, "/alliances/atlantic/coordinators",
                       {"user_id": outsider.id})
    assert response.status_code == 200
    db.session.expire_all()
    assert outsider not in services.coordinators_of(alliance)
    assert count_events() == before


def test_removing_the_last_coordinator_over_http_is_refused(as_coordinator, coordinator,
                                                           alliance):
    response = _follow(as_coordinator, f"/alliances/atlantic/coordinators/{coordinator.id}"
                                       "/remove", {"confirm": "1"})
    assert b"at least one coordinator" in response.data
    db.session.expire_all()
    assert services.is_coordinator(coordinator, alliance)


def test_the_coordinators_organisation_cannot_leave_over_http(as_coordinator, coordinator,
                                                             alliance):
    response = _follow(as_coordinator, "/alliances/atlantic/leave", {"confirm": "1"})
    assert b"only coordinators" in response.data
    db.session.expire_all()
    assert services.is_active_member(coordinator.organisation_id, alliance)
    assert services.is_coordinator(coordinator, alliance)


def test_a_member_organisation_leaves_over_http(client, alliance, member_admin):
    factories.login(client, member_admin)
    response = _follow(client, "/alliances/atlantic/leave", {"confirm": "1"})
    assert b"Member Org left Atlantic Alliance." in response.data
    db.session.expire_all()
    assert services.membership_of(member_admin.organisation_id, alliance).state == "left"


def test_a_coordinator_changes_settings_over_http(as_coordinator, alliance):
    response = as_coordinator.post("/alliances/atlantic/settings", data={
        "name": "Atlantic Alliance", "charter": "Be kind.", "policy_tags": ["nis2", "gdpr"],
        "join_policy": "invite", "allowed_tlps": ["GREEN", "AMBER", "RED"],
        "default_tlp": "AMBER"})
    assert response.status_code == 302
    alliance = factories.fresh(alliance)
    assert alliance.join_policy == "invite" and alliance.policy_tags == ["gdpr", "nis2"]
    assert alliance.allowed_tlps == ["GREEN", "AMBER", "RED"]


def test_invalid_settings_over_http_show_the_error_and_change_nothing(as_coordinator,
                                                                     alliance):
    response = as_coordinator.post("/alliances/atlantic/settings", data={
        "name": "Atlantic Alliance", "join_policy": "open", "allowed_tlps": ["GREEN"],
        "default_tlp": "RED"})
    assert response.status_code == 422
    assert b"default TLP must be one of the allowed" in response.data
    alliance = factories.fresh(alliance)
    assert alliance.join_policy == "approval" and alliance.default_tlp == "AMBER"
