"""The directory, the alliance page (members shown to members only) and the members page."""
from alliance.alliances import services, transitions
from tests import factories
from tests.alliances.helpers import element_text


def test_the_directory_lists_every_alliance_with_its_active_member_count(
        as_outsider, coordinator, alliance, member_admin, candidate_admin):
    factories.add_member(alliance, candidate_admin.organisation, "requested")
    other_org = factories.make_org("Pacific Org")
    factories.make_alliance(factories.make_user(other_org, "coord@pacific.example",
                                                role="org_admin"),
                            slug="pacific", name="Pacific Alliance")
    response = as_outsider.get("/alliances/")
    assert response.status_code == 200
    atlantic = element_text(response.data, "alliance-atlantic")
    pacific = element_text(response.data, "alliance-pacific")
    assert atlantic.startswith("Atlantic Alliance") and atlantic.endswith(" 2")
    assert pacific.startswith("Pacific Alliance") and pacific.endswith(" 1")


def test_the_directory_is_for_signed_in_members(client, alliance):
    response = client.get("/alliances/")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]


def test_an_outsider_sees_the_charter_and_coordinators_but_not_the_members(
        as_outsider, coordinator, alliance, member_admin):
    response = as_outsider.get("/alliances/atlantic")
    assert response.status_code == 200
    assert "Be kind." in element_text(response.data, "charter")
    assert coordinator.name in element_text(response.data, "coordinators")
    assert element_text(response.data, "members-table") is None
    assert element_text(response.data, "members-hidden")
    assert b"Member Org" not in response.data


def test_a_plain_member_of_an_active_member_organisation_sees_the_members(
        as_member, alliance, member_admin):
    response = as_member.get("/alliances/atlantic")
    members = element_text(response.data, "members-table")
    assert "Member Org" in members and "Coordinating Org" in members


def test_a_suspended_organisation_no_longer_sees_the_members(client, coordinator, alliance,
                                                             member):
    m = services.membership_of(member.organisation_id, alliance)
    transitions.decide(coordinator, alliance, m, "suspend", reason="Leak.")
    factories.login(client, member)
    response = client.get("/alliances/atlantic")
    assert response.status_code == 200
    assert element_text(response.data, "members-table") is None
    assert "Leak." in element_text(response.data, "your-membership")


def test_the_members_page_is_for_coordinators_only(client, as_coordinator, coordinator,
                                                   alliance, candidate_admin, member, outsider):
    transitions.request_to_join(candidate_admin, alliance, message="We are a CERT.",
                             accept_charter=True)
    response = as_coordinator.get("/alliances/atlantic/members")
    assert response.status_code == 200
    assert "Candidate Org" in element_text(response.data, "requests")
    assert "We are a CERT." in element_text(response.data, "requests")
    for user in (member, outsider):
        factories.login(client, user)
        assert client.get("/alliances/atlantic/members").status_code == 403


def test_the_coordinator_sees_links_to_manage_the_alliance_and_members_do_not(
        as_coordinator, client, alliance, member):
    assert element_text(as_coordinator.get("/alliances/atlantic").data,
                        "coordinator-links") is not None
    factories.login(client, member)
    assert element_text(client.get("/alliances/atlantic").data, "coordinator-links") is None


def test_the_charter_and_description_are_shown_as_text_never_as_markup(as_member, coordinator,
                                                                       alliance):
    services.update_settings(coordinator, alliance, charter="<script>alert(1)</script>",
                             description='<img src=x onerror="alert(2)">')
    response = as_member.get("/alliances/atlantic")
    assert b"<script>alert(1)</script>" not in response.data
    assert b"<img src=x" not in response.data
    assert "<script>alert(1)</script>" in element_text(response.data, "charter")
