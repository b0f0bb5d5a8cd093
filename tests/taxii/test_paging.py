"""TAXII paging under stress, over real HTTP: 5,000 objects sharing ONE date added (one
envelope) come back exactly once each, in (date added, id) order, with limit=97 — also when
envelopes are added while a client pages (the new objects come last, once), and when the
limit changes from page to page. The `next` cursor is signed and bound to its key, collection
and filters: a forged or tampered one, another key's, or one used with other filters or in
another collection is a 400 TAXII error that says the same thing in every case and shows no
object."""
import pytest
import requests
from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from taxii2client.v21 import Collection, as_pages

from alliance.apikeys.services import create_key
from alliance.extensions import db
from alliance.notes.models import StixObject
from alliance.taxii.filters import rfc3339
from alliance.taxii.reading import MAX_PAGE
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests.notes.helpers import indicator
from tests.taxii.live import TAXII, posted_only, recording, served_with_ids

MANY = 5000
LIMIT = 97


@pytest.fixture(autouse=True)
def answers(live):
    with recording(live) as seen:
        yield seen


def indicators(count: int, tag: int) -> list[dict]:
    return [indicator(f"[ipv4-addr:value = '10.{tag}.{i // 256}.{i % 256}']")
            for i in range(count)]


def session_for(key: str) -> requests.Session:
    session = requests.Session()
    session.auth = ("key", key)
    session.headers["Accept"] = TAXII
    return session


def stored_order() -> list[tuple[str, str]]:
    """(STIX id, date added) of every stored object version, in (date added, row id) order."""
    db.session.rollback()
    db.session.expire_all()
    return [(stix_id, rfc3339(added)) for stix_id, added in db.session.execute(
        select(StixObject.stix_id, StixObject.date_added)
        .order_by(StixObject.date_added, StixObject.id)).all()]


