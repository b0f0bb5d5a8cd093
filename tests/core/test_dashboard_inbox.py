"""The dashboard is an inbox: what waits for a coordinator across their alliances, for an
organisation's administrator and for the platform admin, with counts, one button to act on
each thing (a POST form with its CSRF token) and a flash that says what happened to what."""
import re
from datetime import timedelta

import pytest

from alliance import create_app
from alliance.alliances import services, transitions
from alliance.core.models import utcnow
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import element_text, events


def _count(html: bytes, element_id: str) -> int:
    return int(element_text(html, element_id))


@pytest.fixture
def two_alliances(coordinator, alliance):
    """The coordinator founded a second alliance; a third belongs to someone else."""
    arctic = factories.make_alliance(coordinator, slug="arctic", name="Arctic Alliance")
    other_org = factories.make_org("Elsewhere Org")
    other = factories.make_user(other_org, "coord@elsewhere.example", role="org_admin")
    pacific = factories.make_alliance(other, slug="pacific", name="Pacific Alliance")
    return alliance, arctic, pacific


def _asks(name, alliance, message="We watch the Baltic."):
    org = factories.make_org(name)
    admin = factories.make_user(org, f"admin@{org.slug}.example", role="org_admin")
    return transitions.request_to_join(admin, alliance, message=message, accept_charter=True)


# --- coordinators --------------------------------------------------------------------------

def test_a_coordinator_sees_the_requests_of_every_alliance_they_coordinate_with_a_count(
        as_coordinator, two_alliances):
    atlantic, arctic, pacific = two_alliances
    first = _asks("Nordic CERT", atlantic)
    second = _asks("Danube Hydro", arctic, message="We run dams.")
    _asks("Not Yours Org", pacific)  # a request the coordinator has no say on

    page = as_coordinator.get("/").data
    assert _count(page, "requests-count") == 2
    assert _count(page, "coordinator-count") == 2
    listed = element_text(page, "inbox-requests")
    assert "Nordic CERT asks to join Atlantic Alliance" in listed
    assert "Danube Hydro asks to join Arctic Alliance" in listed and "We run dams." in listed
    assert "Not Yours Org" not in page.decode()
    # One click: each request has its approve button, a POST form to the decision route.
    for m in (first, second):
        form = re.search(rf'<form method="post" action="([^"]+)"[^>]*id="inbox-approve-{m.id}"',
                         page.decode())
        assert form and form.group(1) == (
            f"/alliances/{m.alliance.slug}/memberships/{m.id}/approve")


def test_approving_from_the_inbox_comes_back_to_it_and_says_what_happened(
        as_coordinator, alliance):
    m = _asks("Nordic CERT", alliance)
    response = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/approve",
                                   data={"back": "dashboard"})
    assert response.status_code == 302 and response.headers["Location"] == "/"

    page = as_coordinator.get("/").data.decode()
    assert ("The request from Nordic CERT was approved: Nordic CERT is now a member of "
            "Atlantic Alliance.") in page
    assert _count(page.encode(), "requests-count") == 0
    assert factories.fresh(m).state == "active"


def test_rejecting_from_the_inbox_needs_a_reason_and_then_says_what_happened(
        as_coordinator, alliance):
    m = _asks("Nordic CERT", alliance)
    refused = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/reject",
                                  data={"back": "dashboard"}, follow_redirects=True)
    assert b"Nordic CERT: Give a reason" in refused.data
    assert factories.fresh(m).state == "requested"

    done = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/reject",
                               data={"back": "dashboard", "reason": "Not in the sector."},
                               follow_redirects=True)
    assert b"The request from Nordic CERT was rejected" in done.data
    assert factories.fresh(m).state == "rejected"


def test_back_takes_only_the_dashboard_never_an_address(as_coordinator, alliance):
    m = _asks("Nordic CERT", alliance)
    response = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/approve",
                                   data={"back": "https://evil.example/"})
    assert response.headers["Location"] == "/alliances/atlantic/members"


