"""Who may do what over HTTP: plain members, coordinators of another alliance, mass-assigned
fields, methods and unknown actions. Each refusal is checked to have changed nothing."""
import pytest
from sqlalchemy import select

from alliance.alliances import services, transitions
from alliance.alliances.models import Coordinator, Membership
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import count_events, count_outbox


def _world():
    """Everything the refused requests could have touched."""
    db.session.expire_all()
    memberships = db.session.execute(
        select(Membership.id, Membership.state, Membership.decision_reason)
        .order_by(Membership.id)).all()
    coordinators = db.session.execute(
        select(Coordinator.alliance_id, Coordinator.user_id).order_by(Coordinator.id)).all()
    alliance = services.get_alliance("atlantic")
    settings = (alliance.name, alliance.join_policy, alliance.default_tlp, alliance.charter,
                alliance.allowed_tlps)
    return memberships, coordinators, settings, count_events(), count_outbox()


@pytest.fixture
def request_pending(alliance, candidate_admin):
    """The candidate organisation has asked to join 'atlantic'."""
    return transitions.request_to_join(candidate_admin, alliance, accept_charter=True)


# --- plain members -------------------------------------------------------------------------

@pytest.mark.parametrize("path, data", [
    ("/alliances/atlantic/memberships/{request}/approve", {}),
    ("/alliances/atlantic/memberships/{request}/reject", {"reason": "No."}),
    ("/alliances/atlantic/memberships/{member_org}/suspend", {"reason": "No."}),
    ("/alliances/atlantic/memberships/{member_org}/remove", {"reason": "No."}),
    ("/alliances/atlantic/settings", {"name": "Hijacked", "join_policy": "open",
                                      "allowed_tlps": ["CLEAR"], "default_tlp": "CLEAR"}),
    ("/alliances/atlantic/invite", {"organisation_id": "{outsider_org}"}),
    ("/alliances/atlantic/coordinators", {"user_id": "{member}"}),
    ("/alliances/atlantic/coordinators/{coordinator}/remove", {}),
])
@pytest.mark.parametrize("who", ["member", "member_admin"])
def test_a_member_who_is_not_a_coordinator_gets_403_and_nothing_changes(
        who, path, data, request, client, coordinator, member, member_admin, outsider,
        request_pending):
    ids = {"request": request_pending.id, "coordinator": coordinator.id, "member": member.id,
           "member_org": services.membership_of(member.organisation_id,
                                                request_pending.alliance).id,
           "outsider_org": outsider.organisation_id}
    factories.login(client, request.getfixturevalue(who))
    before = _world()
    response = client.post(path.format(**ids),
                           data={k: (v.format(**ids) if isinstance(v, str) else v)
                                 for k, v in data.items()})
    assert response.status_code == 403
    assert _world() == before


def test_a_plain_member_cannot_open_the_members_or_settings_pages(as_member, alliance):
    assert as_member.get("/alliances/atlantic/members").status_code == 403
    assert as_member.get("/alliances/atlantic/settings").status_code == 403


# --- a coordinator of one alliance acting on another's memberships ------------------------

@pytest.fixture
def pacific_request(db, candidate_admin):
    """A second alliance, 'pacific', founded by someone else, with a pending request."""
    org = factories.make_org("Pacific Org")
    founder = factories.make_user(org, "coord@pacific.example", role="org_admin")
    pacific = factories.make_alliance(founder, slug="pacific", name="Pacific Alliance")
    return transitions.request_to_join(candidate_admin, pacific, accept_charter=True)


@pytest.mark.parametrize("action", ["approve", "reject", "suspend", "reinstate", "remove"])
def test_a_coordinator_cannot_reach_another_alliances_membership_through_their_own(
        action, as_coordinator, alliance, pacific_request):
    before = _world()
    response = as_coordinator.post(
        f"/alliances/atlantic/memberships/{pacific_request.id}/{action}", data={"reason": "x"})
    assert response.status_code == 404
    assert _world() == before
    assert factories.fresh(pacific_request).state == "requested"


def test_a_coordinator_cannot_act_in_an_alliance_they_do_not_coordinate(
        as_coordinator, alliance, pacific_request, outsider):
    before = _world()
    for path, data in [
            (f"/alliances/pacific/memberships/{pacific_request.id}/approve", {}),
            (f"/alliances/pacific/memberships/{pacific_request.id}/reject", {"reason": "x"}),
            ("/alliances/pacific/settings", {"name": "Taken", "join_policy": "open",
                                             "allowed_tlps": ["CLEAR"], "default_tlp": "CLEAR"}),
            ("/alliances/pacific/invite", {"organisation_id": outsider.organisation_id})]:
        assert as_coordinator.post(path, data=data).status_code == 403, path
    assert _world() == before
    assert factories.fresh(pacific_request).state == "requested"
    pacific = services.get_alliance("pacific")
    assert pacific.name == "Pacific Alliance" and pacific.join_policy == "approval"
    assert services.membership_of(outsider.organisation_id, pacific) is None


