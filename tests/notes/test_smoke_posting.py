"""Posting and reading a note end to end through the services and the policy."""
import json

from alliance.notes import compose, posting, reading
from alliance.sharing.policy import Principal, count_readable, get_readable_note


def test_an_incident_report_is_readable_by_members_and_not_by_outsiders(
        member, member_admin, outsider, alliance, coordinator):
    objects = compose.incident_report(member.organisation, "AMBER", compose.IncidentDraft(
        title="Phishing wave", description="**Bold** text",
        details="", observables_text="evil.example\n203.0.113.9\nCVE-2024-3400",
        attack_ids_text="T1566.001", sectors=["energy"], countries=["DE"]))
    note = posting.post_note(member, posting.NoteDraft(
        title="Phishing wave", tlp="AMBER", alliance_ids=[alliance.id], objects=objects,
        kind="incident"))
    assert get_readable_note(Principal.of(coordinator), note.report_id) is not None
    assert get_readable_note(Principal.of(outsider), note.report_id) is None
    assert count_readable(Principal.anonymous()) == 0
    bundle = reading.note_bundle(note)
    types = {o["type"] for o in bundle["objects"]}
    assert {"report", "incident", "indicator", "vulnerability", "attack-pattern",
            "marking-definition", "identity", "location", "relationship"} <= types
    json.dumps(bundle)
    value, seen = reading.who_has_seen(Principal.of(coordinator), "EVIL.example.")
    assert value == "evil.example" and [n.id for n in seen] == [note.id]
