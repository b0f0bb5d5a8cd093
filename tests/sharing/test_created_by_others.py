"""markings.created_by_others: the objects another identity created, which the platform
serves exactly as posted (their own markings, or none), listed in the upload preview for the
poster's information (issue 19)."""
from alliance.stix.markings import (
    EXTENSION_ID,
    TLP1_IDS,
    created_by_others,
    marking_id,
    tlp2_extension_definition,
)
from tests.notes.helpers import identity, indicator

POSTER = "identity--11111111-1111-4111-8111-111111111111"
MITRE_ID = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"
STATEMENT = "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"  # not a TLP marking
WHITE = next(ref for ref, level in TLP1_IDS.items() if level == "CLEAR")


def technique(**extra):
    return {"type": "attack-pattern", "spec_version": "2.1",
            "id": "attack-pattern--b6075259-b9a2-4cb3-9ba7-4f1b4e5b3d2e",
            "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
            "name": "Phishing", "created_by_ref": MITRE_ID,
            "object_marking_refs": [STATEMENT], **extra}


def test_a_mitre_technique_is_listed_with_its_creator_named_and_no_tlp():
    mitre = identity("The MITRE Corporation", id=MITRE_ID)
    obj = technique()
    assert created_by_others([mitre, obj], POSTER) == [{
        "id": obj["id"], "type": "attack-pattern", "name": "Phishing",
        "creator": "The MITRE Corporation", "creator_id": MITRE_ID, "levels": [],
        "granular": [], "other_markings": 1}]


def test_a_creator_not_in_the_objects_is_shown_by_its_id():
    [listed] = created_by_others([technique()], POSTER)
    assert listed["creator"] == MITRE_ID


def test_the_latest_version_of_the_creator_names_it():
    old = identity("MITRE", id=MITRE_ID, modified="2020-01-01T00:00:00.000Z",
                   created="2020-01-01T00:00:00.000Z")
    new = identity("The MITRE Corporation", id=MITRE_ID)
    assert created_by_others([new, technique(), old], POSTER)[0]["creator"] == \
        "The MITRE Corporation"


def test_objects_of_the_poster_or_with_no_creator_are_not_listed():
    objects = [indicator(created_by_ref=POSTER), indicator(), identity("No creator")]
    assert created_by_others(objects, POSTER) == []


def test_tlp_markings_are_listed_tlp1_white_reading_as_clear():
    objects = [indicator(created_by_ref=MITRE_ID,
                         object_marking_refs=[marking_id("GREEN"), STATEMENT]),
               indicator(created_by_ref=MITRE_ID, object_marking_refs=[WHITE]),
               indicator(created_by_ref=MITRE_ID, object_marking_refs=[
                   marking_id("AMBER"), marking_id("AMBER")])]
    assert [(o["levels"], o["other_markings"]) for o in created_by_others(objects, POSTER)] \
        == [(["GREEN"], 1), (["CLEAR"], 0), (["AMBER"], 0)]


def test_granular_tlp_markings_are_listed_with_their_selectors():
    obj = indicator(created_by_ref=MITRE_ID, granular_markings=[
        {"marking_ref": marking_id("RED"), "selectors": ["pattern", "name", "name"]},
        {"marking_ref": STATEMENT, "selectors": ["description"]}])
    [listed] = created_by_others([obj], POSTER)
    assert listed["levels"] == [] and listed["granular"] == [
        {"level": "RED", "selectors": ["name", "pattern"]}]


def test_marking_and_tlp_extension_definitions_are_not_listed():
    statement = {"type": "marking-definition", "spec_version": "2.1", "id": STATEMENT,
                 "created": "2017-06-01T00:00:00.000Z", "created_by_ref": MITRE_ID,
                 "definition_type": "statement", "definition": {"statement": "(c) MITRE"}}
    extension = tlp2_extension_definition()
    assert extension["id"] == EXTENSION_ID and extension["created_by_ref"] != POSTER
    assert created_by_others([statement, extension], POSTER) == []


def test_objects_of_the_wrong_shape_are_skipped_not_raised_on():
    objects = ["text", None, 5, {"type": "indicator"}, indicator(created_by_ref=["x"]),
               indicator(created_by_ref=MITRE_ID, object_marking_refs="nope",
                         granular_markings=[None, {"marking_ref": 7}], name=5),
               identity(None, id=MITRE_ID)]
    [listed] = created_by_others(objects, POSTER)
    assert listed["name"] is None and listed["levels"] == [] and listed["granular"] == []
    assert listed["creator"] == MITRE_ID and listed["other_markings"] == 0


def test_the_order_given_is_kept():
    objects = [indicator(created_by_ref=MITRE_ID, name=str(i)) for i in range(5)]
    assert [o["name"] for o in created_by_others(objects, POSTER)] == list("01234")