def test_a_coordinator_approves_a_request_of_their_own_alliance_over_http(
        as_coordinator, request_pending):
    response = as_coordinator.post(
        f"/alliances/atlantic/memberships/{request_pending.id}/approve")
    assert response.status_code == 302
    assert factories.fresh(request_pending).state == "active"


def test_a_refused_decision_over_http_is_flashed_and_changes_nothing(as_coordinator,
                                                                    request_pending):
    before = _world()
    response = as_coordinator.post(
        f"/alliances/atlantic/memberships/{request_pending.id}/reject", data={"reason": ""},
        follow_redirects=True)
    assert b"Give a reason" in response.data
    assert _world() == before


# --- mass assignment -----------------------------------------------------------------------

def test_join_ignores_alliance_organisation_state_and_role_in_the_body(
        client, alliance, candidate_admin, outsider, pacific_request):
    pacific = pacific_request.alliance
    factories.login(client, outsider)
    response = client.post("/alliances/atlantic/join", data={
        "accept_charter": "y", "message": "Hello.",
        "alliance_id": pacific.id, "organisation_id": candidate_admin.organisation_id,
        "state": "active", "role": "coordinator"})
    assert response.status_code == 302
    db.session.expire_all()
    mine = services.membership_of(outsider.organisation_id, alliance)
    assert mine is not None and mine.state == "requested"
    assert services.membership_of(outsider.organisation_id, pacific) is None
    assert services.membership_of(candidate_admin.organisation_id, alliance) is None
    assert not services.is_coordinator(outsider, alliance)
    assert factories.fresh(outsider).role == "org_admin"


def test_settings_ignore_mass_assigned_fields(as_coordinator, coordinator, alliance, outsider):
    alliance_id = alliance.id
    response = as_coordinator.post("/alliances/atlantic/settings", data={
        "name": "Atlantic Alliance", "charter": "Be kind.", "join_policy": "open",
        "allowed_tlps": ["GREEN", "AMBER"], "default_tlp": "GREEN",
        "id": 999, "alliance_id": 999, "slug": "stolen", "created_by_id": outsider.id,
        "organisation_id": outsider.organisation_id, "state": "removed", "role": "member"})
    assert response.status_code == 302
    alliance = services.get_alliance("atlantic")
    assert alliance.id == alliance_id and alliance.created_by_id == coordinator.id
    assert alliance.join_policy == "open" and alliance.allowed_tlps == ["GREEN", "AMBER"]
    assert services.membership_of(outsider.organisation_id, alliance) is None
    assert services.membership_of(coordinator.organisation_id, alliance).state == "active"
    assert factories.fresh(coordinator).role == "org_admin"


# --- methods and unknown actions -----------------------------------------------------------

POST_ONLY_ENDPOINTS = {
    "alliances.join", "alliances.accept", "alliances.decline", "alliances.leave",
    "alliances.decide", "alliances.remind", "alliances.invite", "alliances.add_coordinator",
    "alliances.remove_coordinator",
}


def test_get_on_every_state_changing_route_is_405(app, as_coordinator, request_pending,
                                                  coordinator):
    values = {"slug": "atlantic", "membership_id": request_pending.id, "action": "approve",
              "user_id": coordinator.id}
    post_only = {r.endpoint: r for r in app.url_map.iter_rules()
                 if r.endpoint.startswith(("alliances.", "audit."))
                 and "POST" in r.methods and "GET" not in r.methods}
    assert set(post_only) == POST_ONLY_ENDPOINTS
    before = _world()
    for rule in post_only.values():
        path = rule.build({k: values[k] for k in rule.arguments})[1]
        assert as_coordinator.get(path).status_code == 405, path
    assert _world() == before


def test_an_unknown_decision_is_404_and_changes_nothing(as_coordinator, request_pending):
    before = _world()
    for action in ("promote", "delete", "APPROVE", "approve "):
        response = as_coordinator.post(
            f"/alliances/atlantic/memberships/{request_pending.id}/{action}")
        assert response.status_code == 404, action
    assert _world() == before


def test_a_membership_id_that_does_not_exist_is_404(as_coordinator, alliance):
    assert as_coordinator.post("/alliances/atlantic/memberships/424242/approve").status_code \
        == 404


def test_an_unknown_alliance_is_404(as_member):
    assert as_member.get("/alliances/nowhere").status_code == 404
    assert as_member.post("/alliances/nowhere/join", data={"accept_charter": "y"}) \
        .status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in_and_change_nothing(client, request_pending):
    before = _world()
    response = client.post(f"/alliances/atlantic/memberships/{request_pending.id}/approve")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]
    assert _world() == before
