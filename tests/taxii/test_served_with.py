"""What a collection serves beside a note's objects (issue 19; DESIGN.md: "The author identity
of every served object (`created_by_ref`) is served with it"): every created_by_ref and every
TLP 2.0 marking reference of a served object resolves in the same collection, the TLP
extension definition's creator too; only where, and to whom, a note that needs them is
served; never as one of the note's objects; never deletable over TAXII."""
import json

from flask_migrate import downgrade, upgrade
from sqlalchemy import select
from stix2validator import ValidationOptions, validate_string
from taxii2client.v21 import Collection, as_pages

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes import editing, posting, reading
from alliance.notes.models import StixObject
from alliance.stix.markings import level_of, marking_id, tlp2_extension_definition
from alliance.stix.tlp import TLP_RANK
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests import factories
from tests.notes.helpers import identity, indicator, sid

TAXII = "application/taxii+json;version=2.1"


def _collection(live, user, collection_id: str) -> Collection:
    key = create_key(user, "TIP")[1]
    return Collection(f"{live}/taxii2/api/collections/{collection_id}/", user="key",
                      password=key)


def _served(coll: Collection) -> dict[str, dict]:
    """id -> the latest version the collection serves."""
    found = {}
    for page in as_pages(coll.get_objects, per_request=500):
        for obj in page.get("objects", []):
            found[obj["id"]] = obj
    return found


def _refs(obj: dict) -> set[str]:
    return {obj.get("created_by_ref")} - {None} | set(obj.get("object_marking_refs", []))


def _level(obj: dict) -> int:
    return max((TLP_RANK[level_of(r)] for r in obj.get("object_marking_refs", [])
                if level_of(r)), default=-1)


def _malware(name="Tiny") -> dict:
    return {"type": "malware", "spec_version": "2.1", "id": sid("malware"),
            "created": "2024-05-01T12:00:00.000Z", "modified": "2024-05-01T12:00:00.000Z",
            "name": name, "is_family": False}


def test_every_reference_the_platform_adds_resolves_in_the_collection(live, member, alliance):
    vendor = identity("A Vendor")
    theirs = indicator("[domain-name:value = 'vendor.example']", created_by_ref=vendor["id"])
    ours = [indicator(), _malware(),
            indicator("[ipv4-addr:value = '198.51.100.8']",
                      object_marking_refs=[marking_id("GREEN")])]
    posting.post_note(member, posting.NoteDraft(
        title="Amber", tlp="AMBER", alliance_ids=[alliance.id], objects=[vendor, theirs, *ours],
        looser_confirmed=True))
    for collection_id in (alliance_collection_id(alliance.id),
                          organisation_collection_id(member.organisation_id)):
        served = _served(_collection(live, member, collection_id))
        missing = {ref for obj in served.values() for ref in _refs(obj)} - set(served)
        assert missing == set(), collection_id
        mine = served[member.organisation.stix_id]
        assert (mine["type"], mine["name"]) == ("identity", member.organisation.name)
        assert _level(mine) >= TLP_RANK["AMBER"]  # served with AMBER notes: as strict
        extension = tlp2_extension_definition()
        assert served[extension["id"]] == extension
        assert extension["created_by_ref"] in served  # the extension's creator (CISA)
        assert {marking_id(level) for level in ("GREEN", "AMBER", "AMBER+STRICT")} <= set(
            served)
        # Served as valid STIX 2.1, everything together.
        bundle = {"type": "bundle", "id": f"bundle--{sid('x')[3:]}",
                  "objects": list(served.values())}
        result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1"))
        assert result.is_valid, [e.message for e in result.errors]


