"""The audit log: what record() keeps, and who sees which events."""
import re

import pytest

from alliance.alliances import services, transitions
from alliance.audit.log import list_events
from alliance.audit.services import record
from alliance.extensions import db
from tests import factories
from tests.alliances.helpers import element_text, events

REASON = "Posted <script>alert(1)</script> in a TLP:RED note."


@pytest.fixture
def pacific(db):
    """A second alliance with its own coordinator and its own events."""
    org = factories.make_org("Pacific Org")
    founder = factories.make_user(org, "coord@pacific.example", role="org_admin",
                                  name="Pacific Founder")
    alliance = factories.make_alliance(founder, slug="pacific", name="Pacific Alliance")
    candidate = factories.make_org("Pacific Candidate")
    admin = factories.make_user(candidate, "admin@pcandidate.example", role="org_admin")
    transitions.request_to_join(admin, alliance, accept_charter=True)
    m = services.membership_of(candidate.id, alliance)
    transitions.decide(founder, alliance, m, "reject", reason="Pacific-only reason.")
    return alliance


@pytest.fixture
def suspension(coordinator, alliance, member_admin):
    """The coordinator suspended Member Org with a reason that carries markup."""
    m = services.membership_of(member_admin.organisation_id, alliance)
    return transitions.decide(coordinator, alliance, m, "suspend", reason=REASON)


def _rows(html):
    """The ids of the events a log page lists."""
    return [int(i) for i in re.findall(rb'<tr id="event-(\d+)"', html)]


# --- the service ---------------------------------------------------------------------------

def test_record_keeps_who_did_what_to_whom_and_why(coordinator, alliance, member_admin):
    org = member_admin.organisation
    event = record("membership.suspended", coordinator, org, organisation=org,
                   alliance=alliance, reason="Leak.", previous_state="active")
    db.session.commit()
    event = factories.fresh(event)
    assert event.action == "membership.suspended"
    assert event.actor_id == coordinator.id
    assert (event.target_type, event.target_id, event.target_label) == (
        "organisation", str(org.id), "Member Org")
    assert event.organisation_id == org.id and event.alliance_id == alliance.id
    assert event.reason == "Leak." and event.details == {"previous_state": "active"}
    assert event.created_at is not None


def test_record_takes_a_target_given_as_type_id_and_label(coordinator):
    event = record("apikey.revoked", coordinator, ("api_key", "k-17", "SIEM key"))
    db.session.commit()
    event = factories.fresh(event)
    assert (event.target_type, event.target_id, event.target_label) == (
        "api_key", "k-17", "SIEM key")
    assert event.reason is None and event.alliance_id is None


def test_an_event_is_part_of_the_change_it_records(coordinator, alliance):
    """Written in the same transaction: a rolled-back change leaves no event behind."""
    before = len(events())
    record("alliance.settings_changed", coordinator, alliance, alliance=alliance)
    db.session.rollback()
    assert len(events()) == before


def test_list_events_for_an_alliance_holds_only_its_events_newest_first(alliance, pacific,
                                                                        suspension):
    atlantic_events = list_events(alliance=alliance)
    assert atlantic_events and all(e.alliance_id == alliance.id for e in atlantic_events)
    assert atlantic_events[0].action == "membership.suspended"
    ids = [e.id for e in atlantic_events]
    assert ids == sorted(ids, reverse=True)
    everything = list_events()
    assert {e.alliance_id for e in everything} >= {alliance.id, pacific.id}


def test_list_events_pages_backwards_from_an_id(alliance, suspension):
    newest_first = [e.id for e in list_events(alliance=alliance)]
    assert len(newest_first) >= 3
    page = [e.id for e in list_events(alliance=alliance, limit=2, before_id=newest_first[0])]
    assert page == newest_first[1:3]


# --- the pages -----------------------------------------------------------------------------

def test_a_coordinator_sees_their_alliances_events_and_not_anothers(
        as_coordinator, coordinator, alliance, pacific, suspension):
    response = as_coordinator.get("/alliances/atlantic/audit")
    assert response.status_code == 200
    shown = _rows(response.data)
    assert shown == [e.id for e in list_events(alliance=alliance)]
    pacific_ids = {e.id for e in list_events(alliance=pacific)}
    assert pacific_ids and not pacific_ids & set(shown)
    assert b"Pacific-only reason." not in response.data
    suspended = element_text(response.data, f"event-{shown[0]}")
    # One sentence: who, of which organisation, did what to whom, where, and why.
    assert (f"{coordinator.name} of Coordinating Org suspended Member Org from Atlantic "
            f"Alliance: {REASON}") in suspended


