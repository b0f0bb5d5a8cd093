"""TAXII 2.1 conformance, driven over real HTTP by the OASIS taxii2-client against the app
served on loopback: discovery, API root, collections per membership, the ATT&CK Mobile bundle
added in envelopes and paged back unchanged (equal to the web export of the same notes, bar
the TLP 2.0 definitions the export adds; served objects pass stix2-validator), every filter,
object by id, versions, manifest, status, delete, X-TAXII-Date-Added-First/Last headers equal
to the real date added, TAXII error bodies, and `application/taxii+json;version=2.1` on every
answer (the `answers` fixture checks each one)."""
import random
import uuid
from types import SimpleNamespace

import orjson
import pytest
import requests
import stix2
from sqlalchemy import select
from stix2validator import ValidationOptions, validate_instance
from taxii2client.common import _HTTPConnection
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from alliance.apikeys.services import create_key, revoke_key
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.notes.reading import note_bundle
from alliance.stix.markings import (
    EXTENSION_ID,
    marking_id,
    tlp2_extension_creator,
    tlp2_extension_definition,
)
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests import factories
from tests.notes.helpers import CORPUS, counts, identity, indicator, sid
from tests.taxii.live import (
    RFC3339,
    TAXII,
    BearerAuth,
    chunks_in_reference_order,
    date_of,
    posted_only,
    recording,
    served_with_ids,
    stored_dates,
    version_of,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:stix2validator.*")

ATTACK_MOBILE = CORPUS / "valid" / "attack__mobile-attack-17.1.json"
STIX = "application/stix+json;version=2.1"
T1, T2, T3 = "2024-05-02T08:00:00.000Z", "2024-06-01T12:00:00.000Z", "2024-07-01T12:00:00.000Z"
VALIDATION = ValidationOptions(version="2.1")


@pytest.fixture(autouse=True)
def answers(live):
    with recording(live) as seen:
        yield seen


@pytest.fixture
def keys(member, coordinator):
    member_row, member_key = create_key(member, "SIEM")
    return SimpleNamespace(member=member_key, member_row=member_row,
                           coordinator=create_key(coordinator, "TIP")[1])


def api_root(live, key, bearer=False) -> ApiRoot:
    auth = {"auth": BearerAuth(key)} if bearer else {"user": "key", "password": key}
    return ApiRoot(f"{live}/taxii2/api/", **auth)


def collection(live, key, collection_id, bearer=False) -> Collection:
    auth = {"auth": BearerAuth(key)} if bearer else {"user": "key", "password": key}
    return Collection(f"{live}/taxii2/api/collections/{collection_id}/", **auth)


def http(key=None) -> requests.Session:
    session = requests.Session()
    session.headers["Accept"] = TAXII
    if key:
        session.auth = ("key", key)
    return session


def key_of(obj: dict) -> tuple[str, str]:
    return obj["id"], version_of(obj) or ""


def walk(session, url, **params) -> list[tuple[requests.Response, dict]]:
    """Every page of a paged endpoint, following `next`."""
    pages = []
    while True:
        response = session.get(url, params=params)
        assert response.status_code == 200, response.text
        pages.append((response, response.json()))
        if not pages[-1][1].get("more"):
            assert "next" not in pages[-1][1]
            return pages
        params = {**params, "next": pages[-1][1]["next"]}


def assert_headers(response, first: str, last: str) -> None:
    """X-TAXII-Date-Added-First/Last: RFC 3339, the real date added of the first and last
    object of the page."""
    got = (response.headers["X-TAXII-Date-Added-First"],
           response.headers["X-TAXII-Date-Added-Last"])
    assert got == (first, last)
    assert all(RFC3339.match(value) for value in got), got


def taxii_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == TAXII
    body = response.json()
    assert body["http_status"] == str(status) and body["title"], body
    return body


def refused(call, status: int) -> dict:
    """A taxii2-client call the server refuses: the TAXII error message it answered."""
    with pytest.raises(requests.HTTPError) as caught:
        call()
    return taxii_error(caught.value.response, status)


def valid(objects) -> None:
    for obj in objects:
        result = validate_instance(obj, VALIDATION)
        assert result.is_valid, (obj["id"], [e.message for e in result.errors])


def fresh_notes(organisation_id) -> list[Note]:
    db.session.rollback()
    db.session.expire_all()
    return db.session.scalars(select(Note).where(Note.organisation_id == organisation_id)
                              .order_by(Note.id)).all()


# --- discovery, API root, collections -------------------------------------------------------

def test_discovery_and_api_root_with_basic_and_bearer(live, app, keys, member, client):
    for auth in ({"user": "key", "password": keys.member}, {"auth": BearerAuth(keys.member)}):
        server = Server(f"{live}/taxii2/", **auth)
        assert server.title == "CyberPeace Alliance TAXII 2.1" and server.description
        assert [root.url for root in server.api_roots] == [f"{live}/taxii2/api/"]
        root = server.default
        assert root is server.api_roots[0]
        assert root.title and root.versions == [TAXII]
        assert root.max_content_length == app.config["STIX_MAX_BYTES"]
        assert len(root.collections) == 2
    # Bearer set on the connection's own session, as a client library user would.
    conn = _HTTPConnection(version="2.1")
    conn.session.headers["Authorization"] = f"Bearer {keys.member}"
    assert [c.id for c in ApiRoot(f"{live}/taxii2/api/", conn=conn).collections] == [
        c.id for c in root.collections]

    anonymous = requests.get(f"{live}/taxii2/", headers={"Accept": TAXII})
    taxii_error(anonymous, 401)
    assert "Basic" in anonymous.headers["WWW-Authenticate"]
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    for headers in ({"Authorization": "Bearer cpa_nope_nope"},
                    {"Authorization": f"Token {keys.member}"}):
        taxii_error(requests.get(f"{live}/taxii2/api/", headers={"Accept": TAXII, **headers}),
                    401)
    # A signed-in browser session is no key.
    factories.login(client, member)
    response = client.get("/taxii2/api/collections/", headers={"Accept": TAXII})
    assert response.status_code == 401 and response.content_type == TAXII
    # Only TAXII is spoken.
    taxii_error(http(keys.member).get(f"{live}/taxii2/", headers={"Accept": "text/html"}), 406)
    # A revoked key stops working on the next request.
    revoke_key(member, keys.member_row.id)
    refused(lambda: Server(f"{live}/taxii2/", user="key", password=keys.member).refresh(), 401)


def test_unknown_paths_methods_and_rate_limit_answer_taxii_errors(live, app, keys, alliance,
                                                                 monkeypatch):
    session = http(keys.member)
    objects = f"{live}/taxii2/api/collections/{alliance_collection_id(alliance.id)}/objects/"
    taxii_error(session.get(f"{live}/taxii2/api/nothing-here/"), 404)
    taxii_error(session.get(f"{live}/taxii2/api/status/not-a-status/"), 404)
    taxii_error(session.put(objects, data=b"{}", headers={"Content-Type": TAXII}), 405)
    taxii_error(session.delete(f"{live}/taxii2/api/collections/"), 405)
    monkeypatch.setitem(app.config, "TAXII_RATE_LIMIT", "3 per minute")
    statuses = [session.get(objects).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    taxii_error(session.get(objects), 429)


def test_collections_follow_membership_and_keep_their_ids(live, keys, member, coordinator,
                                                          alliance):
    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(pacific, member.organisation, "requested")
    atlantic_id = alliance_collection_id(alliance.id)
    own_id = organisation_collection_id(member.organisation_id)

    root = api_root(live, keys.member)
    listed = [(c.id, c.title, c.can_read, c.can_write) for c in root.collections]
    assert [(i, r, w) for i, _, r, w in listed] == [(atlantic_id, True, True),
                                                    (own_id, True, False)]
    assert all(c.media_types == [STIX] for c in root.collections)
    root.refresh_collections()
    assert [(c.id, c.title, c.can_read, c.can_write) for c in root.collections] == listed
    bearer = api_root(live, keys.member, bearer=True)
    assert [(c.id, c.title, c.can_read, c.can_write) for c in bearer.collections] == listed

    # Decided on every request: an active membership adds a collection, leaving removes it.
    factories.add_member(pacific, member.organisation, "active")
    root.refresh_collections()
    assert {c.id for c in root.collections} == {atlantic_id, own_id,
                                                alliance_collection_id(pacific.id)}
    factories.add_member(pacific, member.organisation, "left")
    root.refresh_collections()
    assert [c.id for c in root.collections] == [atlantic_id, own_id]

    # Another organisation's key: the same id for the shared alliance, its own collection.
    theirs = {c.id: c for c in api_root(live, keys.coordinator).collections}
    assert set(theirs) == {atlantic_id, alliance_collection_id(pacific.id),
                           organisation_collection_id(coordinator.organisation_id)}
    assert theirs[atlantic_id].can_write

    # A collection by URL; one the key cannot see is a 404 like one that does not exist.
    own = collection(live, keys.member, own_id)
    assert (own.id, own.can_read, own.can_write) == (own_id, True, False)
    assert own.get_objects() == {"more": False}  # no empty list (TAXII 2.1 3.7)
    with pytest.raises(AccessError):
        own.add_objects({"objects": [indicator()]})
    session = http(keys.member)
    taxii_error(session.post(f"{own.url}objects/", data=orjson.dumps({"objects": [indicator()]}),
                             headers={"Content-Type": TAXII}), 403)
    for hidden in (organisation_collection_id(coordinator.organisation_id),
                   alliance_collection_id(pacific.id), "not-a-collection"):
        taxii_error(session.get(f"{live}/taxii2/api/collections/{hidden}/"), 404)
        taxii_error(session.get(f"{live}/taxii2/api/collections/{hidden}/objects/"), 404)


# --- the ATT&CK Mobile bundle, in and out ---------------------------------------------------

def test_attack_mobile_round_trip(live, keys, member, alliance, client):
    objects = orjson.loads(ATTACK_MOBILE.read_bytes())["objects"]
    assert len(objects) == 2148
    chunks = chunks_in_reference_order(objects, 500)
    assert len(chunks) == 5 and sum(map(len, chunks)) == len(objects)
    root = api_root(live, keys.member)
    atlantic = collection(live, keys.member, alliance_collection_id(alliance.id))
    statuses = []
    for chunk in chunks:
        status = atlantic.add_objects({"objects": chunk}, wait_for_completion=False)
        assert (status.status, status.total_count, status.success_count, status.failure_count,
                status.pending_count) == ("complete", len(chunk), len(chunk), 0, 0)
        assert [(s["id"], s["version"]) for s in status.successes] == [
            (o["id"], version_of(o)) for o in chunk]
        statuses.append(status)
    for status in statuses:
        again = root.get_status(status.id)
        assert (again.id, again.status, again.total_count, again.success_count,
                again.successes) == (status.id, "complete", status.total_count,
                                     status.success_count, status.successes)
    notes = fresh_notes(member.organisation_id)
    assert len(notes) == len(chunks)

    # Paged back with limit and next (taxii2-client's as_pages).
    pages = list(as_pages(atlantic.get_objects, per_request=200))
    assert all(len(p["objects"]) == 200 and p["more"] and p["next"] for p in pages[:-1])
    assert pages[-1]["more"] is False and "next" not in pages[-1]
    served = [o for p in pages for o in p["objects"]]
    assert len({key_of(o) for o in served}) == len(served)
    ours = posted_only(served)  # beside them: what makes the platform's refs resolve
    assert {o["id"] for o in served} - {o["id"] for o in ours} == {
        ref for o in served for ref in (o.get("created_by_ref"),
                                        *o.get("object_marking_refs", []))
        if ref in served_with_ids()} | {tlp2_extension_definition()["id"],
                                        tlp2_extension_creator()["id"]}
    by_key = {key_of(o): o for o in ours}
    assert len(by_key) == len(ours) == len(objects) + len(notes)
    assert len({n.tlp for n in notes}) == 1  # the alliance's default: nothing is marked
    sent = {key_of(o): factories.as_served(o, member.organisation.stix_id, notes[0].tlp)
            for o in objects}
    assert {k: by_key.get(k) for k in sent} == sent  # same (id, modified), identical bodies
    assert {k[0] for k in set(by_key) - set(sent)} == {n.report_id for n in notes}

    # In (date added, row id) order, with the real dates in the headers of every page.
    dates = stored_dates()
    assert len(dates) == len(served)
    added = [date_of(o, dates) for o in served]
    assert added == sorted(added)
    session = http(keys.member)
    walked = walk(session, f"{atlantic.url}objects/", limit=1000)
    assert [len(b["objects"]) for _, b in walked] == [1000, 1000, len(served) - 2000]
    assert [o for _, b in walked for o in b["objects"]] == served
    for response, body in walked:
        assert_headers(response, date_of(body["objects"][0], dates),
                       date_of(body["objects"][-1], dates))
    manifest = walk(session, f"{atlantic.url}manifest/", limit=700)
    assert [e for _, b in manifest for e in b["objects"]] == [
        {"id": o["id"], "date_added": date_of(o, dates), "version": version_of(o),
         "media_type": STIX} for o in served]
    for response, body in manifest:
        assert_headers(response, body["objects"][0]["date_added"],
                       body["objects"][-1]["date_added"])

    # The same through Bearer, and through the organisation's own (read-only) collection.
    bearer = collection(live, keys.member, alliance_collection_id(alliance.id), bearer=True)
    assert bearer.get_objects(limit=150)["objects"] == served[:150]
    own = collection(live, keys.member, organisation_collection_id(member.organisation_id))
    assert [o for p in as_pages(own.get_objects, per_request=1000) for o in p["objects"]] == \
        served

    # What the web export of the same notes gives: the same versions with the same bodies,
    # and beside them the same objects that make every reference resolve (the poster's
    # identity, the TLP 2.0 definitions, the extension's creator).
    exported = {key_of(o): o for note in notes for o in note_bundle(note)["objects"]}
    assert exported == {key_of(o): o for o in served}
    assert {EXTENSION_ID, marking_id("AMBER"), tlp2_extension_creator()["id"],
            member.organisation.stix_id} <= {stix_id for stix_id, _ in exported}
    factories.login(client, member)
    download = client.get(f"/notes/{notes[0].uuid}/bundle.json")
    assert download.status_code == 200
    downloaded = orjson.loads(download.data)
    assert downloaded["objects"] == note_bundle(notes[0])["objects"]
    assert uuid.UUID(downloaded["id"].split("--")[1]).version == 4  # a new wrapper each time

    # stix2-validator accepts what is served (a sample: ~5 ms an object), every report.
    sample = random.Random(2148).sample(served, 300)
    valid(sample + [by_key[k] for k in set(by_key) - set(sent)])


# --- filters, object by id, versions, manifest ----------------------------------------------

def _small_world(live, keys, alliance, member):
    """Three envelopes (three notes, three dates added): an identity in three versions, two
    indicators, a malware and an SCO, each sent as the platform serves it (the poster's
    creator and the note's TLP marking, which the platform adds where they are missing)."""
    ident = sid("identity")
    v1 = identity("Sample Org", id=ident, created=T1, modified=T1)
    v2 = identity("Sample Org (renamed)", id=ident, created=T1, modified=T2)
    v3 = identity("Sample Org (merged)", id=ident, created=T1, modified=T3)
    ind1 = indicator(created=T1, modified=T1, valid_from=T1)
    ind2 = indicator("[domain-name:value = 'evil.example']", created=T2, modified=T2,
                     valid_from=T2)
    mal = {"type": "malware", "spec_version": "2.1", "id": sid("malware"), "created": T1,
           "modified": T1, "name": "Tiny", "is_family": False}
    ip = orjson.loads(stix2.IPv4Address(value="203.0.113.9").serialize())
    v1, v2, v3, ind1, ind2, mal, ip = (
        factories.as_served(o, member.organisation.stix_id, alliance.default_tlp)
        for o in (v1, v2, v3, ind1, ind2, mal, ip))
    atlantic = collection(live, keys.member, alliance_collection_id(alliance.id))
    envelopes = [[v1, ind1, mal], [v2, ind2, ip], [v3]]
    statuses = [atlantic.add_objects({"objects": e}, wait_for_completion=False)
                for e in envelopes]
    return SimpleNamespace(ident=ident, v1=v1, v2=v2, v3=v3, ind1=ind1, ind2=ind2, mal=mal,
                           ip=ip, envelopes=envelopes, statuses=statuses, collection=atlantic)


def test_filters(live, keys, member, alliance):
    w = _small_world(live, keys, alliance, member)
    notes = fresh_notes(member.organisation_id)
    dates = stored_dates()
    reports = [next(k for k in dates if k[0] == n.report_id) for n in notes]
    k = {name: key_of(getattr(w, name)) for name in ("v1", "v2", "v3", "ind1", "ind2", "mal",
                                                      "ip")}
    # Served beside the first envelope's objects: what makes the platform's references
    # resolve (the poster's identity, the TLP 2.0 definitions).
    platform = {key for key in dates if key[0] in served_with_ids()}
    assert {stix_id for stix_id, _ in platform} >= {member.organisation.stix_id}
    latest = {k["v3"], k["ind1"], k["ind2"], k["mal"], k["ip"], *reports, *platform}
    everything = latest | {k["v1"], k["v2"]}

    def got(**filters) -> set:
        found = [o for p in as_pages(w.collection.get_objects, per_request=1000, **filters)
                 for o in p.get("objects", [])]
        assert len(found) == len({key_of(o) for o in found})
        return {key_of(o) for o in found}

    assert got() == got(version="last") == got(spec_version="2.1") == latest
    assert got(version="all") == everything
    assert got(version="first") == latest - {k["v3"]} | {k["v1"]}
    assert got(version=["first", "last"]) == latest | {k["v1"]}
    # Exact timestamps, however the instant is spelled; several match any.
    for spelling in (T2, "2024-06-01T12:00:00Z", "2024-06-01T12:00:00.000000Z",
                     "2024-06-01T14:00:00.000+02:00"):
        assert got(version=spelling) == {k["v2"], k["ind2"]}, spelling
    assert got(version=[T1, T3]) == {k["v1"], k["v3"], k["ind1"], k["mal"]}
    assert got(version="2020-01-01T00:00:00.000Z") == set()
    assert got(type="indicator") == {k["ind1"], k["ind2"]}
    assert got(type=["indicator", "malware", "ipv4-addr"]) == {k["ind1"], k["ind2"], k["mal"],
                                                               k["ip"]}
    assert got(type="report") == set(reports)
    assert got(id=[w.ind1["id"], w.mal["id"], w.ip["id"], sid("indicator")]) == {
        k["ind1"], k["mal"], k["ip"]}
    assert got(id=w.ident, version="all") == {k["v1"], k["v2"], k["v3"]}
    assert got(id=w.ident, type="indicator") == set()
    assert got(spec_version="2.0") == set()
    assert got(spec_version=["2.0", "2.1"]) == latest
    # added_after: strictly after the first envelope's dates added (the last of them: each
    # object of an envelope has a date of its own).
    first_added = max(dates[key] for key in (k["v1"], k["ind1"], k["mal"], reports[0],
                                             *platform))
    assert got(added_after=first_added) == {k["v3"], k["ind2"], k["ip"], *reports[1:]}
    assert got(added_after=first_added, version="all") == {k["v2"], k["v3"], k["ind2"],
                                                            k["ip"], *reports[1:]}
    assert got(added_after=first_added, version="all", type="identity") == {k["v2"], k["v3"]}
    assert got(added_after=max(dates.values())) == set()
    assert got(added_after="2000-01-01T00:00:00Z") == latest

    # Everything served passes stix2-validator.
    valid(o for p in as_pages(w.collection.get_objects, per_request=1000, version="all")
          for o in p["objects"])


def test_versions_compare_as_instants_whatever_their_precision(live, keys, member, alliance):
    """STIX timestamps may carry any number of fraction digits: `first`, `last` and exact
    match[version] compare instants, not strings ("12:00:00Z" < "12:00:00.5Z")."""
    ident = sid("identity")
    spelled = ["2024-06-01T12:00:00Z", "2024-06-01T12:00:00.5Z", "2024-06-01T12:00:00.75Z",
               "2024-06-01T12:00:01.1Z"]
    versions = [factories.as_served(identity("Sample Org", id=ident, created=spelled[0],
                                             modified=m),
                                    member.organisation.stix_id, alliance.default_tlp)
                for m in spelled]
    atlantic = collection(live, keys.member, alliance_collection_id(alliance.id))
    for obj in (versions[1], versions[0], versions[3], versions[2]):  # not in time order
        atlantic.add_objects({"objects": [obj]}, wait_for_completion=False)

    assert atlantic.get_object(ident)["objects"] == [versions[3]]
    assert atlantic.get_object(ident, version="last")["objects"] == [versions[3]]
    assert atlantic.get_object(ident, version="first")["objects"] == [versions[0]]
    for query, expected in (("2024-06-01T12:00:00.500Z", 1), ("2024-06-01T12:00:00.5Z", 1),
                            ("2024-06-01T12:00:00.750000Z", 2), ("2024-06-01T12:00:00.000Z", 0),
                            ("2024-06-01T12:00:01.100Z", 3)):
        assert atlantic.get_object(ident, version=query)["objects"] == [versions[expected]], \
            query
    assert {e["version"] for e in atlantic.get_manifest(version="all")["objects"]
            if e["id"] == ident} == set(spelled)
    # (Not run through stix2-validator: it wants created/modified to the millisecond, while
    # posting accepts any RFC 3339 precision — these objects are served exactly as posted.)


def test_object_versions_manifest_headers_and_status(live, keys, member, alliance):
    w = _small_world(live, keys, alliance, member)
    dates = stored_dates()
    atlantic = w.collection
    ip_added = dates[(w.ip["id"], "")]

    # Object by id: the latest version unless match[version] says otherwise.
    assert atlantic.get_object(w.ident)["objects"] == [w.v3]
    assert atlantic.get_object(w.ident, version="all")["objects"] == [w.v1, w.v2, w.v3]
    assert atlantic.get_object(w.ident, version="first")["objects"] == [w.v1]
    assert atlantic.get_object(w.ident, version=T2)["objects"] == [w.v2]
    assert atlantic.get_object(w.ip["id"])["objects"] == [w.ip]
    refused(lambda: atlantic.get_object(w.ident, spec_version="2.0"), 404)
    one = atlantic.get_object(w.ident, version="all", limit=2)
    assert one["objects"] == [w.v1, w.v2] and one["more"]
    assert atlantic.get_object(w.ident, version="all", limit=2, next=one["next"]) == {
        "more": False, "objects": [w.v3]}
    refused(lambda: atlantic.get_object(sid("indicator")), 404)

    # Versions, oldest first; an SCO's version is its date added.
    assert atlantic.object_versions(w.ident) == {"more": False, "versions": [T1, T2, T3]}
    assert atlantic.object_versions(w.ip["id"]) == {"more": False, "versions": [ip_added]}
    part = atlantic.object_versions(w.ident, limit=2)
    assert part["versions"] == [T1, T2] and part["more"]
    assert atlantic.object_versions(w.ident, limit=2, next=part["next"]) == {
        "more": False, "versions": [T3]}
    refused(lambda: atlantic.object_versions(sid("malware")), 404)

    # Manifest: id, date_added, version, media_type of the same objects, in the same order.
    for version in ("last", "all"):
        served = atlantic.get_objects(version=version)["objects"]
        entries = atlantic.get_manifest(version=version)["objects"]
        assert entries == [{"id": o["id"], "date_added": date_of(o, dates),
                            "version": version_of(o) or date_of(o, dates),
                            "media_type": STIX} for o in served]
        assert all(set(e) == {"id", "date_added", "version", "media_type"} for e in entries)
        assert atlantic.get_manifest(version=version, type="identity")["objects"] == [
            e for e in entries if e["id"].startswith("identity--")]

    # X-TAXII-Date-Added-First/Last on every paged answer: the first and last object's real
    # date added (the world's objects were added in three envelopes; no two share a date
    # added, so a client polling with added_after misses none).
    session = http(keys.member)
    everything = atlantic.get_objects(version="all")["objects"]
    assert len({date_of(o, dates) for o in everything}) == len(everything)
    pages = walk(session, f"{atlantic.url}objects/", limit=3, **{"match[version]": "all"})
    assert [o for _, b in pages for o in b["objects"]] == everything
    assert [len(b["objects"]) for _, b in pages] == [3] * (len(everything) // 3) + (
        [len(everything) % 3] if len(everything) % 3 else [])
    assert len(pages) > 3
    for response, body in pages:
        assert_headers(response, date_of(body["objects"][0], dates),
                       date_of(body["objects"][-1], dates))
    for response, body in walk(session, f"{atlantic.url}manifest/", limit=4,
                               **{"match[version]": "all"}):
        assert_headers(response, body["objects"][0]["date_added"],
                       body["objects"][-1]["date_added"])
    response = session.get(f"{atlantic.url}objects/{w.ident}/versions/")
    assert_headers(response, date_of(w.v1, dates), date_of(w.v3, dates))
    response = session.get(f"{atlantic.url}objects/{w.ident}/")
    assert_headers(response, date_of(w.v3, dates), date_of(w.v3, dates))
    empty = session.get(f"{atlantic.url}objects/", params={"match[spec_version]": "2.0"})
    assert empty.json() == {"more": False}
    assert "X-TAXII-Date-Added-First" not in empty.headers

    # Status by id, for its key's user only.
    root = api_root(live, keys.member)
    for status, envelope in zip(w.statuses, w.envelopes, strict=True):
        again = root.get_status(status.id)
        assert (again.status, again.total_count, again.success_count, again.failure_count,
                again.pending_count) == ("complete", len(envelope), len(envelope), 0, 0)
        assert RFC3339.match(again.request_timestamp)
    refused(lambda: api_root(live, keys.coordinator).get_status(w.statuses[0].id), 404)
    refused(lambda: root.get_status("00000000-0000-4000-8000-000000000000"), 404)

    # Bad parameters are 400 TAXII errors; limit is capped, not refused.
    for params in ({"added_after": "yesterday"}, {"added_after": "2024-05-01T12:00:00"},
                   {"match[version]": "newest"}, {"limit": "0"}, {"limit": "ten"},
                   {"next": "not-a-cursor"}):
        taxii_error(session.get(f"{atlantic.url}objects/", params=params), 400)
        taxii_error(session.get(f"{atlantic.url}manifest/", params=params), 400)
    huge = session.get(f"{atlantic.url}objects/", params={"limit": "5000"}).json()
    assert len(posted_only(huge["objects"])) == 8 and huge["more"] is False


# --- adding: refusals ------------------------------------------------------------------------

def test_refused_envelopes_are_taxii_errors_and_store_nothing(live, app, keys, member,
                                                              alliance, monkeypatch):
    atlantic = collection(live, keys.member, alliance_collection_id(alliance.id))
    ind = indicator()
    atlantic.add_objects({"objects": [ind]}, wait_for_completion=False)
    before = counts()

    def problems(envelope, status: int) -> list[dict]:
        body = refused(lambda: atlantic.add_objects(envelope, wait_for_completion=False), status)
        assert body["title"] == "The envelope was refused; nothing was stored"
        return body["details"]["problems"]

    dangling = {"type": "relationship", "spec_version": "2.1", "id": sid("relationship"),
                "created": T1, "modified": T1, "relationship_type": "indicates",
                "source_ref": ind["id"], "target_ref": sid("malware")}
    # A reference to an object not in the envelope is accepted, unresolved (STIX 2.1 allows
    # it); it links up when the target arrives.
    status = atlantic.add_objects({"objects": [dangling]}, wait_for_completion=False)
    assert (status.success_count, status.failure_count) == (1, 0)
    before = counts()

    no_pattern = {k: v for k, v in indicator().items() if k != "pattern"}
    [problem] = problems({"objects": [no_pattern]}, 422)
    assert problem["id"] == no_pattern["id"] and "pattern" in str(problem)

    [problem] = problems({"objects": [dict(ind, name="Changed silently")]}, 409)
    assert (problem["id"], problem["property"]) == (ind["id"], "modified")

    theirs = collection(live, keys.coordinator, alliance_collection_id(alliance.id))
    with pytest.raises(requests.HTTPError) as caught:
        theirs.add_objects({"objects": [dict(ind, modified=T3, name="Taken over")]})
    [problem] = taxii_error(caught.value.response, 422)["details"]["problems"]
    assert "only it may add versions" in problem["reason"]

    red = indicator(object_marking_refs=[marking_id("RED")])
    assert refused(lambda: atlantic.add_objects({"objects": [red]}), 422)["title"] == \
        "TLP:RED over TAXII"

    monkeypatch.setitem(app.config, "STIX_MAX_BYTES", 2000)
    problems({"objects": [indicator() for _ in range(10)]}, 413)
    monkeypatch.setitem(app.config, "STIX_MAX_BYTES", 10 * 1024 * 1024)

    session = http(keys.member)
    url = f"{atlantic.url}objects/"
    taxii_error(session.post(url, data=b"{not json", headers={"Content-Type": TAXII}), 400)
    taxii_error(session.post(url, data=orjson.dumps({"objects": [indicator()]}),
                             headers={"Content-Type": "application/json"}), 415)
    assert counts() == before


# --- delete ---------------------------------------------------------------------------------

def test_delete_withdraws_the_object_for_everyone(live, keys, member, coordinator, alliance):
    collection_id = alliance_collection_id(alliance.id)
    mine = collection(live, keys.member, collection_id)
    theirs = collection(live, keys.coordinator, collection_id)
    own = collection(live, keys.member, organisation_collection_id(member.organisation_id))
    doomed, kept = indicator(), indicator("[domain-name:value = 'kept.example']")
    doomed, kept = (factories.as_served(o, member.organisation.stix_id, alliance.default_tlp)
                    for o in (doomed, kept))
    mine.add_objects({"objects": [doomed]}, wait_for_completion=False)
    mine.add_objects({"objects": [kept]}, wait_for_completion=False)
    assert theirs.get_object(doomed["id"])["objects"] == [doomed]
    valid(theirs.get_objects()["objects"])

    # Not the creator organisation: 403, and nothing changes.
    assert refused(lambda: theirs.delete_object(doomed["id"]), 403)["title"] == "Not yours"
    with pytest.raises(AccessError):
        own.delete_object(doomed["id"])
    taxii_error(http(keys.member).delete(f"{own.url}objects/{doomed['id']}/"), 403)
    assert theirs.get_object(doomed["id"])["objects"] == [doomed]

    assert mine.delete_object(doomed["id"]) is None  # 200
    for reader in (mine, theirs, own):
        refused(lambda r=reader: r.get_object(doomed["id"]), 404)
        refused(lambda r=reader: r.object_versions(doomed["id"]), 404)
        ids = {o["id"] for o in reader.get_objects(version="all")["objects"]}
        assert doomed["id"] not in ids and kept["id"] in ids
        assert doomed["id"] not in {e["id"] for e in reader.get_manifest()["objects"]}
    refused(lambda: mine.delete_object(doomed["id"]), 404)
    [retracted, alive] = fresh_notes(member.organisation_id)
    assert retracted.retracted_at is not None and alive.retracted_at is None