def test_they_are_not_among_the_notes_objects(member, alliance):
    note = posting.post_note(member, posting.NoteDraft(
        title="One", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    assert {row.type for row in reading.note_objects(note)} == {"report", "indicator"}
    # The download carries them (every reference resolves there too), one body per version:
    # the identity as a collection serves it.
    download = {o["id"]: o for o in reading.note_bundle(note)["objects"]}
    served = db.session.scalar(select(StixObject.body).where(
        StixObject.stix_id == member.organisation.stix_id))
    assert download[member.organisation.stix_id] == served


def test_a_reshared_objects_creator_is_served_where_the_reshare_is(live, member, alliance,
                                                                  coordinator, member_admin):
    """Another platform organisation's object, re-shared by a member into an alliance where
    its creator posted nothing: the creator's identity is served there with it."""
    other = factories.make_alliance(member_admin, slug="second", name="Second Alliance")
    theirs = posting.post_note(coordinator, posting.NoteDraft(
        title="Theirs", tlp="GREEN", alliance_ids=[alliance.id], objects=[_malware("Shared")]))
    body = next(r.body for r in reading.note_objects(theirs) if r.type == "malware")
    # Sent with no creator, as a re-share is: the platform names the one it can see.
    sent = {k: v for k, v in body.items() if k != "created_by_ref"}
    posting.post_note(member, posting.NoteDraft(
        title="Re-shared", tlp="GREEN", alliance_ids=[other.id], objects=[sent]))
    served = _served(_collection(live, member, alliance_collection_id(other.id)))
    assert served[body["id"]]["created_by_ref"] == coordinator.organisation.stix_id
    assert served[coordinator.organisation.stix_id]["name"] == coordinator.organisation.name


def test_only_where_and_to_whom_a_note_that_needs_them_is_served(live, member, alliance,
                                                                 outsider):
    """An alliance where an organisation posted nothing does not serve its identity; a RED
    note (never served over TAXII) brings nothing; a retraction takes them out with the last
    note that needed them."""
    other = factories.make_alliance(outsider, slug="elsewhere", name="Elsewhere")
    elsewhere = _collection(live, outsider, alliance_collection_id(other.id))
    posting.post_note(outsider, posting.NoteDraft(
        title="Theirs", tlp="GREEN", alliance_ids=[other.id], objects=[indicator()]))
    assert member.organisation.stix_id not in _served(elsewhere)

    coll = _collection(live, member, alliance_collection_id(alliance.id))
    posting.post_note(member, posting.NoteDraft(
        title="Red", tlp="RED", alliance_ids=[alliance.id], recipient_ids=[member.id],
        objects=[indicator()]))
    assert member.organisation.stix_id not in _served(coll)
    note = posting.post_note(member, posting.NoteDraft(
        title="Green", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    assert member.organisation.stix_id in _served(coll)
    editing.retract_note(member, note, "Wrong")
    assert _served(coll) == {}


def test_they_cannot_be_deleted_over_taxii(live, member, alliance):
    import requests

    posting.post_note(member, posting.NoteDraft(
        title="One", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    key = create_key(member, "TIP")[1]
    url = (f"{live}/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
           f"{member.organisation.stix_id}/")
    answer = requests.delete(url, auth=("key", key), headers={"Accept": TAXII}, timeout=10)
    assert answer.status_code == 403
    assert "platform serves this object" in answer.json()["description"]
    assert requests.get(url, auth=("key", key), headers={"Accept": TAXII},
                        timeout=10).status_code == 200


def test_an_organisation_still_posts_its_own_identity(member, alliance):
    """The platform's copy is never compared with what an organisation posts: posting its
    own identity (same version, its own body) is not a conflict with it."""
    posting.post_note(member, posting.NoteDraft(
        title="One", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    own = {k: v for k, v in member.organisation.stix_identity.items()
           if k != "object_marking_refs"}
    own["description"] = "About us"
    posting.post_note(member, posting.NoteDraft(
        title="Us", tlp="GREEN", alliance_ids=[alliance.id], objects=[own]))


def test_the_migration_serves_them_beside_notes_stored_before(live, app, member, alliance):
    """Notes stored before the migration (c5e1a7d3f9b2) get their organisation's identity
    and TLP definitions served beside them; its downgrade takes them out."""
    posting.post_note(member, posting.NoteDraft(
        title="Before", tlp="GREEN", alliance_ids=[alliance.id], objects=[indicator()]))
    db.session.commit()
    coll = _collection(live, member, alliance_collection_id(alliance.id))
    db.session.commit()
    downgrade(revision="3bb0280ac4a9")
    assert member.organisation.stix_id not in _served(coll)
    upgrade()
    served = _served(coll)
    missing = {ref for obj in served.values() for ref in _refs(obj)} - set(served)
    assert missing == set()
    assert served[member.organisation.stix_id]["name"] == member.organisation.name
