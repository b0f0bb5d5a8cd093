"""The digest pages: a member's preferences and watch terms, the one-click unsubscribe (with
CSRF protection on, as deployed), the admins' delivery ledger, a coordinator's digest page and
preview, and the alliance's digest defaults."""
import pytest
from flask import session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from alliance import create_app
from alliance.alliances import services as alliance_services
from alliance.audit.models import AuditEvent
from alliance.core.models import utcnow
from alliance.digests import preferences, watch_terms
from alliance.digests.models import Delivery, DigestPreference
from alliance.extensions import db
from alliance.notes.posting import NoteDraft, post_note
from tests import factories
from tests.alliances.helpers import element_text
from tests.digests.helpers import post
from tests.notes.helpers import identity


def _prefs_row(user):
    db.session.expire_all()
    return db.session.get(DigestPreference, user.id)


def _terms(user) -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(t.kind, t.value) for t in watch_terms.watch_terms_of(user)]


def _preferences(**overrides) -> dict:
    data = {"frequency": "weekly", "weekday": "2", "hour": "7", "timezone": "Asia/Kolkata",
            "scope": "all", "alerts": "y"}
    data.update(overrides)
    return data


# --- preferences ----------------------------------------------------------------------------

def test_the_preferences_page_shows_the_alliance_defaults_until_the_member_chooses(
        as_member, member, alliance):
    page = as_member.get("/digests/preferences")

    assert page.status_code == 200
    status = element_text(page.data, "defaults-status")
    assert "You have not chosen yet" in status and "daily" in status and "08:00" in status
    assert "Europe/Berlin" in status  # the zone of the organisation's country (DE)
    form = element_text(page.data, "preferences-form")
    assert "All my organisation's alliances" in form and "Atlantic Alliance" in form
    assert element_text(page.data, "next-digest").startswith("Next digest")
    assert "No watch terms yet — add an IP, domain, hash or CVE id" in element_text(
        page.data, "watch-terms")


def test_the_preferences_form_saves(as_member, member, alliance):
    response = as_member.post("/digests/preferences", data=_preferences())

    assert response.status_code == 302
    row = _prefs_row(member)
    assert (row.frequency, row.weekday, row.hour, row.timezone, row.alliance_ids, row.alerts) \
        == ("weekly", 2, 7, "Asia/Kolkata", None, True)
    page = as_member.get("/digests/preferences")
    assert "These are your own settings" in element_text(page.data, "defaults-status")
    assert "Wednesday" in element_text(page.data, "next-digest")
    assert "07:00" in element_text(page.data, "next-digest")


def test_choosing_alliances_stores_them_and_all_means_all_later_ones_too(as_member, member,
                                                                          alliance):
    as_member.post("/digests/preferences", data=_preferences(
        scope="chosen", alliances=[str(alliance.id)], alerts=""))
    row = _prefs_row(member)
    assert row.alliance_ids == [alliance.id] and row.alerts is False

    as_member.post("/digests/preferences", data=_preferences(
        scope="all", alliances=[str(alliance.id)]))
    assert _prefs_row(member).alliance_ids is None


def test_saving_the_defaults_says_so(as_member, member, alliance):
    as_member.post("/digests/preferences", data=_preferences(
        frequency="daily", hour="8", timezone="Europe/Berlin", weekday="0"))

    page = as_member.get("/digests/preferences")
    assert "same as your alliances' default" in element_text(page.data, "defaults-status")


@pytest.mark.parametrize("overrides, message", [
    ({"hour": "25"}, "Choose an hour from 0 to 23."),
    ({"hour": "-1"}, "Choose an hour from 0 to 23."),
    ({"hour": "eight"}, "could not coerce"),
    ({"timezone": "Mars/Olympus_Mons"}, "Choose a time zone from the list."),
    ({"timezone": "US/Eastern"}, "Choose a time zone from the list."),
    ({"frequency": "hourly"}, "Choose off, daily or weekly."),
    ({"weekday": "7"}, "Choose a weekday."),
    ({"scope": "chosen", "alliances": ["424242"]},
     "Choose among your organisation's alliances."),
])
def test_bad_preferences_are_refused_on_the_field_and_nothing_is_saved(
        as_member, member, alliance, overrides, message):
    response = as_member.post("/digests/preferences", data=_preferences(**overrides))

    assert response.status_code == 422
    assert message in element_text(response.data, "preferences-form")
    assert _prefs_row(member) is None


