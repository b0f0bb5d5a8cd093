"""What the compose forms build, the posting rules of an audience, and what the note page
shows people: points of the notes issue that an audit found working but untested. Each test
here fails when its feature is taken out."""
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from alliance.audit.models import AuditEvent
from alliance.core.errors import DomainError
from alliance.extensions import db
from alliance.notes import audience, compose, editing, posting, reading
from alliance.notes.models import Note, NoteComment
from alliance.stix.markings import marking_id
from tests import factories
from tests.notes.helpers import STAMP, bundle, identity, indicator, sid


def _post(user, alliance, objects, tlp="AMBER", **extra):
    return posting.post_note(user, posting.NoteDraft(
        title="Composed", tlp=tlp, alliance_ids=[alliance.id], objects=objects, **extra))


# --- what the compose forms build ------------------------------------------------------------

def test_every_composed_object_carries_the_authors_identity_and_the_notes_marking(member):
    org = member.organisation
    objects = compose.incident_report(org, "AMBER", compose.IncidentDraft(
        title="Breach", description="d", details="",
        observables_text="10.0.0.0/8\n2001:db8::/32\nevil.example\nCVE-2024-3094",
        attack_ids_text="T1566.001", sectors=["energy"], countries=["LT"]))

    made = [o for o in objects if o["id"] != org.stix_id]
    assert {o["type"] for o in made} >= {"incident", "indicator", "vulnerability",
                                         "attack-pattern", "relationship", "identity",
                                         "location"}
    for obj in made:
        assert obj["created_by_ref"] == org.stix_id, obj["type"]
        assert obj["object_marking_refs"] == [marking_id("AMBER")], obj["type"]
    patterns = {o["pattern"] for o in made if o["type"] == "indicator"}
    assert "[ipv4-addr:value = '10.0.0.0/8']" in patterns
    assert "[ipv6-addr:value = '2001:db8::/32']" in patterns
    [technique] = [o for o in made if o["type"] == "attack-pattern"]
    # No url (stix2-validator's strict mode wants a hash beside one): the page links it.
    assert technique["external_references"] == [{
        "source_name": "mitre-attack", "external_id": "T1566.001"}]


def test_an_indicator_set_keeps_its_validity_window_and_confidence(member):
    until = datetime(2031, 1, 1, tzinfo=UTC)
    objects = compose.indicator_set(member.organisation, "GREEN",
                                    observables_text="evil.example",
                                    valid_from=datetime(2030, 1, 1, tzinfo=UTC),
                                    valid_until=until, confidence=70)
    [ind] = [o for o in objects if o["type"] == "indicator"]
    assert ind["valid_from"].startswith("2030-01-01T00:00:00")
    assert ind["valid_until"].startswith("2031-01-01T00:00:00")
    assert ind["confidence"] == 70


def test_a_policy_analysis_refers_to_the_instruments_it_concerns(member):
    objects = compose.policy_analysis(member.organisation, "GREEN", title="NIS2 and GDPR",
                                      description="Reporting duties overlap.",
                                      policy_tags=["gdpr", "nis2"])
    [analysis] = [o for o in objects if o["type"] == "note"]
    assert {r["external_id"] for r in analysis["external_references"]} == {"gdpr", "nis2"}
    assert all(r["source_name"] for r in analysis["external_references"])


# --- the audience: who may be named, who will read -------------------------------------------

def test_the_audience_preview_lists_active_member_organisations_only(member, coordinator,
                                                                     alliance):
    suspended = factories.make_org("Suspended Org")
    factories.make_user(suspended, "s@suspended.example", role="org_admin")
    factories.add_member(alliance, suspended, state="suspended")

    preview = audience.audience_preview(member, [alliance.id], "GREEN")

    names = {o.name for o in preview["organisations"]}
    assert member.organisation.name in names and coordinator.organisation.name in names
    assert "Suspended Org" not in names


