"""The audit log reads as sentences, filters by alliance, actor, action and date, downloads as
CSV under the same read rule as its page, and names the right kind of target."""
import csv
import io
import re
from datetime import timedelta

import pytest
from flask_login import current_user, login_user

from alliance.alliances import coordinators, services, transitions
from alliance.audit.log import EventFilter, describe_event, events_csv, list_events
from alliance.audit.models import AuditEvent
from alliance.audit.services import record
from alliance.core.models import utcnow
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import element_text, events


def _rows(html) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="event-(\d+)"', _text(html))]


def _text(body) -> str:
    return body.decode() if isinstance(body, bytes) else body


def _csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _sentence(event_id: int) -> str:
    return describe_event(db.session.get(AuditEvent, event_id))


@pytest.fixture
def story(coordinator, alliance, member_admin, candidate_admin):
    """A request approved, a member suspended with a reason, an invitation declined."""
    requested = transitions.request_to_join(candidate_admin, alliance, message="We run a CERT.",
                                         accept_charter=True)
    transitions.decide(coordinator, alliance, requested, "approve")
    member = services.membership_of(member_admin.organisation_id, alliance)
    transitions.decide(coordinator, alliance, member, "suspend", "Shared a TLP:RED note.")
    outside = factories.make_org("Outside Org")
    outside_admin = factories.make_user(outside, "admin@outside.example", role="org_admin")
    transitions.invite_organisation(coordinator, alliance, outside)
    transitions.decline_invitation(outside_admin, alliance)
    return alliance


@pytest.fixture
def candidate_admin(alliance):
    org = factories.make_org("Candidate Org")
    return factories.make_user(org, "admin@candidate.example", role="org_admin",
                               name="Cand Admin")


@pytest.fixture
def pacific(db):
    """Another alliance, coordinated by someone else, with its own decision."""
    org = factories.make_org("Pacific Org")
    founder = factories.make_user(org, "coord@pacific.example", role="org_admin",
                                  name="Pacific Founder")
    pacific = factories.make_alliance(founder, slug="pacific", name="Pacific Alliance")
    asking = factories.make_org("Pacific Candidate")
    admin = factories.make_user(asking, "admin@pcandidate.example", role="org_admin")
    m = transitions.request_to_join(admin, pacific, accept_charter=True)
    transitions.decide(founder, pacific, m, "reject", reason="Pacific-only reason.")
    return pacific


# --- sentences -----------------------------------------------------------------------------

def test_each_membership_event_reads_as_a_sentence_of_who_did_what_to_whom_where_and_why(
        coordinator, story):
    said = [describe_event(e) for e in list_events(alliance=story)][::-1]
    assert said == [
        "Coord of Coordinating Org created Atlantic Alliance",
        "Coord of Coordinating Org became coordinator of Atlantic Alliance",
        "Cand Admin of Candidate Org asked to join Atlantic Alliance: We run a CERT.",
        "Coord of Coordinating Org approved the request from Candidate Org to join Atlantic "
        "Alliance",
        "Coord of Coordinating Org suspended Member Org from Atlantic Alliance: Shared a "
        "TLP:RED note.",
        "Coord of Coordinating Org invited Outside Org to join Atlantic Alliance",
        "Admin of Outside Org declined the invitation to join Atlantic Alliance",
    ]


def test_the_remaining_membership_and_coordinator_events_read_as_sentences(
        coordinator, alliance, member_admin, member):
    m = services.membership_of(member_admin.organisation_id, alliance)
    coordinators.appoint_coordinator(coordinator, alliance, member.id)
    coordinators.remove_coordinator(coordinator, alliance, member.id)
    transitions.decide(coordinator, alliance, m, "suspend", "Review.")
    transitions.decide(coordinator, alliance, m, "reinstate")
    transitions.decide(coordinator, alliance, m, "remove", "Left the sector.")
    services.update_settings(coordinator, alliance, join_policy="open", default_tlp="GREEN")
    said = [describe_event(e) for e in list_events(alliance=alliance)][:6][::-1]
    assert said == [
        "Coord of Coordinating Org appointed Analyst coordinator of Atlantic Alliance",
        "Coord of Coordinating Org removed Analyst as coordinator of Atlantic Alliance",
        "Coord of Coordinating Org suspended Member Org from Atlantic Alliance: Review.",
        "Coord of Coordinating Org reinstated Member Org in Atlantic Alliance",
        "Coord of Coordinating Org removed Member Org from Atlantic Alliance: Left the sector.",
        "Coord of Coordinating Org changed the settings of Atlantic Alliance (default tlp, "
        "join policy)",
    ]


def test_leaving_and_joining_an_open_alliance_read_as_the_organisation_acting(
        coordinator, alliance, member_admin, candidate_admin):
    transitions.leave(member_admin, alliance)
    services.update_settings(coordinator, alliance, join_policy="open")
    transitions.request_to_join(candidate_admin, alliance, accept_charter=True)
    said = [describe_event(e) for e in list_events(alliance=alliance)]
    assert "Admin of Member Org left Atlantic Alliance" in said
    assert ("Cand Admin of Candidate Org joined Atlantic Alliance: open alliance: admitted on "
            "request") in said