def test_an_alliance_the_organisation_is_not_in_is_refused(as_member, member, outsider,
                                                           alliance):
    other = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")

    response = as_member.post("/digests/preferences", data=_preferences(
        scope="chosen", alliances=[str(alliance.id), str(other.id)]))

    assert response.status_code == 422
    assert "Choose among your organisation's alliances." in element_text(
        response.data, "field-alliances")
    assert _prefs_row(member) is None


def test_the_preferences_need_a_signed_in_member(client, outsider):
    response = client.get("/digests/preferences")
    assert response.status_code == 302 and "/auth/sign-in" in response.headers["Location"]
    assert client.post("/digests/preferences", data=_preferences()).status_code == 302
    assert db.session.scalar(select(func.count()).select_from(DigestPreference)) == 0


# --- watch terms ----------------------------------------------------------------------------

def test_a_watch_term_is_stored_normalised_and_listed(as_member, member):
    response = as_member.post("/digests/watch-terms",
                              data={"kind": "value", "value": "  EXAMPLE.com. "})

    assert response.status_code == 302
    assert _terms(member) == [("value", "example.com")]
    page = as_member.get("/digests/preferences")
    assert "You now watch example.com." in page.get_data(as_text=True)
    assert "example.com" in element_text(page.data, "watch-term-list")


def test_each_kind_of_watch_term_is_added(as_member, member):
    for kind, value in [("cve", "cve-2024-3094"), ("sector", "energy"), ("country", "UA"),
                        ("policy_tag", "nis2"), ("value", "203.0.113.7")]:
        assert as_member.post("/digests/watch-terms",
                              data={"kind": kind, "value": value}).status_code == 302, kind

    assert sorted(_terms(member)) == [("country", "UA"), ("cve", "CVE-2024-3094"),
                                      ("policy_tag", "nis2"), ("sector", "energy"),
                                      ("value", "203.0.113.7")]
    listed = element_text(as_member.get("/digests/preferences").data, "watch-term-list")
    assert "Ukraine" in listed and "NIS2" in listed and "Energy" in listed


def test_a_duplicate_watch_term_is_ignored(as_member, member):
    as_member.post("/digests/watch-terms", data={"kind": "value", "value": "example.com"})

    response = as_member.post("/digests/watch-terms",
                              data={"kind": "value", "value": "Example.COM"},
                              follow_redirects=True)

    assert "You watch example.com already." in response.get_data(as_text=True)
    assert _terms(member) == [("value", "example.com")]


@pytest.mark.parametrize("kind, value, message", [
    ("value", "not a value!!", "is not an IP address, network, domain, URL"),
    ("value", "CVE-2024-3094", "is not an IP address"),
    ("cve", "example.com", "is not a CVE id such as CVE-2024-3094"),
    ("sector", "piracy", "Choose a value from the list."),
    ("country", "XX", "Choose a value from the list."),
    ("weather", "sunny", "Unknown kind of watch term."),
    ("value", "", "Type or choose what to watch."),
    ("value", "https://example.com/" + "a" * 400, "at most 300 characters"),
])
def test_a_bad_watch_term_is_refused_with_a_message(as_member, member, kind, value, message):
    response = as_member.post("/digests/watch-terms", data={"kind": kind, "value": value})

    assert response.status_code == 422
    assert message in element_text(response.data, "watch-term-errors")
    assert _terms(member) == []


def test_a_watch_term_is_removed(as_member, member):
    term = watch_terms.add_watch_term(member, "value", "example.com")

    response = as_member.post("/digests/watch-terms/remove", data={"term_id": str(term.id)})

    assert response.status_code == 302
    assert _terms(member) == []


