"""The TLP 2.0 objects shipped with the platform: the five official marking definitions and
the extension definition they declare themselves through, valid STIX 2.1, in every export."""
import json

import stix2
from stix2validator import ValidationOptions, validate_string

from alliance.notes.posting import NoteDraft, post_note
from alliance.notes.reading import note_bundle
from alliance.stix.markings import tlp2_extension_definition, tlp2_objects
from tests.notes.helpers import identity

EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
OFFICIAL = {  # FIRST / OASIS published ids (cti-stix-common-objects)
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}


def test_the_five_markings_have_the_official_ids_and_point_at_the_extension():
    assert {level: m["id"] for level, m in tlp2_objects().items()} == OFFICIAL
    for level, marking in tlp2_objects().items():
        ext = marking["extensions"][EXTENSION]
        assert ext == {"extension_type": "property-extension", "tlp_2_0": level.lower()}


def test_the_extension_definition_is_valid_stix():
    definition = tlp2_extension_definition()
    assert definition["id"] == EXTENSION
    parsed = stix2.parse(definition, version="2.1")
    assert parsed.extension_types == ["property-extension"]
    assert "tlp-2.0" in parsed.schema


def test_every_export_carries_the_marking_and_its_extension(member, alliance):
    note = post_note(member, NoteDraft(
        title="Export", tlp="AMBER", alliance_ids=[alliance.id], objects=[identity("Someone")]))
    bundle = note_bundle(note)
    ids = [o["id"] for o in bundle["objects"]]
    assert OFFICIAL["AMBER"] in ids and EXTENSION in ids
    assert OFFICIAL["GREEN"] not in ids
    result = validate_string(json.dumps(bundle), ValidationOptions(version="2.1"))
    assert result.is_valid, [e.message for e in result.errors]