def test_invitations_awaiting_an_answer_are_listed_and_a_reminder_is_mailed_once_a_day(
        as_coordinator, coordinator, alliance, outsider):
    invited = transitions.invite_organisation(coordinator, alliance, outsider.organisation)
    page = as_coordinator.get("/").data
    assert _count(page, "invitations-count") == 1
    assert "Outside Org has not answered the invitation to Atlantic Alliance" in element_text(
        page, "inbox-invitations")
    mails = len(factories.queued_mails())

    reminded = as_coordinator.post(f"/alliances/atlantic/memberships/{invited.id}/remind",
                                   data={"back": "dashboard", "confirm": "1"},
                                   follow_redirects=True)
    assert (b"Outside Org was reminded of the invitation to join Atlantic Alliance"
            in reminded.data)
    [mail] = factories.queued_mails()[mails:]
    assert mail["to"] == outsider.email and mail["template"] == "membership_invited"
    assert mail["subject"] == "Reminder: Atlantic Alliance invites Outside Org"
    [event] = events(action="membership.reminded")
    assert event.actor_id == coordinator.id and event.target_label == "Outside Org"

    again = as_coordinator.post(f"/alliances/atlantic/memberships/{invited.id}/remind",
                                data={"back": "dashboard", "confirm": "1"},
                                follow_redirects=True)
    assert b"Outside Org: Outside Org was reminded less than a day ago" in again.data
    assert len(factories.queued_mails()) == mails + 1
    event.created_at = utcnow() - timedelta(days=1, minutes=1)
    db.session.commit()
    as_coordinator.post(f"/alliances/atlantic/memberships/{invited.id}/remind",
                        data={"confirm": "1"})
    assert len(factories.queued_mails()) == mails + 2


def test_only_an_open_invitation_can_be_reminded_and_only_by_its_coordinators(
        client, coordinator, alliance, member_admin, outsider):
    active = services.membership_of(member_admin.organisation_id, alliance)
    factories.login(client, coordinator)
    response = client.post(f"/alliances/atlantic/memberships/{active.id}/remind",
                           data={"confirm": "1"}, follow_redirects=True)
    assert b"Member Org is active, not invited" in response.data
    invited = transitions.invite_organisation(coordinator, alliance, outsider.organisation)
    factories.login(client, member_admin)
    assert client.post(f"/alliances/atlantic/memberships/{invited.id}/remind",
                       data={"confirm": "1"}).status_code == 403
    assert events(action="membership.reminded") == []


def test_suspended_members_wait_in_the_inbox_and_are_reinstated_with_one_click(
        as_coordinator, coordinator, alliance, member_admin):
    m = services.membership_of(member_admin.organisation_id, alliance)
    transitions.decide(coordinator, alliance, m, "suspend", "Leaked a TLP:RED note.")
    page = as_coordinator.get("/").data
    assert _count(page, "suspended-count") == 1 and _count(page, "coordinator-count") == 1
    assert "Leaked a TLP:RED note." in element_text(page, "inbox-suspended")

    response = as_coordinator.post(f"/alliances/atlantic/memberships/{m.id}/reinstate",
                                   data={"back": "dashboard"}, follow_redirects=True)
    assert b"Member Org was reinstated in Atlantic Alliance." in response.data
    assert element_text(response.data, "inbox-suspended") is None
    assert factories.fresh(m).state == "active"


def test_a_coordinator_with_nothing_waiting_is_told_what_to_do_next(as_coordinator, alliance):
    page = as_coordinator.get("/").data
    assert _count(page, "coordinator-count") == 0
    assert element_text(page, "no-requests") == "No request to join is waiting."
    assert "Invite organisations from the members page of Atlantic Alliance" in element_text(
        page, "no-invitations")
    assert b'href="/alliances/atlantic/members#invitations"' in page
    assert b'href="/audit"' in page


def test_a_member_who_coordinates_nothing_sees_no_coordinator_inbox(as_member, alliance):
    page = as_member.get("/").data
    assert element_text(page, "coordinator-inbox") is None
    assert element_text(page, "org-invitations") is None  # a plain member answers nothing


# --- organisation admins -------------------------------------------------------------------

def test_an_org_admin_sees_invitations_to_their_organisation_and_accepts_one(
        client, coordinator, alliance, outsider):
    m = transitions.invite_organisation(coordinator, alliance, outsider.organisation)
    factories.login(client, outsider)
    page = client.get("/").data
    assert _count(page, "org-invitations-count") == 1
    assert "Atlantic Alliance invites your organisation" in element_text(page, "org-invitations")
    assert f'id="org-accept-charter-{m.id}"'.encode() in page  # the charter is accepted too

    refused = client.post("/alliances/atlantic/accept", data={"back": "dashboard"},
                          follow_redirects=True)
    assert b"Accept the alliance" in refused.data and factories.fresh(m).state == "invited"
    response = client.post("/alliances/atlantic/accept",
                           data={"back": "dashboard", "accept_charter": "y"})
    assert response.headers["Location"] == "/"
    page = client.get("/").data
    assert (b"The invitation was accepted: Outside Org is now a member of Atlantic Alliance."
            in page)
    assert _count(page, "org-invitations-count") == 0
    assert factories.fresh(m).state == "active"