def test_a_red_preview_lists_the_author_and_the_named_recipients(member, coordinator,
                                                                 alliance):
    preview = audience.audience_preview(member, [alliance.id], "RED", [coordinator.id])
    assert [u.id for u in preview["users"]] == [member.id, coordinator.id]
    assert preview["organisations"] == [] and not preview["everyone"]


def test_a_red_recipient_outside_the_chosen_alliances_is_refused(member, alliance, outsider):
    with pytest.raises(DomainError, match="Recipients must be"):
        _post(member, alliance, [identity()], tlp="RED", recipient_ids=[outsider.id])


def test_named_recipients_are_only_for_red(member, coordinator, alliance):
    with pytest.raises(DomainError, match="only for TLP:RED"):
        _post(member, alliance, [identity()], tlp="AMBER", recipient_ids=[coordinator.id])


@pytest.mark.parametrize(("tlp", "clear_allowed"), [("GREEN", True), ("CLEAR", False)])
def test_publishing_publicly_needs_clear_in_an_alliance_that_allows_it(
        member, coordinator, alliance, tlp, clear_allowed):
    from alliance.alliances import services as alliances

    alliances.update_settings(coordinator, alliance, publish_clear_allowed=clear_allowed)
    with pytest.raises(DomainError, match="public Insights page"):
        _post(member, alliance, [identity()], tlp=tlp, publish_public=True)
    assert db.session.scalars(select(Note)).all() == []


def test_a_reference_to_an_object_only_an_unreadable_note_holds_is_not_available(
        app, member, alliance, outsider):
    """A reference to an object outside the bundle is accepted, unresolved; the note page
    shows it as "not available" in the same way whether the target exists in a note the
    poster cannot read or nowhere (no probing what exists)."""
    theirs = identity("Member's secret partner")
    _post(member, alliance, [theirs])
    pacific = factories.make_alliance(outsider, slug="pacific", name="Pacific Alliance")
    ours = identity("Outsider's own")
    pointer = {"type": "relationship", "spec_version": "2.1", "id": sid("relationship"),
               "created": STAMP, "modified": STAMP, "relationship_type": "related-to",
               "source_ref": theirs["id"], "target_ref": ours["id"]}
    nowhere = dict(pointer, id=sid("relationship"), source_ref=sid("identity"))

    client = app.test_client()
    factories.login(client, outsider)
    shown = []
    for obj in (pointer, nowhere):
        note = _post(outsider, pacific, bundle(obj, ours)["objects"])
        page = client.get(f"/notes/{note.uuid}").get_data(as_text=True)
        assert "Member's secret partner" not in page
        at = page.index(f'<code class="stix-id">{obj["source_ref"]}</code>')
        shown.append(page[at:at + 200].replace(obj["source_ref"], "<id>"))
    assert "(not available)" in shown[0]
    assert shown[0] == shown[1]


# --- the note page ---------------------------------------------------------------------------

def test_the_note_page_shows_the_banner_every_object_its_links_and_the_history(
        client, member, alliance):
    objects = compose.incident_report(member.organisation, "AMBER", compose.IncidentDraft(
        title="Breach", description="", details="",
        observables_text="evil.example\nCVE-2024-3094", attack_ids_text="T1566.001",
        sectors=[], countries=["LT"]))
    note = _post(member, alliance, objects)
    editing.edit_note(member, note, title="Breach, updated", description="")
    factories.login(client, member)

    page = client.get(f"/notes/{note.uuid}").get_data(as_text=True)

    assert re.search(r'class="tlp-banner tlp-banner-amber"[^>]*id="tlp-banner"', page)
    for stix_type in ("report", "incident", "indicator", "vulnerability", "attack-pattern",
                      "location", "relationship"):
        assert f'class="obj obj-{stix_type}"' in page, stix_type
    assert "https://www.cve.org/CVERecord?id=CVE-2024-3094" in page
    assert "https://attack.mitre.org/techniques/T1566/001/" in page
    history = page.split('id="history-table"', 1)[1].split("</table>", 1)[0]
    assert history.count(note.report_id) == 2  # both report versions


