"""TAXII 2.1 to the letter (OASIS TAXII 2.1, sections 1.6, 3, 5): points each seen against the
running server and written from the specification's wording.

- 3.4: added_after is "a single timestamp that filters objects to only include those objects
  added after the specified timestamp"; a client polls with the last page's
  X-TAXII-Date-Added-Last, so no two versions of a collection may share a date added.
- 5.x resources: `objects`, `versions` (and a manifest's `objects`) are optional lists, and
  STIX/TAXII lists are never empty: an empty page is `{"more": false}`; a status resource's
  `successes`, `failures`, `pendings` likewise.
- 3.4: a URL filter parameter is given at most once, with a value of its grammar; otherwise
  400.
- 1.6.8: media types are matched exactly; `application/taxii+json` without a version is the
  newest the server supports.
- RFC 9110 15.5.6: a 405 carries Allow."""
import json

import pytest

from alliance.apikeys.services import create_key
from alliance.taxii import reading, services
from alliance.taxii.services import alliance_collection_id
from tests.notes.helpers import indicator
from tests.taxii.live import posted_only

TAXII = "application/taxii+json;version=2.1"


def indicators(count: int, tag: int) -> list[dict]:
    return [indicator(f"[ipv4-addr:value = '10.{tag}.{i // 256}.{i % 256}']")
            for i in range(count)]


@pytest.fixture
def api(client, member, alliance):
    key = create_key(member, "SIEM")[1]
    base = f"/taxii2/api/collections/{alliance_collection_id(alliance.id)}"

    class Api:
        url = base
        headers = {"Authorization": f"Bearer {key}", "Accept": TAXII}

        def get(self, path, **params):
            return client.get(f"{base}{path}", query_string=params, headers=self.headers)

        def post(self, objects, content_type=TAXII):
            return client.post(f"{base}/objects/", data=json.dumps({"objects": objects}),
                               content_type=content_type, headers=self.headers)

    return Api()


def test_polling_with_added_after_returns_every_object_once(api):
    """Before: 36 objects posted in one envelope shared one date added; walking with
    added_after = X-TAXII-Date-Added-Last returned the first page and nothing more."""
    for tag in range(3):  # three envelopes, each many objects in one instant
        assert api.post(indicators(12, tag)).status_code == 202
    seen, after, dates = [], None, []
    for _ in range(100):
        params = {"limit": 5} | ({"added_after": after} if after else {})
        response = api.get("/objects/", **params)
        assert response.status_code == 200
        body = response.json
        if "objects" not in body:
            break
        seen += [o["id"] for o in body["objects"]]
        after = response.headers["X-TAXII-Date-Added-Last"]
        manifest = api.get("/manifest/", **params).json
        dates += [e["date_added"] for e in manifest["objects"]]
    assert len(seen) == len(set(seen))
    assert len(posted_only(seen)) == 3 * 13  # each envelope's objects and its report (and, once,
    # the platform's objects that make its references resolve)
    assert dates == sorted(dates) and len(set(dates)) == len(dates)


def test_an_empty_result_has_no_objects_or_versions_key(api):
    assert api.get("/objects/").json == {"more": False}
    assert api.get("/manifest/").json == {"more": False}
    assert api.post([indicator()]).status_code == 202
    last = api.get("/objects/").headers["X-TAXII-Date-Added-Last"]
    assert api.get("/objects/", added_after=last).json == {"more": False}
    assert api.get("/manifest/", added_after=last).json == {"more": False}
    nothing = reading.Page(rows=[], added=[], more=False, next=None)
    assert reading.versions(nothing) == {"more": False}
    assert reading.envelope(nothing) == reading.manifest(nothing) == {"more": False}


def test_a_status_omits_empty_lists(api):
    status = api.post([indicator()]).json
    assert status["successes"] and "failures" not in status and "pendings" not in status
    assert status["failure_count"] == 0 and status["pending_count"] == 0


@pytest.mark.parametrize("query", [
    "match[type]=indicator&match[type]=identity", "limit=1&limit=2",
    "added_after=2024-01-01T00:00:00Z&added_after=2024-01-02T00:00:00Z",
    "match[spec_version]=two", "match[spec_version]=2.1,2", "match[version]=all,first",
    "match[version]=last,all", "match[version]=sometime",
    "match[id]=not-a-stix-id", "match[type]=Not%20A%20Type", "match[id]=",
])
def test_a_parameter_twice_or_outside_its_grammar_is_a_400(api, client, query):
    for path in ("/objects/", "/manifest/"):
        response = client.get(f"{api.url}{path}?{query}", headers=api.headers)
        assert response.status_code == 400, (path, query, response.get_data(as_text=True))
        assert response.content_type == TAXII
        assert response.json["http_status"] == "400"


@pytest.mark.parametrize("query", ["match[spec_version]=2.1,2.0", "match[version]=first,last",
                                   "match[version]=2024-01-01T00:00:00Z,last",
                                   "match[type]=indicator,x-custom-thing"])