def test_another_users_watch_term_cannot_be_removed(as_member, member, member_admin):
    theirs = watch_terms.add_watch_term(member_admin, "value", "example.com")

    response = as_member.post("/digests/watch-terms/remove", data={"term_id": str(theirs.id)})

    assert response.status_code == 404
    assert _terms(member_admin) == [("value", "example.com")]
    assert as_member.post("/digests/watch-terms/remove",
                          data={"term_id": "424242"}).status_code == 404
    assert as_member.post("/digests/watch-terms/remove",
                          data={"term_id": "x"}).status_code == 400


def test_watch_term_values_are_shown_as_text(as_member, member):
    watch_terms.add_watch_term(member, "value", "https://example.com/<script>alert(1)</script>")

    body = as_member.get("/digests/preferences").get_data(as_text=True)

    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body


# --- one-click unsubscribe ------------------------------------------------------------------

@pytest.fixture(scope="module")
def csrf_app(app):
    """The app with CSRF protection on, as every real deployment runs."""
    return create_app({"WTF_CSRF_ENABLED": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "MAIL_URL": app.config["MAIL_URL"], "BASE_URL": app.config["BASE_URL"]})


def _token(app, user) -> str:
    with app.test_request_context():
        return preferences.unsubscribe_token(user)


def test_unsubscribe_get_asks_and_changes_nothing(csrf_app, member, alliance):
    client = csrf_app.test_client()

    page = client.get(f"/digests/unsubscribe/{_token(csrf_app, member)}")

    assert page.status_code == 200
    form = element_text(page.data, "unsubscribe-form")
    assert form is not None and "Unsubscribe" in form
    assert 'name="csrf_token"' in page.get_data(as_text=True)
    assert member.email in page.get_data(as_text=True)
    assert _prefs_row(member) is None


def test_one_click_unsubscribe_needs_no_session_and_no_form_token(csrf_app, member, alliance):
    preferences.save_preferences(member, frequency="daily", hour=6, timezone="Asia/Tokyo",
                              alliance_ids=[alliance.id])
    client = csrf_app.test_client()  # never signed in, no cookie, no token

    response = client.post(f"/digests/unsubscribe/{_token(csrf_app, member)}",
                           data={"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert element_text(response.data, "unsubscribe-done") is not None
    assert 'href="/digests/preferences"' in response.get_data(as_text=True)
    row = _prefs_row(member)
    assert (row.frequency, row.alerts) == ("off", False)
    assert (row.hour, row.timezone, row.alliance_ids) == (6, "Asia/Tokyo", [alliance.id])


def test_unsubscribe_works_after_the_organisation_left_a_chosen_alliance(csrf_app, member,
                                                                          alliance):
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC",
                              alliance_ids=[alliance.id])
    factories.add_member(alliance, member.organisation, "left")

    response = csrf_app.test_client().post(f"/digests/unsubscribe/{_token(csrf_app, member)}")

    assert response.status_code == 200
    assert _prefs_row(member).frequency == "off"


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
    lambda t: "eyJ1IjoxfQ" + t[t.index("."):],  # another user id under the same signature
    lambda t: "not-a-token",
])
def test_a_tampered_unsubscribe_link_is_refused_and_changes_nothing(csrf_app, member,
                                                                    member_admin, mangle):
    preferences.save_preferences(member, frequency="daily", hour=8, timezone="UTC")
    client = csrf_app.test_client()
    token = mangle(_token(csrf_app, member))

    for response in (client.get(f"/digests/unsubscribe/{token}"),
                     client.post(f"/digests/unsubscribe/{token}")):
        assert response.status_code == 400
        assert "not valid" in element_text(response.data, "unsubscribe-error")
        assert "Nothing was changed." in element_text(response.data, "unsubscribe-error")
    assert _prefs_row(member).frequency == "daily"
    assert _prefs_row(member_admin) is None


def test_the_other_digest_forms_still_need_the_csrf_token(csrf_app, member):
    client = csrf_app.test_client()
    factories.login(client, member)

    assert client.post("/digests/preferences", data=_preferences()).status_code == 400
    assert client.post("/digests/watch-terms",
                       data={"kind": "value", "value": "example.com"}).status_code == 400
    assert _prefs_row(member) is None and _terms(member) == []

    with csrf_app.test_request_context():
        token = generate_csrf()
        raw = session[csrf_app.config["WTF_CSRF_FIELD_NAME"]]
    with client.session_transaction() as sess:
        sess[csrf_app.config["WTF_CSRF_FIELD_NAME"]] = raw
    assert client.post("/digests/watch-terms", data={
        "kind": "value", "value": "example.com", "csrf_token": token}).status_code == 302


