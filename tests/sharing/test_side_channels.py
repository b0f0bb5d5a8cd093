"""Side channels around notes, found by an audit: what a page or a log shows about notes,
and about alliances, to someone the read rule does not let read them.

- The compose form's TLP:RED recipient list and its audience preview take the alliance ids
  as posted: they must list people only for alliances the poster may post to, not the
  members of any alliance whose id someone types in.
- The audit log is read by platform admins and others who may not read a note: a
  retraction's reason (free text about the note; a TAXII deletion named the object's STIX
  id in it) stays on the note, for those who may still read it, and out of the log."""
from alliance.apikeys.services import create_key
from alliance.audit.log import list_events
from alliance.notes import audience, posting
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import indicator

TAXII = "application/taxii+json;version=2.1"


def test_the_compose_form_lists_recipients_only_of_alliances_the_poster_may_post_to(
        client, alliance, member, outsider):
    elsewhere = factories.make_alliance(outsider, slug="elsewhere", name="Elsewhere")
    colleague = factories.make_user(outsider.organisation, "colleague@outside.example")
    factories.login(client, outsider)
    # Atlantic's id, typed in by someone whose organisation is not a member of it.
    page = client.post("/notes/new/incident", data={"alliances": [alliance.id], "tlp": "RED",
                                                    "title": "x"}).get_data(as_text=True)
    assert member.name not in page and member.email not in page
    # The alliance the outsider may post to still lists its people.
    page = client.post("/notes/new/incident", data={"alliances": [elsewhere.id], "tlp": "RED",
                                                    "title": "x"}).get_data(as_text=True)
    assert colleague.name in page


def test_the_audience_preview_shows_no_one_of_an_alliance_the_poster_is_not_in(
        alliance, member, outsider):
    factories.make_alliance(outsider, slug="elsewhere", name="Elsewhere")
    preview = audience.audience_preview(outsider, [alliance.id], "AMBER")
    assert member.organisation not in preview["organisations"]
    assert [o.id for o in preview["organisations"]] == [outsider.organisation_id]
    red = audience.audience_preview(outsider, [alliance.id], "RED", [member.id])
    assert member not in red["users"]


def test_a_retraction_reason_stays_out_of_the_audit_log(client, make_client, alliance, member,
                                                        platform_admin):
    hidden = indicator("[domain-name:value = 'secret-c2.example']")
    note = posting.post_note(member, posting.NoteDraft(
        title="Secret AMBER", tlp="AMBER", alliance_ids=[alliance.id], objects=[hidden]))
    _row, key = create_key(member, "SIEM")
    deleted = make_client().delete(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/{hidden['id']}/",
        headers={"Accept": TAXII, "Authorization": f"Bearer {key}"})
    assert deleted.status_code == 200, deleted.get_data(as_text=True)
    assert hidden["id"] in note.retraction_reason  # on the note, for those who may read it
    [event] = [e for e in list_events() if e.action == "note.retracted"]
    assert event.target_label == f"note #{note.id}"  # logged, by row number only
    kept = repr((event.reason, event.details, event.target_label))
    assert hidden["id"] not in kept and "secret-c2" not in kept
    assert "Deleted over TAXII" not in kept
    factories.login(client, platform_admin)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert f"note #{note.id}" not in page  # an AMBER note the admin may not read
    assert hidden["id"] not in page and "Deleted over TAXII" not in page