def test_the_log_shows_reasons_as_text_never_as_markup(as_coordinator, suspension):
    response = as_coordinator.get("/alliances/atlantic/audit")
    assert b"<script>alert(1)</script>" not in response.data
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.data


def test_a_coordinator_cannot_read_another_alliances_log(as_coordinator, alliance, pacific):
    assert as_coordinator.get("/alliances/pacific/audit").status_code == 403


@pytest.mark.parametrize("who", ["member", "member_admin", "outsider"])
def test_members_who_are_not_coordinators_get_403(who, request, client, alliance, member,
                                                  outsider, suspension):
    factories.login(client, request.getfixturevalue(who))
    response = client.get("/alliances/atlantic/audit")
    assert response.status_code == 403
    assert REASON.encode() not in response.data and b"&lt;script&gt;" not in response.data


def test_a_platform_admin_sees_every_alliances_events(as_admin, alliance, pacific, suspension):
    response = as_admin.get("/admin/audit")
    assert response.status_code == 200
    shown = set(_rows(response.data))
    assert {e.id for e in list_events(alliance=alliance)} <= shown
    assert {e.id for e in list_events(alliance=pacific)} <= shown
    assert b"Pacific-only reason." in response.data


def test_the_platform_log_does_not_exist_for_anyone_else(client, coordinator, alliance):
    factories.login(client, coordinator)
    assert client.get("/admin/audit").status_code == 404


def test_the_log_pages_back_with_before(as_coordinator, alliance, suspension):
    newest = list_events(alliance=alliance)[0].id
    response = as_coordinator.get(f"/alliances/atlantic/audit?before={newest}")
    shown = _rows(response.data)
    assert shown and newest not in shown and all(i < newest for i in shown)


# --- the page cursor -----------------------------------------------------------------------

@pytest.mark.parametrize("before", ["2147483648", "1000000000000000000000000000000", "-5", "0",
                                    "abc", ""])
def test_a_page_cursor_that_cannot_be_an_event_id_shows_the_newest_events(
        make_client, coordinator, alliance, platform_admin, before):
    # Past the integer column the query would overflow (a 500); the cursor is ignored instead.
    coordinating, admin = make_client(), make_client()
    factories.login(coordinating, coordinator)
    factories.login(admin, platform_admin)

    for client, path in ((coordinating, "/alliances/atlantic/audit"), (admin, "/admin/audit")):
        newest = _rows(client.get(path).data)
        response = client.get(f"{path}?before={before}")
        assert response.status_code == 200
        assert newest and _rows(response.data) == newest


def test_note_events_are_listed_only_to_those_who_may_read_the_note(
        client, alliance, coordinator, member, platform_admin):
    """Who posted a TLP:RED note and who of its named readers answered it are the note's
    readers' to know: the platform log lists note events only for notes its reader may
    read. A public TLP:CLEAR note's events are still listed."""
    from alliance.notes.comments import add_comment
    from alliance.notes.posting import NoteDraft, post_note
    from alliance.sharing.policy import Principal
    from tests.notes.helpers import identity

    services.update_settings(coordinator, alliance, publish_clear_allowed=True)
    red = post_note(coordinator, NoteDraft(
        title="Red", tlp="RED", alliance_ids=[alliance.id], objects=[identity()],
        recipient_ids=[member.id]))
    add_comment(member, red, "sighting", "seen")
    public = post_note(coordinator, NoteDraft(
        title="Open", tlp="CLEAR", alliance_ids=[alliance.id], objects=[identity()],
        publish_public=True))

    def about(events, note):
        return sorted(e.action for e in events
                      if e.target_type == "note" and e.target_id == str(note.id))

    admin = list_events(reader=Principal.of(platform_admin))
    assert about(admin, red) == []
    assert about(admin, public) == ["note.posted"]
    assert about(list_events(reader=Principal.of(member)), red) == [
        "note.posted", "note.sighting"]
    assert any(e.action == "note.posted" for e in admin) and len(admin) > 2  # others stay

    factories.login(client, platform_admin)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert f"note #{public.id}" in page
    listed = re.findall(r'<tr id="event-\d+" data-action="([^"]+)"', page)
    assert "note.posted" in listed and "note.sighting" not in listed
    assert f"note #{red.id}" not in page and "a sighting of" not in page
