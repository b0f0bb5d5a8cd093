"""TAXII's date_added is when an object version entered *this* collection. A version stored
long ago (posted to one alliance) and posted later, unchanged, to another alliance is new to
the second alliance's collection then: a client that reads that collection with added_after
(how SIEMs and TIPs poll) must get it. Before, the collection kept the version's first date,
so such clients never saw it. The same holds for an organisation's own collection, and for
the version of an SCO (it has no modified: its version is its date added). Driven over real
HTTP against the app served on loopback."""
import time
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import func, select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import CollectionObject, StixObject
from alliance.taxii.filters import rfc3339
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests import factories
from tests.notes.helpers import identity, indicator
from tests.taxii.live import RFC3339, TAXII, posted_only

STIX = "application/stix+json;version=2.1"


@pytest.fixture
def world(live, member, coordinator, alliance):
    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    factories.add_member(pacific, member.organisation, "active")
    _row, key = create_key(member, "SIEM")
    session = requests.Session()
    session.auth = ("key", key)
    base = f"{live}/taxii2/api/collections"
    return SimpleNamespace(
        session=session,
        atlantic=f"{base}/{alliance_collection_id(alliance.id)}",
        pacific=f"{base}/{alliance_collection_id(pacific.id)}", pacific_id=pacific.id)


def push(world, url, objects) -> None:
    response = world.session.post(f"{url}/objects/", json={"objects": objects},
                                  headers={"Accept": TAXII, "Content-Type": TAXII})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "complete"


def manifest(world, url, **params) -> tuple[dict, requests.Response]:
    """(STIX id -> date added, for every version) of the collection, and the response."""
    response = world.session.get(f"{url}/manifest/", params=params, headers={"Accept": TAXII})
    assert response.status_code == 200, response.text
    return {e["id"]: e["date_added"] for e in response.json().get("objects", [])}, response


def objects(world, url, **params) -> tuple[set, requests.Response]:
    response = world.session.get(f"{url}/objects/", params=params, headers={"Accept": TAXII})
    assert response.status_code == 200, response.text
    return {o["id"] for o in response.json().get("objects", [])}, response


def test_a_version_posted_again_to_another_alliance_is_new_to_that_collection(world):
    shared, other = indicator(), identity("Collection Date Org")
    push(world, world.atlantic, [shared, other])
    atlantic_dates, _ = manifest(world, world.atlantic)
    first = atlantic_dates[shared["id"]]
    assert RFC3339.match(first)
    time.sleep(0.01)  # the next post is clearly later
    # What a client of Pacific has seen so far: nothing of Atlantic's.
    seen, _ = objects(world, world.pacific, added_after=first)
    assert shared["id"] not in seen

    push(world, world.pacific, [shared])  # the same version: linked, not stored again

    pacific_dates, _ = manifest(world, world.pacific)
    assert pacific_dates[shared["id"]] > first
    # The client polling Pacific from where it left off gets the version now.
    got, response = objects(world, world.pacific, added_after=first)
    assert shared["id"] in got and other["id"] not in got
    assert response.headers["X-TAXII-Date-Added-Last"] == max(pacific_dates.values())
    # Atlantic's collection is as it was: the same date, nothing new after it.
    assert manifest(world, world.atlantic)[0][shared["id"]] == first
    assert shared["id"] not in objects(world, world.atlantic, added_after=first)[0]


def test_a_version_posted_again_to_the_same_alliance_keeps_its_date_and_one_entry(world):
    shared = indicator()
    push(world, world.pacific, [shared])
    before, _ = manifest(world, world.pacific, **{"match[id]": shared["id"]})
    time.sleep(0.01)

    # Another envelope (the same one again is the same post): a second note links it.
    push(world, world.pacific, [shared, indicator("[domain-name:value = 'beside.example']")])

    after, response = manifest(world, world.pacific,
                               **{"match[id]": shared["id"], "match[version]": "all"})
    assert after == before and len(response.json()["objects"]) == 1
    db.session.rollback()
    held = db.session.scalars(select(StixObject.stix_id).join(
        CollectionObject, CollectionObject.object_id == StixObject.id).where(
        CollectionObject.alliance_id == world.pacific_id)).all()
    assert len(posted_only(held)) == 4  # two reports, two indicators (and, once, what they need)
    assert len(held) == len(set(held))


def test_a_stored_version_a_new_note_links_is_new_to_the_organisations_own_collection(
        world, coordinator, alliance, member, live):
    """The organisation's own collection dates a version by when a note of the organisation
    first held it: a version another organisation stored long ago, which this organisation
    now posts unchanged (linked, not stored again), is new to it."""
    from alliance.notes.posting import NoteDraft, post_note

    shared = indicator("[domain-name:value = 'own-collection.example']")
    post_note(coordinator, NoteDraft(
        title="Coordinator's post", tlp="GREEN", alliance_ids=[alliance.id], objects=[shared]))
    own = f"{live}/taxii2/api/collections/{organisation_collection_id(member.organisation_id)}"
    before, _ = manifest(world, own)
    assert shared["id"] not in before  # not a note of the member's organisation (yet)
    stored = rfc3339(db.session.scalar(select(StixObject.date_added).where(
        StixObject.stix_id == shared["id"])))
    time.sleep(0.01)

    push(world, world.pacific, [shared])  # the member's organisation posts it, unchanged

    assert db.session.scalar(select(func.count()).select_from(StixObject).where(
        StixObject.stix_id == shared["id"])) == 1  # linked: still one stored version
    dates, _ = manifest(world, own)
    assert dates[shared["id"]] > stored
    # A client polling the organisation's collection since the version was stored gets it.
    got, response = objects(world, own, added_after=stored)
    assert shared["id"] in got
    assert response.headers["X-TAXII-Date-Added-Last"] == max(dates.values())
    # Its date is the member's note's: the one Pacific's collection shows for it too.
    assert dates[shared["id"]] == manifest(world, world.pacific)[0][shared["id"]]


def test_an_sco_is_versioned_by_its_date_added_to_each_collection(world):
    """An SCO has neither modified nor created: its TAXII version is its date added to the
    collection (the manifest's date_added), per collection, and match[version] finds it."""
    sco = {"type": "ipv4-addr", "spec_version": "2.1",
           "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.3"}
    push(world, world.atlantic, [sco])
    time.sleep(0.01)
    push(world, world.pacific, [sco])
    for url in (world.atlantic, world.pacific):
        response = world.session.get(f"{url}/manifest/", params={"match[id]": sco["id"]},
                                     headers={"Accept": TAXII})
        entry, = response.json()["objects"]
        assert entry["version"] == entry["date_added"]
        listed = world.session.get(f"{url}/objects/{sco['id']}/versions/",
                                   headers={"Accept": TAXII}).json()["versions"]
        assert listed == [entry["date_added"]]
        got, _ = objects(world, url, **{"match[id]": sco["id"],
                                        "match[version]": entry["date_added"]})
        assert got == {sco["id"]}
    atlantic = manifest(world, world.atlantic, **{"match[id]": sco["id"]})[0][sco["id"]]
    pacific = manifest(world, world.pacific, **{"match[id]": sco["id"]})[0][sco["id"]]
    assert pacific > atlantic