# --- responses and retraction over the web ---------------------------------------------------

def test_a_sighting_and_an_opinion_are_stored_under_the_notes_marking(client, coordinator,
                                                                      member, alliance):
    note = _post(member, alliance, [identity()], tlp="AMBER")
    factories.login(client, coordinator)
    for data in ({"kind": "sighting", "text": "Seen at our edge"},
                 {"kind": "opinion", "opinion": "agree", "text": ""}):
        assert client.post(f"/notes/{note.uuid}/responses", data=data).status_code == 302

    rows = {r.kind: r for r in db.session.scalars(select(NoteComment).where(
        NoteComment.note_id == note.id))}
    assert set(rows) == {"sighting", "opinion"}
    assert rows["sighting"].stix["where_sighted_refs"] == [coordinator.organisation.stix_id]
    assert rows["opinion"].stix["opinion"] == "agree"
    for row in rows.values():
        assert row.stix["object_marking_refs"] == [marking_id("AMBER")]
        assert row.organisation_id == coordinator.organisation_id


def test_retracting_over_the_web_needs_a_reason_and_the_right_and_is_audited(
        client, member, alliance, coordinator):
    note = _post(member, alliance, [identity()], tlp="GREEN")
    reader = factories.make_user(coordinator.organisation, "reader@coord.example")

    factories.login(client, reader)
    assert client.post(f"/notes/{note.uuid}/retract",
                       data={"reason": "I dislike it"}).status_code == 403
    factories.login(client, coordinator)
    client.post(f"/notes/{note.uuid}/retract", data={"reason": ""})
    db.session.expire_all()
    assert db.session.get(Note, note.id).retracted_at is None

    assert client.post(f"/notes/{note.uuid}/retract",
                       data={"reason": "Wrong victim named"}).status_code == 302
    db.session.expire_all()
    retracted = db.session.get(Note, note.id)
    assert retracted.retracted_at is not None
    assert retracted.retraction_reason == "Wrong victim named"
    [event] = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "note.retracted")).all()
    assert event.actor_id == coordinator.id


def test_platform_made_stix_meets_the_validators_strict_mode(member, alliance):
    """Where STIX 2.1 says SHOULD: bundle ids version 4, indicators with a description, no
    url without a hash in external references (ATT&CK and CVE ids are the references)."""
    from stix2validator import ValidationOptions, validate_string

    objects = compose.incident_report(member.organisation, "AMBER", compose.IncidentDraft(
        title="Strict", description="What happened.",
        details="", observables_text="203.0.113.9\nevil.example\nCVE-2024-1234",
        attack_ids_text="T1566.001", sectors=[], countries=[]))
    note = _post(member, alliance, objects, kind="incident")
    bundle = reading.note_bundle(note)
    assert uuid.UUID(bundle["id"].split("--")[1]).version == 4
    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1", strict=True))
    assert result.is_valid, [e.message for e in result.errors]


@pytest.mark.parametrize("kind", ["incident", "indicators", "analysis", "bundle"])
def test_no_audience_is_chosen_for_the_poster(as_member, alliance, kind):
    """Every compose form opens with no alliance ticked (one ticked for the poster shared an
    energy incident with whatever alliance came first), and Share without an audience is an
    error on the field that stores nothing."""
    page = as_member.get(f"/notes/new/{kind}").get_data(as_text=True)
    boxes = re.findall(r'<input[^>]*name="alliances"[^>]*>', page)
    assert boxes and not any("checked" in box for box in boxes)

    before = db.session.scalar(select(func.count()).select_from(Note))
    response = as_member.post(f"/notes/new/{kind}", data={
        "title": "No audience", "tlp": "AMBER", "post": "1", "description": "What happened.",
        "observables": "203.0.113.5", "bundle_text": json.dumps(
            {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [indicator()]})})
    assert response.status_code == 422
    assert "Choose at least one alliance to share with." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Note)) == before
