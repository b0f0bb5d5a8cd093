"""After each membership or coordinator action the flash says what happened to what: "The
request from Nordic CERT was rejected", not "Nordic CERT is now rejected"."""
import pytest

from alliance.alliances import coordinators, services, transitions
from tests import factories
from tests.alliances.helpers import element_text


def _flashes(response) -> str:
    return element_text(response.data, "main") or ""


@pytest.fixture
def nordic_request(alliance):
    org = factories.make_org("Nordic CERT")
    admin = factories.make_user(org, "ingrid@nordic.example", role="org_admin")
    return transitions.request_to_join(admin, alliance, accept_charter=True)


@pytest.mark.parametrize("action, data, said", [
    ("approve", {}, "The request from Nordic CERT was approved: Nordic CERT is now a member of "
                    "Atlantic Alliance."),
    ("reject", {"reason": "Not in the sector."},
     "The request from Nordic CERT was rejected; its administrators were mailed the reason."),
])
def test_deciding_a_request_says_whose_request_became_what(as_coordinator, nordic_request,
                                                           action, data, said):
    response = as_coordinator.post(
        f"/alliances/atlantic/memberships/{nordic_request.id}/{action}", data=data,
        follow_redirects=True)
    assert said in _flashes(response)
    assert response.request.path == "/alliances/atlantic/members"


def test_suspending_reinstating_and_removing_say_who_and_where(as_coordinator, alliance,
                                                               member_admin):
    m = services.membership_of(member_admin.organisation_id, alliance)
    path = f"/alliances/atlantic/memberships/{m.id}"
    said = [_flashes(as_coordinator.post(f"{path}/{action}", data=data, follow_redirects=True))
            for action, data in (("suspend", {"reason": "Leak."}), ("reinstate", {}),
                                 ("remove", {"reason": "Left the sector."}))]
    assert ("Member Org was suspended from Atlantic Alliance; its administrators were mailed "
            "the reason.") in said[0]
    assert "Member Org was reinstated in Atlantic Alliance." in said[1]
    assert ("Member Org was removed from Atlantic Alliance; its administrators were mailed "
            "the reason.") in said[2]


def test_a_refused_decision_names_the_organisation_and_says_why(as_coordinator, alliance,
                                                                member_admin):
    m = services.membership_of(member_admin.organisation_id, alliance)
    response = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/reinstate",
                                   follow_redirects=True)
    assert "Member Org: Cannot reinstate a membership that is active" in _flashes(response)


def test_removing_a_coordinator_says_who_is_no_longer_one(as_coordinator, coordinator,
                                                          alliance, member):
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    response = as_coordinator.post(f"/alliances/atlantic/coordinators/{member.id}/remove",
                                   data={"confirm": "1"}, follow_redirects=True)
    assert "Analyst is no longer a coordinator of Atlantic Alliance." in _flashes(response)


def test_saving_settings_says_which_settings_of_which_alliance_changed(as_coordinator,
                                                                      alliance):
    data = {"name": "Atlantic Alliance", "charter": "Be kind.", "policy_tags": ["nis2"],
            "join_policy": "open", "allowed_tlps": ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT",
                                                    "RED"],
            "default_tlp": "AMBER", "description": "Shares threat notes.",
            "digest_frequency": "daily", "digest_hour": "8"}
    changed = as_coordinator.post("/alliances/atlantic/settings", data=data,
                                  follow_redirects=True)
    assert ("The settings of Atlantic Alliance were saved: join policy changed."
            in _flashes(changed))
    same = as_coordinator.post("/alliances/atlantic/settings", data=data, follow_redirects=True)
    assert "Nothing changed in the settings of Atlantic Alliance." in _flashes(same)