def test_values_of_the_grammar_are_taken(api, client, query):
    assert client.get(f"{api.url}/objects/?{query}", headers=api.headers).status_code == 200


@pytest.mark.parametrize("content_type", ["application/taxii+json;version=2.10",
                                          "application/taxii+json;version=2.1x",
                                          "application/taxii+json;version=2.1;version=2.0",
                                          "application/taxii+json+xml;version=2.1",
                                          "application/stix+json;version=2.1"])
def test_a_content_type_that_is_not_taxii_2_1_is_a_415(api, content_type):
    assert api.post([indicator()], content_type=content_type).status_code == 415


@pytest.mark.parametrize("content_type", ["application/taxii+json",
                                          "application/taxii+json; version=2.1",
                                          'application/taxii+json;version="2.1"',
                                          "Application/TAXII+JSON;Version=2.1; charset=utf-8"])
def test_taxii_2_1_and_a_bare_taxii_type_are_taken(api, content_type):
    response = api.post([indicator()], content_type=content_type)
    assert response.status_code == 202, response.get_data(as_text=True)


def test_accept_versions_are_matched_exactly(api, client):
    for accept, status in [("application/taxii+json;version=2.10", 406),
                           ("application/taxii+json;version=2.1x", 406),
                           ("application/taxii+json", 200)]:
        response = client.get(f"{api.url}/objects/",
                              headers=api.headers | {"Accept": accept})
        assert response.status_code == status, accept


@pytest.mark.parametrize(("method", "path"), [("PUT", "/objects/"), ("DELETE", "/manifest/"),
                                              ("POST", "/"), ("PATCH", "/objects/x/")])
def test_a_taxii_405_says_what_is_allowed(api, client, method, path):
    response = client.open(f"{api.url}{path}", method=method, headers=api.headers)
    assert response.status_code == 405
    assert response.headers.get("Allow"), response.headers
    assert method not in response.headers["Allow"]


def test_a_page_405_says_what_is_allowed(client):
    response = client.open("/taxii2/", method="DELETE")
    assert response.content_type == TAXII
    assert response.status_code == 405 and "GET" in response.headers.get("Allow", "")
    response = client.put("/auth/sign-in")
    assert response.status_code == 405 and "POST" in response.headers.get("Allow", "")
    response = client.get("/auth/sign-out")
    assert response.status_code == 405 and response.headers.get("Allow") == "OPTIONS, POST"


def test_delete_with_match_version_deletes_only_the_versions_it_names(api, client):
    """TAXII 2.1 5.7: match[version] narrows what DELETE removes. Before: every version
    went, whatever match[version] said."""
    v1 = indicator(created="2024-05-01T00:00:00.000Z", modified="2024-05-01T00:00:00.000Z")
    v2 = dict(v1, modified="2024-06-01T00:00:00.000Z", name="C2 address, confirmed")
    assert api.post([v1]).status_code == 202
    assert api.post([v2]).status_code == 202
    url = f"{api.url}/objects/{v1['id']}/"

    gone = client.delete(f"{url}?match[version]={v1['modified']}", headers=api.headers)

    assert gone.status_code == 200, gone.get_data(as_text=True)
    assert api.get(f"/objects/{v1['id']}/versions/").json["versions"] == [v2["modified"]]
    assert client.delete(f"{url}?match[version]={v1['modified']}",
                         headers=api.headers).status_code == 404  # nothing of it is left
    assert client.delete(f"{url}?match[version]=all,first",
                         headers=api.headers).status_code == 400
    assert client.delete(f"{url}?match[version]=last", headers=api.headers).status_code == 200
    assert api.get(f"/objects/{v1['id']}/").status_code == 404


def test_collection_and_status_ids_are_version_4_and_the_old_ids_still_answer(api, client,
                                                                              member, alliance):
    """TAXII 2.1 (4.2, 4.3): collection and status ids are UUIDv4. They used to be version 5;
    a client that stored one keeps working."""
    import uuid

    listed = client.get("/taxii2/api/collections/", headers=api.headers).get_json()
    ids = [c["id"] for c in listed["collections"]]
    assert ids and all(uuid.UUID(i).version == 4 for i in ids)
    posted = api.post([indicator()])
    assert posted.status_code == 202
    status_id = posted.get_json()["id"]
    assert uuid.UUID(status_id).version == 4
    assert client.get(f"/taxii2/api/status/{status_id}/", headers=api.headers).status_code == 200

    old = str(uuid.uuid5(services.NAMESPACE, f"alliance:{alliance.id}"))
    assert old not in ids
    again = client.get(f"/taxii2/api/collections/{old}/objects/", headers=api.headers)
    assert again.status_code == 200 and len(posted_only(again.get_json()["objects"])) == 2  # and
    # its report