def test_the_page_shows_each_event_as_its_sentence(as_coordinator, story):
    page = as_coordinator.get("/alliances/atlantic/audit").data
    newest = _rows(page)[0]
    assert element_text(page, f"event-{newest}").endswith(
        "Admin of Outside Org declined the invitation to join Atlantic Alliance")
    assert ("Coord of Coordinating Org suspended Member Org from Atlantic Alliance: Shared a "
            "TLP:RED note.") in _text(page)


# --- the right target type -----------------------------------------------------------------

def test_founding_an_alliance_over_http_records_the_founder_as_a_user_not_a_proxy(
        client, coordinator):
    """The view passes Flask-Login's current_user, a LocalProxy: recorded as it is, the
    target's type was "localproxy"."""
    factories.login(client, coordinator)
    response = client.post("/alliances/new", data={
        "name": "Baltic Alliance", "slug": "baltic", "join_policy": "approval",
        "allowed_tlps": ["GREEN", "AMBER"], "default_tlp": "AMBER"})
    assert response.status_code == 302
    baltic = services.get_alliance("baltic")
    [appointed] = events(action="coordinator.appointed", alliance_id=baltic.id)
    assert (appointed.target_type, appointed.target_id, appointed.target_label) == (
        "user", str(coordinator.id), coordinator.name)
    assert appointed.actor_id == coordinator.id
    [created] = events(action="alliance.created", alliance_id=baltic.id)
    assert (created.target_type, created.target_id) == ("alliance", str(baltic.id))
    assert describe_event(appointed) == ("Coord of Coordinating Org became coordinator of "
                                         "Baltic Alliance")


def test_record_unwraps_a_proxy_given_as_actor_or_target(app, coordinator):
    with app.test_request_context():
        login_user(coordinator)
        event = record("user.role_changed", current_user, current_user, old="member",
                       new="org_admin")
    db.session.commit()
    event = factories.fresh(event)
    assert event.target_type == "user" and event.target_id == str(coordinator.id)
    assert event.actor_id == coordinator.id


# --- filters -------------------------------------------------------------------------------

def test_the_log_filters_by_action_and_keeps_the_filter_in_the_form(as_coordinator, story):
    page = as_coordinator.get("/alliances/atlantic/audit?action=membership.suspended").data
    shown = _rows(page)
    suspended = EventFilter(action="membership.suspended")
    assert [e.id for e in list_events(alliance=story, filters=suspended)] == shown
    assert len(shown) == 1
    assert '<option selected value="membership.suspended">' in _text(page)
    assert b'id="audit-filter-clear"' in page


def test_the_log_filters_by_actor(as_coordinator, story, candidate_admin):
    page = as_coordinator.get(f"/alliances/atlantic/audit?actor={candidate_admin.id}").data
    shown = _rows(page)
    assert len(shown) == 1 and "Cand Admin of Candidate Org asked to join" in _sentence(shown[0])
    # The actor filter offers the people of this log, and no one else.
    options = re.findall(r'<option (?:selected )?value="(\d+)">([^<]+)</option>', _text(page))
    assert ("Cand Admin (Candidate Org)" in dict(options).values()
            and not any("Pacific" in label for _, label in options))


def test_the_log_filters_by_date_range_both_ends_included(as_coordinator, coordinator,
                                                          story):
    old = list_events(alliance=story)[-1]  # alliance.created
    old.created_at = utcnow() - timedelta(days=10)
    db.session.commit()
    day = (utcnow() - timedelta(days=10)).date()

    on_the_day = _rows(as_coordinator.get(
        f"/alliances/atlantic/audit?since={day}&until={day}").data)
    assert on_the_day == [old.id]
    since_then = _rows(as_coordinator.get(
        f"/alliances/atlantic/audit?since={day + timedelta(days=1)}").data)
    assert old.id not in since_then and len(since_then) == len(list_events(alliance=story)) - 1


@pytest.mark.parametrize("query, message", [
    ("since=2026-05-02&until=2026-05-01", "The end of the range comes before its start."),
    ("since=yesterday", "Not a valid date value."),
    ("action=membership.exploded", "Not a valid choice."),
    ("actor=999999", "Not a valid choice."),
])
def test_a_bad_filter_is_a_message_beside_it_with_the_filters_kept_not_a_400(
        as_coordinator, story, query, message):
    response = as_coordinator.get(f"/alliances/atlantic/audit?{query}")
    assert response.status_code == 200
    page = _text(response.data)
    assert message in page and "Check the filters" in page
    assert _rows(page) == [] and 'id="audit-csv"' not in page
    # The CSV of a bad filter is the page that says what is wrong, not a file.
    csv_response = as_coordinator.get(f"/alliances/atlantic/audit.csv?{query}")
    assert csv_response.status_code == 302
    assert csv_response.headers["Location"].startswith("/alliances/atlantic/audit?")