def test_5000_objects_sharing_one_date_added_come_back_once_in_order(live, member, alliance):
    key = create_key(member, "SIEM")[1]
    url = f"{live}/taxii2/api/collections/{alliance_collection_id(alliance.id)}/"
    atlantic = Collection(url, user="key", password=key)
    status = atlantic.add_objects({"objects": indicators(MANY, 0)}, wait_for_completion=False)
    assert (status.status, status.success_count) == ("complete", MANY)
    stored = stored_order()
    # And the note's report, and beside them what makes the platform's references resolve
    # (the poster's identity, the TLP 2.0 definitions).
    first = MANY + 1 + len([s for s, _ in stored if s in served_with_ids()])
    assert len(stored) == first > MANY + 1
    assert len({added for _, added in stored}) == 1  # ONE date added for all of them

    # limit=97 all the way, adding an envelope after page 5 and another after page 30.
    session = session_for(key)
    served, params, pages = [], {"limit": LIMIT}, 0
    while True:
        response = session.get(f"{url}objects/", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        page = [o["id"] for o in body["objects"]]
        assert len(page) == LIMIT or not body["more"]
        assert not set(page) & set(served)  # nothing comes twice
        served += page
        pages += 1
        if pages in (5, 30):
            atlantic.add_objects({"objects": indicators(40, pages)}, wait_for_completion=False)
        if not body["more"]:
            assert "next" not in body
            break
        params = {"limit": LIMIT, "next": body["next"]}
    stored = stored_order()
    assert len(stored) == first + 2 * 41
    assert served == [stix_id for stix_id, _ in stored]  # each once, (date added, id) order
    assert [added for _, added in stored[first:]] == sorted(added for _, added in
                                                               stored[first:])
    assert stored[first][1] > stored[first - 1][1] and stored[-1][1] > stored[first + 40][1]
    assert pages == -(-len(stored) // LIMIT)

    # The same with taxii2-client's as_pages, and with the limit changing at every page (a
    # cursor does not hold the limit).
    walked = [o["id"] for p in as_pages(atlantic.get_objects, per_request=LIMIT)
              for o in p["objects"]]
    assert walked == served
    limits = [LIMIT, 500, 1, 1000, 3, 250, 4000]
    served_again, params, sizes = [], {"limit": limits[0]}, []
    for turn in range(len(stored)):
        body = session.get(f"{url}objects/", params=params).json()
        sizes.append(len(body["objects"]))
        served_again += [o["id"] for o in body["objects"]]
        if not body["more"]:
            break
        params = {"limit": limits[(turn + 1) % len(limits)], "next": body["next"]}
    assert served_again == served
    assert sizes[:7] == [LIMIT, 500, 1, 1000, 3, 250, MAX_PAGE]  # 4000 is capped to 1000

    # The manifest pages over the same keyset.
    manifest = session.get(f"{url}manifest/", params={"limit": LIMIT}).json()
    assert [e["id"] for e in manifest["objects"]] == served[:LIMIT]
    # One envelope stored its rows in one instant; each entered the collection a
    # microsecond after the one before, so added_after never skips one.
    added = [e["date_added"] for e in manifest["objects"]]
    assert added == sorted(added) and len(set(added)) == LIMIT and added[0] >= stored[0][1]
    following = session.get(f"{url}manifest/", params={"limit": LIMIT,
                                                        "next": manifest["next"]}).json()
    assert [e["id"] for e in following["objects"]] == served[LIMIT:2 * LIMIT]


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


def test_a_cursor_works_only_for_its_key_collection_and_filters(live, app, member, coordinator,
                                                                 alliance):
    key = create_key(member, "SIEM")[1]
    second_key = create_key(member, "Second SIEM")[1]  # same user, another key
    coordinator_key = create_key(coordinator, "TIP")[1]  # another organisation, same alliance
    url = f"{live}/taxii2/api/collections/{alliance_collection_id(alliance.id)}/"
    Collection(url, user="key", password=key).add_objects({"objects": indicators(10, 1)},
                                                          wait_for_completion=False)
    session = session_for(key)
    first = session.get(f"{url}objects/", params={"limit": 3}).json()
    cursor = first["next"]
    everything = session.get(f"{url}objects/", params={"limit": 100}).json()["objects"]
    assert len(posted_only(everything)) == 11  # and beside them the platform's objects
    assert session.get(f"{url}objects/", params={"limit": 3, "next": cursor}).json()[
        "objects"] == everything[3:6]
    assert session.get(f"{url}objects/", params={"limit": 50, "next": cursor}).json() == {
        "more": False, "objects": everything[3:]}

    def refusal(who: requests.Session, path: str = "objects/", **params) -> dict:
        response = who.get(f"{url}{path}", params={"limit": 3, **params})
        assert response.status_code == 400, response.text
        assert response.headers["Content-Type"] == TAXII
        body = response.json()
        assert "objects" not in body and "versions" not in body
        return body

    # Forged or tampered: signed with another secret, payload or signature altered, or not a
    # cursor at all.
    unsigned = URLSafeSerializer("not-the-secret", salt="taxii-next")
    genuine, data = unsigned.loads_unsafe(cursor)
    assert not genuine and set(data) == {"k", "c", "f", "d", "i"}
    moved = unsigned.dumps(dict(data, i=data["i"] - 2)).rsplit(".", 1)[0]
    forged = [
        "garbage", cursor[:-1], _flip(cursor, 5), _flip(cursor, len(cursor) - 3),
        unsigned.dumps(data),
        URLSafeSerializer(app.config["SECRET_KEY"], salt="another-salt").dumps(data),
        moved + "." + cursor.rsplit(".", 1)[1],  # the payload changed under its signature
    ]
    said = refusal(session, next="garbage")
    assert said["title"] == "Bad next" and said["http_status"] == "400"
    for token in forged:
        assert refusal(session, next=token) == said, token

    # Another key — the same user's or another organisation's — is told exactly the same
    # (nothing says the cursor is genuine).
    for other in (second_key, coordinator_key):
        assert refusal(session_for(other), next=cursor) == said
    # Other filters, another endpoint's filters, another collection.
    assert refusal(session, next=cursor, **{"match[type]": "indicator"}) == said
    assert refusal(session, next=cursor, **{"match[version]": "all"}) == said
    assert refusal(session, next=cursor, added_after="2000-01-01T00:00:00Z") == said
    assert refusal(session, f"objects/{everything[0]['id']}/versions/", next=cursor) == said
    own = f"{live}/taxii2/api/collections/{organisation_collection_id(member.organisation_id)}/"
    response = session.get(f"{own}objects/", params={"limit": 3, "next": cursor})
    assert response.status_code == 400 and response.json() == said
    # The genuine cursor still works for its own key afterwards.
    assert session.get(f"{url}objects/", params={"limit": 3, "next": cursor}).json()[
        "objects"] == everything[3:6]
