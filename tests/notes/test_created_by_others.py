"""The upload preview lists the objects another identity created (an ATT&CK technique, a
vendor's report): the platform serves them exactly as posted, with their own markings or
none, so the poster sees what goes out unmarked before sharing (issue 19). Informative only:
sharing needs no confirmation for them."""
import io

import orjson
import pytest

from alliance.stix.markings import marking_id
from tests.notes.helpers import bundle, counts, identity, indicator

MITRE_ID = "identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5"
STATEMENT = "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168"
SECTION = 'id="created-by-others"'


def mitre_objects(**technique_extra):
    mitre = identity("The MITRE Corporation", id=MITRE_ID,
                     created="2017-06-01T00:00:00.000Z", modified="2017-06-01T00:00:00.000Z")
    statement = {"type": "marking-definition", "spec_version": "2.1", "id": STATEMENT,
                 "created": "2017-06-01T00:00:00.000Z", "created_by_ref": MITRE_ID,
                 "definition_type": "statement",
                 "definition": {"statement": "Copyright 2015-2024, The MITRE Corporation."}}
    technique = {"type": "attack-pattern", "spec_version": "2.1",
                 "id": "attack-pattern--a62a8db3-f23a-4d8f-afd6-9dbc77e7813b",
                 "created": "2020-03-02T18:45:07.892Z", "modified": "2023-10-01T02:28:45.147Z",
                 "name": "Phishing", "created_by_ref": MITRE_ID,
                 "object_marking_refs": [STATEMENT], **technique_extra}
    return mitre, statement, technique


def send(client, alliance, objects, *, action="preview", tlp="AMBER", as_file=False,
         **extra):
    raw = orjson.dumps(bundle(*objects))
    data = {"title": "Re-shared", "tlp": tlp, "alliances": str(alliance.id), action: "1",
            **extra}
    if as_file:
        data["bundle_file"] = (io.BytesIO(raw), "bundle.json", "application/json")
        return client.post("/notes/new/bundle", data=data, content_type="multipart/form-data")
    data["bundle_text"] = raw.decode()
    return client.post("/notes/new/bundle", data=data)


def others_table(page: str) -> str:
    start = page.index('id="others-table"')
    return page[start:page.index("</table>", start)]


@pytest.mark.parametrize("as_file", [False, True], ids=["pasted", "file"])
def test_the_preview_lists_a_mitre_technique_with_its_creator_and_no_tlp(
        as_member, alliance, as_file):
    mitre, statement, technique = mitre_objects()
    response = send(as_member, alliance, [mitre, statement, technique], as_file=as_file)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="audience-preview"' in page and SECTION in page
    assert "Served as posted: created by others" in page
    table = others_table(page)
    assert "<caption>" in table and '<th scope="col">Created by</th>' in table
    assert technique["id"] in table and "<code>attack-pattern</code>" in table
    assert "Phishing" in table and "The MITRE Corporation" in table
    assert '<strong class="no-tlp">no TLP marking</strong>' in table
    assert "1 other marking (not TLP)" in table
    assert table.count("<tr>") == 2  # the header and the technique (not the marking, not MITRE)
    # Informative only: no confirmation is asked for, and nothing is stored by a preview.
    assert 'name="confirm_looser"' not in page and 'id="looser-markings"' not in page
    assert counts() == (0, 0, 0)


def test_a_creator_not_in_the_bundle_is_shown_by_its_id_and_tlp_markings_are_shown(
        as_member, alliance):
    _, _, technique = mitre_objects(object_marking_refs=[marking_id("AMBER")])
    page = send(as_member, alliance, [technique]).get_data(as_text=True)
    table = others_table(page)
    assert f'<code class="break">{MITRE_ID}</code>' in table
    assert "TLP:AMBER" in table and "no TLP marking" not in table


def test_objects_of_the_poster_or_with_no_creator_are_not_listed(as_member, alliance,
                                                                  member):
    own = indicator(created_by_ref=member.organisation.stix_id)
    response = send(as_member, alliance, [own, indicator(), identity("Unnamed vendor")])
    assert response.status_code == 200
    assert b'id="audience-preview"' in response.data and SECTION.encode() not in response.data


def test_names_are_escaped(as_member, alliance):
    vendor = identity("<script>alert(1)</script> Labs")
    report = {"type": "report", "spec_version": "2.1",
              "id": "report--0b3b6d6e-3c9b-4d0a-9f57-2a8b7f6f5c11",
              "created": "2024-05-01T12:00:00.000Z", "modified": "2024-05-01T12:00:00.000Z",
              "name": "<img src=x onerror=alert(2)>", "published": "2024-05-01T12:00:00.000Z",
              "object_refs": [vendor["id"]], "created_by_ref": vendor["id"]}
    page = send(as_member, alliance, [vendor, report]).get_data(as_text=True)
    table = others_table(page)
    assert "&lt;img src=x onerror=alert(2)&gt;" in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Labs" in table
    assert "<img src=x" not in page and "<script>alert" not in page


def test_sharing_them_needs_no_confirmation(as_member, alliance):
    response = send(as_member, alliance, list(mitre_objects()), action="post")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert counts()[0] == 1
