"""TAXII's date_added is when an object version entered *this* collection. A version stored
long ago (posted to one alliance) and posted later, unchanged, to another alliance is new to
the second alliance's collection then: a client that reads that collection with added_after
(how SIEMs and TIPs poll) must get it. Before, the collection kept the version's first date,
so such clients never saw it. Driven over real HTTP against the app served on loopback."""
import time
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import func, select

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import CollectionObject
from alliance.taxii.services import alliance_collection_id
from tests import factories
from tests.notes.helpers import identity, indicator
from tests.taxii.live import RFC3339, TAXII, serving

STIX = "application/stix+json;version=2.1"


@pytest.fixture(scope="module")
def live(app):
    with serving(app) as url:
        yield url


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

    push(world, world.pacific, [shared])

    after, response = manifest(world, world.pacific,
                               **{"match[id]": shared["id"], "match[version]": "all"})
    assert after == before and len(response.json()["objects"]) == 1
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(CollectionObject).where(
        CollectionObject.alliance_id == world.pacific_id)) == 3  # two reports, one indicator