# --- the delivery ledger --------------------------------------------------------------------

@pytest.fixture
def ledger_rows(coordinator, alliance, member):
    note = post(coordinator, "Secret ledger title", "AMBER", [alliance])
    rows = [Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-02",
                     state="sent", items=3, strictest_tlp="AMBER", sent_at=utcnow()),
            Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-03",
                     state="failed", error="SMTP 550: b'5.1.1 no such user'"),
            Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-04",
                     state="empty"),
            Delivery(user_id=member.id, kind="alert", period_key=f"alert:{note.id}",
                     note_id=note.id, watch_term="evil.example", state="sent", items=1,
                     strictest_tlp="AMBER", sent_at=utcnow())]
    db.session.add_all(rows)
    db.session.commit()
    return rows, note


def test_the_ledger_page_lists_deliveries_with_counts_and_failures(as_admin, ledger_rows):
    rows, note = ledger_rows

    page = as_admin.get("/digests/admin/deliveries")

    assert page.status_code == 200
    chart = element_text(page.data, "state-chart")
    assert "sent 2" in chart and "failed 1" in chart and "empty 1" in chart
    assert "pending 0" in chart
    failed = element_text(page.data, f"delivery-{rows[1].id}")
    assert "failed" in failed
    assert "no such user" in page.get_data(as_text=True)
    assert 'class="delivery-failed' in page.get_data(as_text=True)
    # The admin may not read the AMBER note: it is not named, nor its TLP or count.
    alert = element_text(page.data, f"delivery-{rows[3].id}")
    assert "a note you may not read" in alert
    assert f"#{note.id}" not in alert and "TLP:" not in alert
    assert "Secret ledger title" not in page.get_data(as_text=True)


def test_the_ledger_names_only_notes_the_admin_may_read_and_no_digest_counts(
        as_admin, coordinator, alliance, member):
    """An alert on a TLP:RED note addressed to a member told the admin the note's id, its
    TLP and who received it; a digest's strictest TLP and item count told what the member
    reads. A public TLP:CLEAR note, which the admin may read, is still named."""
    alliance_services.update_settings(coordinator, alliance, publish_clear_allowed=True)
    red = post(coordinator, "Red ledger title", "RED", [alliance], recipients=[member])
    public = post_note(coordinator, NoteDraft(
        title="Public ledger title", tlp="CLEAR", alliance_ids=[alliance.id], objects=[identity()],
        publish_public=True))
    rows = [Delivery(user_id=member.id, kind="alert", period_key=f"alert:{red.id}",
                     note_id=red.id, watch_term="evil.example", state="sent", items=1,
                     strictest_tlp="RED", sent_at=utcnow()),
            Delivery(user_id=member.id, kind="alert", period_key=f"alert:{public.id}",
                     note_id=public.id, watch_term="evil.example", state="sent", items=1,
                     strictest_tlp="CLEAR", sent_at=utcnow()),
            Delivery(user_id=member.id, kind="digest", period_key="daily:2026-03-02",
                     state="sent", items=98765, strictest_tlp="RED", sent_at=utcnow())]
    db.session.add_all(rows)
    db.session.commit()

    page = as_admin.get("/digests/admin/deliveries")
    hidden, named, digest = (element_text(page.data, f"delivery-{r.id}") for r in rows)
    assert "a note you may not read" in hidden
    assert f"#{red.id}" not in hidden and "TLP:RED" not in hidden
    assert f"note #{public.id}" in named and "TLP:CLEAR" in named
    assert "daily:2026-03-02" in digest and "TLP:" not in digest and "98765" not in digest


def test_the_ledger_page_filters_by_state(as_admin, ledger_rows):
    rows, _ = ledger_rows

    page = as_admin.get("/digests/admin/deliveries?state=failed")

    table = element_text(page.data, "delivery-table")
    assert "daily:2026-03-03" in table and "daily:2026-03-02" not in table
    assert as_admin.get("/digests/admin/deliveries?state=nonsense").status_code == 400