def test_a_coordinator_reads_every_alliance_they_coordinate_in_one_log_and_filters_by_one(
        make_client, coordinator, story, pacific):
    client = make_client()
    factories.login(client, coordinator)
    arctic = factories.make_alliance(coordinator, slug="arctic", name="Arctic Alliance")
    page = client.get("/audit").data
    shown = set(_rows(page))
    assert {e.id for e in list_events(alliance=story)} <= shown
    assert {e.id for e in list_events(alliance=arctic)} <= shown
    assert not shown & {e.id for e in list_events(alliance=pacific)}
    assert b"Pacific" not in page  # neither its events nor a choice in the filter

    arctic_only = _rows(client.get("/audit?alliance=arctic").data)
    assert arctic_only == [e.id for e in list_events(alliance=arctic)]
    refused = client.get("/audit?alliance=pacific")
    assert _rows(refused.data) == [] and b"Not a valid choice." in refused.data


def test_the_cross_alliance_log_is_for_coordinators_only(as_member, alliance):
    assert as_member.get("/audit").status_code == 403
    assert as_member.get("/audit.csv").status_code == 403


def test_the_pager_keeps_the_filters(as_coordinator, coordinator, alliance, monkeypatch):
    from alliance.audit import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for n in range(3):
        services.update_settings(coordinator, alliance, digest_hour=n + 1)
    page = _text(as_coordinator.get(
        "/alliances/atlantic/audit?action=alliance.settings_changed").data)
    older = re.search(r'href="([^"]+)" id="older"', page).group(1).replace("&amp;", "&")
    assert "action=alliance.settings_changed" in older and "before=" in older
    rest = _rows(as_coordinator.get(older).data)
    assert len(rest) == 1 and rest[0] < min(_rows(page))


# --- CSV -----------------------------------------------------------------------------------

def test_the_csv_holds_the_pages_events_as_sentences_with_the_same_filters(as_coordinator,
                                                                          story):
    page = as_coordinator.get("/alliances/atlantic/audit?action=membership.suspended").data
    assert b'href="/alliances/atlantic/audit.csv?action=membership.suspended"' in page
    rows = _csv(as_coordinator.get("/alliances/atlantic/audit.csv?action=membership.suspended"))
    assert rows == [{
        "time": rows[0]["time"], "action": "membership.suspended",
        "event": "Coord of Coordinating Org suspended Member Org from Atlantic Alliance: "
                 "Shared a TLP:RED note.",
        "actor": "Coord", "actor_organisation": "Coordinating Org",
        "target_type": "organisation", "target": "Member Org", "alliance": "Atlantic Alliance",
        "reason": "Shared a TLP:RED note."}]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["time"])
    everything = _csv(as_coordinator.get("/alliances/atlantic/audit.csv"))
    assert len(everything) == len(list_events(alliance=story))


def test_the_csv_follows_the_pages_read_rule(make_client, coordinator, member, story,
                                             pacific, platform_admin):
    coordinating, member_client, admin = make_client(), make_client(), make_client()
    factories.login(coordinating, coordinator)
    factories.login(member_client, member)
    factories.login(admin, platform_admin)

    mine = _csv(coordinating.get("/audit.csv"))
    assert {r["alliance"] for r in mine} == {"Atlantic Alliance"}
    assert "Pacific-only reason." not in {r["reason"] for r in mine}
    assert coordinating.get("/alliances/pacific/audit.csv").status_code == 403
    assert member_client.get("/alliances/atlantic/audit.csv").status_code == 403
    assert coordinating.get("/admin/audit.csv").status_code == 404

    everything = _csv(admin.get("/admin/audit.csv"))
    assert {"Atlantic Alliance", "Pacific Alliance"} <= {r["alliance"] for r in everything}
    only_pacific = _csv(admin.get("/admin/audit.csv?alliance=pacific"))
    assert only_pacific and {r["alliance"] for r in only_pacific} == {"Pacific Alliance"}


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_prefixed(
        as_coordinator, coordinator, alliance, start):
    evil = factories.make_org(f"{start}HYPERLINK(\"http://evil.example\") Org")
    admin = factories.make_user(evil, "admin@evil.example", role="org_admin",
                                name=f"{start}cmd|' /C calc'!A0")
    m = transitions.request_to_join(admin, alliance, accept_charter=True,
                                 message=f"{start}1+1")
    transitions.decide(coordinator, alliance, m, "reject", f"{start}SUM(A1:A9)")

    rows = _csv(as_coordinator.get("/alliances/atlantic/audit.csv"))
    cells = [cell for row in rows for cell in row.values()]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    rejected = next(r for r in rows if r["action"] == "membership.rejected")
    # (A reason is kept without its surrounding blanks, a leading tab or CR among them.)
    assert rejected["reason"] == (f"'{start}SUM(A1:A9)" if start.strip() else "SUM(A1:A9)")
    assert rejected["target"] == f"'{start}HYPERLINK(\"http://evil.example\") Org"
    asked = next(r for r in rows if r["action"] == "membership.requested")
    assert asked["actor"] == f"'{start}cmd|' /C calc'!A0"
    assert asked["event"].startswith(f"'{start}cmd|")


def test_events_csv_starts_with_its_header_even_when_empty():
    assert events_csv([]).splitlines() == [
        "time,event,action,actor,actor_organisation,target_type,target,alliance,reason"]