def test_an_org_admin_declines_an_invitation_and_the_coordinators_see_it(
        make_client, coordinator, alliance, outsider):
    m = transitions.invite_organisation(coordinator, alliance, outsider.organisation)
    org_admin, coordinating = make_client(), make_client()
    factories.login(org_admin, outsider)
    factories.login(coordinating, coordinator)

    response = org_admin.post("/alliances/atlantic/decline",
                              data={"back": "dashboard", "confirm": "1"}, follow_redirects=True)
    assert b"The invitation to join Atlantic Alliance was declined." in response.data
    assert factories.fresh(m).state == "rejected"
    assert element_text(response.data, "no-org-invitations").startswith(
        "No alliance has invited Outside Org.")
    assert _count(coordinating.get("/").data, "invitations-count") == 0
    log = coordinating.get("/alliances/atlantic/audit").data.decode()
    assert ("Admin of Outside Org declined the invitation to join Atlantic Alliance" in log)
    # Declining closes the invitation, not the door: the organisation may still ask.
    transitions.request_to_join(outsider, alliance, accept_charter=True)
    assert factories.fresh(m).state == "requested"


def test_declining_without_an_invitation_is_refused_and_changes_nothing(
        client, alliance, member_admin):
    factories.login(client, member_admin)
    response = client.post("/alliances/atlantic/decline", data={"confirm": "1"},
                           follow_redirects=True)
    assert b"membership is active" in response.data
    assert services.membership_of(member_admin.organisation_id, alliance).state == "active"
    assert events(action="membership.declined") == []


# --- the platform admin --------------------------------------------------------------------

def test_the_platform_admin_approves_an_organisation_from_the_inbox_with_one_click(
        as_admin, db):
    pending = factories.make_org("Harbour CERT", status="pending")
    factories.make_org("Quay Analytics", status="pending")
    page = as_admin.get("/").data
    assert _count(page, "pending-orgs-count") == 2
    assert f'id="vet-approve-{pending.id}"'.encode() in page

    response = as_admin.post(f"/admin/organisations/{pending.id}/vet",
                             data={"decision": "approve", "back": "dashboard"})
    assert response.headers["Location"] == "/"
    page = as_admin.get("/").data
    assert b"Harbour CERT is approved" in page
    assert _count(page, "pending-orgs-count") == 1
    assert factories.fresh(pending).status == "approved"


def test_with_no_organisation_waiting_the_admin_is_told_where_decisions_are(as_admin):
    page = as_admin.get("/").data
    assert _count(page, "pending-orgs-count") == 0
    assert "No organisation is waiting" in element_text(page, "admin-pending")


# --- the buttons carry their CSRF token ----------------------------------------------------

@pytest.fixture(scope="module")
def csrf_app(app):
    return create_app({"WTF_CSRF_ENABLED": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "MAIL_URL": app.config["MAIL_URL"], "BASE_URL": app.config["BASE_URL"]})


def test_every_inbox_button_posts_its_csrf_token_and_none_works_without(
        csrf_app, coordinator, alliance, outsider):
    m = _asks("Nordic CERT", alliance)
    client = csrf_app.test_client()
    factories.login(client, coordinator)
    page = client.get("/").data.decode()
    forms = re.findall(r'<form method="post"[^>]*id="inbox-[^"]+">(.*?)</form>', page, re.S)
    assert len(forms) == 2  # approve and reject
    assert all('name="csrf_token"' in form for form in forms)
    token = re.search(r'id="inbox-approve-\d+">\s*<input name="csrf_token" type="hidden" '
                      r'value="([^"]+)"', page).group(1)

    path = f"/alliances/atlantic/memberships/{m.id}/approve"
    assert client.post(path, data={"back": "dashboard"}).status_code == 400
    assert factories.fresh(m).state == "requested"
    response = client.post(path, data={"back": "dashboard", "csrf_token": token})
    assert response.status_code == 302 and factories.fresh(m).state == "active"