def test_the_ledger_page_shows_an_empty_state(as_admin):
    page = as_admin.get("/digests/admin/deliveries")
    assert page.status_code == 200 and "No deliveries yet" in page.get_data(as_text=True)


def test_only_platform_admins_see_the_ledger(client, member, coordinator):
    assert client.get("/digests/admin/deliveries").status_code == 302  # sign in first
    for user in (member, coordinator):
        factories.login(client, user)
        assert client.get("/digests/admin/deliveries").status_code == 404


# --- the coordinator's page -----------------------------------------------------------------

@pytest.fixture
def pacific(outsider, member):
    """An alliance the member's organisation is in and the coordinator's is not."""
    pacific = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")
    factories.add_member(pacific, member.organisation, "active")
    return pacific


def test_the_coordinator_page_shows_who_gets_what(as_coordinator, coordinator, alliance,
                                                  member, member_admin):
    preferences.save_preferences(member, frequency="weekly", hour=8, timezone="UTC")
    preferences.save_preferences(member_admin, frequency="off", hour=8, timezone="UTC")

    page = as_coordinator.get("/digests/alliance/atlantic")

    assert page.status_code == 200
    chart = element_text(page.data, "stats-chart")
    # The coordinator keeps the alliance default (daily); one weekly, one off.
    assert "daily 1" in chart and "weekly 1" in chart and "off 1" in chart
    assert "not covering this alliance 0" in chart
    options = element_text(page.data, "field-user_id")
    assert "Analyst" in options and "Member Org" in options


def test_the_coordinator_page_is_for_coordinators_only(client, member, outsider, alliance):
    for user in (member, outsider):
        factories.login(client, user)
        assert client.get("/digests/alliance/atlantic").status_code == 403
        assert client.get(f"/digests/alliance/atlantic/preview.html?user_id={member.id}"
                          "&period=day").status_code == 403
    assert client.get("/digests/alliance/nowhere").status_code == 404


def test_the_preview_shows_only_what_both_may_read(as_coordinator, coordinator, alliance,
                                                   member, member_admin, pacific):
    watch_terms.add_watch_term(member, "value", "evil.example")
    post(coordinator, "Shared with all of Atlantic", "GREEN", [alliance], "A summary.",
         domain="evil.example")
    post(member_admin, "Red for the analyst alone", "RED", [alliance], recipients=[member])
    post(member, "Pacific only note", "AMBER", [pacific])

    page = as_coordinator.get(f"/digests/alliance/atlantic?user_id={member.id}&period=day")
    html = as_coordinator.get(f"/digests/alliance/atlantic/preview.html?user_id={member.id}"
                              "&period=day")

    assert page.status_code == 200 and html.status_code == 200
    preview = element_text(page.data, "preview-result")
    for body in (preview, html.get_data(as_text=True)):
        assert "Shared with all of Atlantic" in body and "A summary." in body
        assert "Red for the analyst alone" not in body
        assert "TLP:RED" not in body  # not even counted: the coordinator may not read it
        assert "Pacific only note" not in body
        # The member's watch terms and unsubscribe link are theirs.
        assert "evil.example" not in body and "matches one of their watch terms" in body
        assert "/digests/unsubscribe/" not in body
    assert element_text(page.data, "preview-subject").startswith(
        "[TLP:GREEN] CyberPeace digest — 1 new note in 1 alliance")
    assert "script-src" not in html.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in html.headers["Content-Security-Policy"]


def test_the_preview_of_a_quiet_period_says_nothing_would_be_sent(as_coordinator, member,
                                                                  alliance):
    page = as_coordinator.get(f"/digests/alliance/atlantic?user_id={member.id}&period=week")
    assert page.status_code == 200
    assert element_text(page.data, "preview-empty") is not None


def test_the_preview_is_only_of_users_of_active_member_organisations(as_coordinator, outsider,
                                                                      alliance):
    page = as_coordinator.get(f"/digests/alliance/atlantic?user_id={outsider.id}&period=day")
    assert page.status_code == 422 and element_text(page.data, "preview-result") is None
    assert as_coordinator.get(f"/digests/alliance/atlantic/preview.html?user_id={outsider.id}"
                              "&period=day").status_code == 400
    assert as_coordinator.get("/digests/alliance/atlantic/preview.html").status_code == 400


