"""A value of the wrong JSON kind that the stix2 library would turn into the right one (5 into
"5", "abc" into ["abc"], "50" into 50), or null or [] that it would take as absent, is
refused: the body is stored and served as posted, so keeping it would serve invalid STIX 2.1
over TAXII and in downloads."""
import json

import pytest
from stix2validator import ValidationOptions, validate_instance

from alliance.apikeys.services import create_key
from alliance.notes import posting
from alliance.stix.validation import BundleRejected, check_object
from alliance.taxii.services import alliance_collection_id
from tests.notes.helpers import counts, identity, indicator

TAXII = "application/taxii+json;version=2.1"

COERCED = [({"name": 5}, "name", "a number where STIX 2.1 has a string"),
           ({"name": ["a", "b"]}, "name", "a list where STIX 2.1 has a string"),
           ({"description": {"x": 1}}, "description", "an object where STIX 2.1 has a string"),
           ({"labels": "abc"}, "labels", "a string where STIX 2.1 has a list"),
           ({"confidence": "50"}, "confidence", "a string where STIX 2.1 has a number"),
           ({"revoked": "true"}, "revoked", "a string where STIX 2.1 has true or false"),
           ({"external_references": [{"source_name": 7, "url": "https://a.example/"}]},
            "external_references[0].source_name", "a number where STIX 2.1 has a string"),
           ({"description": None}, "description", "null where STIX 2.1 has no value: leave "
                                                  "the property out"),
           ({"labels": []}, "labels", "an empty list: STIX 2.1 lists hold at least one item "
                                      "(leave the property out)")]


@pytest.mark.parametrize(("extra", "where", "reason"), COERCED)
def test_a_coerced_value_is_refused_naming_where(extra, where, reason):
    obj = dict(indicator(), **extra)
    # The premise: the reference validator refuses it.
    assert not validate_instance(obj, ValidationOptions(version="2.1")).is_valid

    [problem] = check_object(obj)

    assert (problem.object_id, problem.property, problem.reason) == (obj["id"], where, reason)


@pytest.mark.parametrize(("extra", "_where", "_reason"), COERCED[:5])
def test_nothing_is_stored_over_taxii(client, member, alliance, extra, _where, _reason):
    key = create_key(member, "SIEM")[1]
    before = counts()

    response = client.post(
        f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/",
        data=json.dumps({"objects": [identity("Us"), dict(indicator(), **extra)]}),
        content_type=TAXII, headers={"Authorization": f"Bearer {key}", "Accept": TAXII})

    assert response.status_code == 422, response.get_data(as_text=True)
    assert counts() == before


def test_a_bundle_upload_is_refused_whole(member, alliance):
    good, bad = identity("Us"), dict(indicator(), labels="abc")
    before = counts()

    with pytest.raises(BundleRejected) as caught:
        posting.post_note(member, posting.NoteDraft(
            title="Coerced", tlp="AMBER", alliance_ids=[alliance.id], objects=[good, bad]))

    assert [(p.object_id, p.property) for p in caught.value.problems] == [(bad["id"], "labels")]
    assert counts() == before


@pytest.mark.parametrize("extra", [{}, {"confidence": 50}, {"labels": ["a"]},
                                   {"x_custom": 5, "x_other": ["a", {"b": 1}]},
                                   {"external_references": [
                                       {"source_name": "cve", "external_id": "CVE-2024-1"}]}])
def test_values_of_the_right_kind_still_pass_the_full_check(extra):
    # granular_markings sends the object past the fast path to stix2 itself.
    obj = dict(indicator(), granular_markings=[{"selectors": ["name"], "marking_ref":
               "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"}], **extra)
    assert check_object(obj) == []