def test_the_alliance_page_links_coordinators_to_the_digest_page(as_coordinator, client,
                                                                 member, alliance):
    links = element_text(as_coordinator.get("/alliances/atlantic").data, "coordinator-links")
    assert "Digests" in links
    factories.login(client, member)
    assert "/digests/alliance/atlantic" not in client.get("/alliances/atlantic").get_data(True)


# --- the alliance's digest defaults ---------------------------------------------------------

def _settings(alliance, **overrides) -> dict:
    data = {"name": alliance.name, "description": alliance.description,
            "charter": alliance.charter, "policy_tags": alliance.policy_tags,
            "join_policy": alliance.join_policy, "allowed_tlps": alliance.allowed_tlps,
            "default_tlp": alliance.default_tlp, "digest_frequency": "weekly",
            "digest_hour": "17"}
    data.update(overrides)
    return data


def test_coordinators_set_the_digest_defaults_and_the_change_is_audited(
        as_coordinator, alliance, member):
    response = as_coordinator.post("/alliances/atlantic/settings", data=_settings(alliance))

    assert response.status_code == 302
    db.session.expire_all()
    assert (alliance.digest_frequency, alliance.digest_hour) == ("weekly", 17)
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "alliance.settings_changed")).all()
    assert event.details["changes"]["digest_hour"] == {"old": 8, "new": 17}
    prefs = preferences.preferences_of(member)
    assert (prefs.frequency, prefs.hour, prefs.chosen) == ("weekly", 17, False)
    assert "Weekly" in element_text(as_coordinator.get("/alliances/atlantic").data,
                                    "digest-default")


@pytest.mark.parametrize("overrides", [{"digest_frequency": "hourly"}, {"digest_hour": "24"}])
def test_bad_digest_defaults_are_refused(as_coordinator, alliance, overrides):
    response = as_coordinator.post("/alliances/atlantic/settings",
                                   data=_settings(alliance, **overrides))

    assert response.status_code == 422
    db.session.expire_all()
    assert (alliance.digest_frequency, alliance.digest_hour) == ("daily", 8)


def test_the_service_refuses_bad_digest_defaults_too(coordinator, alliance):
    from alliance.core.errors import DomainError

    with pytest.raises(DomainError) as refused:
        alliance_services.update_settings(coordinator, alliance, digest_hour=99)
    assert refused.value.field == "digest_hour"


# --- navigation -----------------------------------------------------------------------------

def test_members_find_their_digest_preferences_in_the_navigation(as_member):
    nav = element_text(as_member.get("/").data, "main-nav")
    assert "Digests" in nav


def test_admins_find_the_ledger_in_the_navigation(as_admin):
    assert "Deliveries" in element_text(as_admin.get("/").data, "main-nav")



def test_two_unsubscribes_at_the_same_moment_both_answer_done(csrf_app, member):
    """A mail client's one-click POST and the person's own click, with no preferences row
    yet: the other one stores the row after this one looked for it and before this one's
    insert. This one still answers "done" (not a 409), and the row it leaves is off."""
    raced = []

    def other_unsubscribe_first(session, _context, _instances):
        new = [o for o in session.new if isinstance(o, DigestPreference)]
        if new and not raced:
            raced.append(new[0].user_id)
            with db.engine.begin() as conn:
                conn.execute(DigestPreference.__table__.insert().values(
                    user_id=new[0].user_id, frequency="off", alerts=False, hour=new[0].hour,
                    weekday=new[0].weekday, timezone=new[0].timezone, alliance_ids=[]))

    event.listen(Session, "before_flush", other_unsubscribe_first)
    try:
        response = csrf_app.test_client().post(
            f"/digests/unsubscribe/{_token(csrf_app, member)}")
    finally:
        event.remove(Session, "before_flush", other_unsubscribe_first)

    assert raced == [member.id]
    assert response.status_code == 200
    assert element_text(response.data, "unsubscribe-done") is not None
    assert (_prefs_row(member).frequency, _prefs_row(member).alerts) == ("off", False)
