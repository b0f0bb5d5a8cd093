"""TAXII never serves what the read rule withholds: in the random worlds of the read-rule
property test (tests/sharing/test_read_rule_properties.py: organisations, users, alliances,
memberships in every state, coordinators, notes of every TLP with audiences, RED recipients
and retractions), every user gets an API key, and for every key and every collection it lists
the objects reachable through EVERY TAXII endpoint — objects (walked to the end, a small
limit, latest and all versions), manifest, object by id (for every object id in the world),
versions — are exactly the objects of the notes the reference model lets that user read,
restricted to the collection, without TLP:RED and without retracted notes (the model lets
the author organisation and active coordinators read a retracted note; TAXII serves it to
nobody). The collections listed are the alliances the user's organisation is an active member
of, plus its own collection; no other collection answers. A `next` cursor from another key,
another collection or other filters, a forged one, or one signed with another secret is a
400 that shows no object."""
import secrets
from dataclasses import dataclass

import orjson
from hypothesis import event, example, given, settings
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from alliance.apikeys.models import ApiKey
from alliance.apikeys.services import KEY_PREFIX, create_key
from alliance.auth.tokens import secret_digest
from alliance.extensions import db, limiter
from alliance.notes.models import StixObject
from alliance.taxii.services import alliance_collection_id, organisation_collection_id
from tests.sharing.test_read_rule_properties import (
    EXAMPLE_WORLDS,
    SETTINGS,
    AllianceSpec,
    Built,
    Model,
    UserSpec,
    World,
    _note,
    build,
    marker,
    worlds,
)

ROOT = "/taxii2/api/collections/"
TAXII = "application/taxii+json;version=2.1"
LIMIT = 2  # small pages: every walk crosses several cursors and the ties on date added
OTHER_SECRET = "not-the-server-secret"  # noqa: S105 (a forger's secret)


@dataclass
class Key:
    user: int  # user index in the world
    token: str
    id: int


class Taxii:
    """GETs with a key over the Flask test client; JSON bodies."""

    def __init__(self, app):
        self.client = app.test_client()

    def get(self, key: str | None, path: str, **params):
        headers = {"Accept": TAXII}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        response = self.client.get(path, headers=headers, query_string=params)
        assert response.content_type == TAXII, (path, response.content_type)
        return response.status_code, orjson.loads(response.get_data()), response.get_data(
            as_text=True)

    def walk(self, key: str, path: str, field: str = "objects", **params) -> list:
        """Every item of every page, following `next` to the end."""
        items, token = [], None
        for _ in range(200):
            query = dict(params, limit=LIMIT)
            if token:
                query["next"] = token
            status, body, _text = self.get(key, path, **query)
            assert status == 200, (path, status, body)
            items += body.get(field, [])
            assert len(body.get(field, [])) <= LIMIT
            if not body["more"]:
                assert "next" not in body
                return items
            token = body["next"]
        raise AssertionError(f"{path}: the next cursor does not come to an end")


# --- keys and the expected answers ---------------------------------------------------------

def give_keys(built: Built, model: Model) -> dict[int, Key]:
    """A key per user. create_key refuses users who may not act (deactivated, unverified,
    organisation not vetted); theirs is stored the way create_key stores one, so that the
    test also shows that such a key opens nothing."""
    keys = {}
    for u, user in enumerate(built.users):
        if model.usable(u):
            row, token = create_key(user, f"leak test {u}")
        else:
            prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
            row = ApiKey(user_id=user.id, organisation_id=user.organisation_id,
                         name=f"leak test {u}", prefix=prefix, secret_hash=secret_digest(secret))
            db.session.add(row)
            db.session.commit()
            token = f"{KEY_PREFIX}_{prefix}_{secret}"
        keys[u] = Key(u, token, row.id)
    return keys


def held_versions(built: Built) -> dict[int, list[tuple[str, str]]]:
    """Note index -> the (STIX id, version) pairs the note holds."""
    rows = {row.id: row for row in db.session.scalars(select(StixObject))}
    held: dict[int, list] = {}
    for (_kind, i), row_id in built.versions.items():
        held.setdefault(i, []).append((rows[row_id].stix_id, rows[row_id].modified))
    return held


def served_notes(world: World, model: Model, u: int) -> set[int]:
    """What TAXII may serve the user: the model's readable notes, minus RED and retracted."""
    return {i for i in model.readable(u)
            if world.notes[i].tlp != "RED" and not world.notes[i].retracted}


def expected_collections(world: World, built: Built, u: int) -> dict[str, set[int]]:
    """Collection id -> the note indexes it may serve user u (before the read rule)."""
    org = world.users[u].org
    found = {alliance_collection_id(built.alliances[a].id):
             {i for i, note in enumerate(world.notes) if a in note.audience}
             for a in range(len(world.alliances)) if world.memberships.get((a, org)) == "active"}
    found[organisation_collection_id(built.users[u].organisation_id)] = {
        i for i, note in enumerate(world.notes) if world.users[note.author].org == org}
    return found


def latest(pairs: set) -> set:
    """Of every object id, the latest version only."""
    best: dict[str, str] = {}
    for stix_id, version in pairs:
        best[stix_id] = max(version, best.get(stix_id, version))
    return set(best.items())


def pair_of(body: dict, held: dict, n_notes: int) -> tuple[str, str]:
    """Which stored version an object body is: the world writes the note's marker into every
    object's name, and the note holds one version of each id."""
    notes = [i for i in range(n_notes) if marker(i) in body.get("name", "")]
    assert len(notes) == 1, body
    (found,) = [p for p in held[notes[0]] if p[0] == body["id"]]
    return found


# --- the checks ----------------------------------------------------------------------------

def check_key(taxii: Taxii, key: Key, world: World, built: Built, model: Model, held: dict,
              all_collections: set[str]) -> dict[str, str]:
    """Every endpoint for one key; returns a first-page cursor per collection that has one."""
    u = key.user
    who = f"user {u}"
    every_id = sorted({p[0] for pairs in held.values() for p in pairs})
    if not model.usable(u):
        for path in ("/taxii2/", "/taxii2/api/", ROOT, *(f"{ROOT}{c}/objects/"
                                                      for c in sorted(all_collections))):
            status, body, _text = taxii.get(key.token, path)
            assert status == 401 and "objects" not in body, (who, path, status)
        return {}

    want = expected_collections(world, built, u)
    status, body, _text = taxii.get(key.token, ROOT)
    assert status == 200
    listed = [c["id"] for c in body["collections"]]
    assert len(listed) == len(set(listed)) and set(listed) == set(want), (who, listed)
    for c in sorted(all_collections - set(want)):
        for path in (f"{ROOT}{c}/", f"{ROOT}{c}/objects/", f"{ROOT}{c}/manifest/",
                     *(f"{ROOT}{c}/objects/{i}/" for i in every_id[:2])):
            status, body, text = taxii.get(key.token, path)
            assert status == 404 and "objects" not in body, (who, "unlisted", path)
            assert "qmark" not in text

    served = served_notes(world, model, u)
    if any(world.notes[i].retracted for i in model.readable(u)):
        event("a retracted note the model lets the user read is withheld")
    if any(world.notes[i].tlp == "RED" for i in model.readable(u)):
        event("a RED note the model lets the user read is withheld")
    cursors = {}
    for c, in_collection in sorted(want.items()):
        notes = served & in_collection
        every = {p for i in notes for p in held[i]}
        last = latest(every)
        where = (who, f"collection of notes {sorted(in_collection)}", f"serves {sorted(notes)}")
        assert taxii.get(key.token, f"{ROOT}{c}/")[0] == 200, where
        objects = f"{ROOT}{c}/objects/"

        # objects, latest versions (the default) and all versions, every page.
        for params, expected in (({}, last), ({"match[version]": "all"}, every)):
            got = [pair_of(b, held, len(world.notes)) for b in taxii.walk(key.token, objects,
                                                                         **params)]
            assert len(got) == len(set(got)), (where, params, "an object twice")
            assert set(got) == expected, (where, params)
        # manifest, latest and all versions.
        for params, expected in (({}, last), ({"match[version]": "all"}, every)):
            got = [(m["id"], m["version"]) for m in taxii.walk(
                key.token, f"{ROOT}{c}/manifest/", **params)]
            assert len(got) == len(set(got)), (where, params, "manifest entry twice")
            assert set(got) == expected, (where, "manifest", params)
        # object by id and its versions, for every object id in the world.
        versions_of = {}
        for stix_id, version in every:
            versions_of.setdefault(stix_id, set()).add(version)
        for stix_id in every_id:
            status, body, text = taxii.get(key.token, f"{objects}{stix_id}/")
            v_status, v_body, v_text = taxii.get(key.token, f"{objects}{stix_id}/versions/")
            if stix_id not in versions_of:
                assert (status, v_status) == (404, 404), (where, stix_id)
                assert "objects" not in body and "versions" not in v_body
                assert "qmark" not in text + v_text, (where, stix_id)
                continue
            assert (status, v_status) == (200, 200), (where, stix_id)
            assert [pair_of(b, held, len(world.notes)) for b in body["objects"]] == [
                (stix_id, max(versions_of[stix_id]))], (where, stix_id)
            assert sorted(v_body["versions"]) == sorted(versions_of[stix_id]), (where, stix_id)
            got = {pair_of(b, held, len(world.notes)) for b in taxii.walk(
                key.token, f"{objects}{stix_id}/", **{"match[version]": "all"})}
            assert got == {(stix_id, v) for v in versions_of[stix_id]}, (where, stix_id)

        status, body, _text = taxii.get(key.token, objects, limit=1)
        if body.get("next"):
            cursors[c] = body["next"]
    return cursors


def flipped(token: str) -> list[str]:
    """The cursor with one character changed, in the payload and in the signature (never the
    last character, whose low bits base64 may ignore)."""
    payload, _dot, signature = token.rpartition(".")
    spots = {0, len(payload) // 2, len(payload) + 1 + len(signature) // 2}
    out = []
    for spot in sorted(spots):
        char = "B" if token[spot] != "B" else "C"
        out.append(token[:spot] + char + token[spot + 1:])
    return out


def refused(taxii: Taxii, key: str, path: str, cursor: str, **params) -> int:
    status, body, text = taxii.get(key, path, next=cursor, **params)
    assert "objects" not in body and "versions" not in body and "qmark" not in text, (
        path, status, body)
    return status


def check_cursors(taxii: Taxii, keys: dict[int, Key], cursors: dict, listed: dict, app,
                  built: Built) -> int:
    """Cursors used with another key, another collection, other filters, forged, or signed
    with another secret: a 400 (or the collection's 404 for a key that cannot see it)."""
    checked = 0
    forger = URLSafeSerializer(OTHER_SECRET, salt="taxii-next")
    real = URLSafeSerializer(app.config["SECRET_KEY"], salt="taxii-next")
    for (u, c), cursor in sorted(cursors.items()):
        key = keys[u]
        objects, manifest = f"{ROOT}{c}/objects/", f"{ROOT}{c}/manifest/"
        assert taxii.get(key.token, objects, limit=1, next=cursor)[0] == 200  # genuine
        # Another key of the same user, and every other user's key.
        _row, second = create_key(built.users[u], "second key")
        others = {second: listed[key.token]} | {
            k.token: listed.get(k.token) for v, k in keys.items() if v != u}
        for token, sees in others.items():
            # A key that may not act: 401; one that cannot see the collection: its 404.
            expect = 401 if sees is None else 400 if c in sees else 404
            event(f"another key's cursor: {expect}")
            for path in (objects, manifest):
                assert refused(taxii, token, path, cursor, limit=1) == expect, (u, c, path)
                checked += 1
        # Another collection of the same key, and other filters.
        for other in sorted(listed[key.token] - {c}):
            assert refused(taxii, key.token, f"{ROOT}{other}/objects/", cursor, limit=1) == 400
            checked += 1
        assert refused(taxii, key.token, objects, cursor, limit=1,
                       **{"match[type]": "indicator"}) == 400
        assert refused(taxii, key.token, objects, cursor, limit=1,
                       **{"match[version]": "all"}) == 400
        # Forged: a changed character, a cursor signed with another secret (the same payload,
        # and one that claims a position before the first object), junk, no signature. (An
        # empty `next` is no cursor: the first page, which the key may read anyway.)
        payload = real.loads(cursor)
        forged = flipped(cursor) + [
            forger.dumps(payload), forger.dumps(dict(payload, d="1970-01-01T00:00:00.000000Z", i=0)),
            cursor + "x", "not-a-cursor", cursor.rpartition(".")[0]]  # the last: unsigned
        for token in forged:
            for path in (objects, manifest):
                assert refused(taxii, key.token, path, token, limit=1) == 400, (u, c, token)
                checked += 1
    return checked


def check_world(app, world: World) -> None:
    built = build(world)
    model = Model(world)
    limiter.reset()  # one test runs many worlds; each world's keys start afresh anyway
    keys = give_keys(built, model)
    held = held_versions(built)
    # Every collection that exists for someone: the alliances' and the organisations'.
    orgs = {user.organisation_id for user in built.users}
    all_collections = ({alliance_collection_id(a.id) for a in built.alliances}
                       | {organisation_collection_id(o) for o in orgs})
    taxii = Taxii(app)
    assert taxii.get(None, ROOT)[0] == 401
    cursors, listed = {}, {}
    for u, key in keys.items():
        found = check_key(taxii, key, world, built, model, held, all_collections)
        cursors.update({(u, c): token for c, token in found.items()})
        if model.usable(u):
            listed[key.token] = set(expected_collections(world, built, u))
    check_cursors(taxii, keys, cursors, listed, app, built)


def _u(org):
    return UserSpec(org, True, True)


def _world_with_many_objects() -> World:
    """Two alliances, three organisations; enough notes (with shared indicator ids, on few
    timestamps) that every key pages across several cursors, and retracted notes next to a
    coordinator who may read them on the web but not over TAXII."""
    return World(
        orgs=("approved", "approved", "approved"),
        users=(_u(0), _u(1), _u(2), _u(1)),
        alliances=(AllianceSpec(False, frozenset({1})), AllianceSpec(True, frozenset({2}))),
        memberships={(0, 0): "active", (0, 1): "active", (0, 2): "left", (1, 2): "active",
                     (1, 0): "active"},
        notes=(_note(0, "GREEN", slot=0), _note(0, "AMBER", slot=0, created=1),
               _note(0, "CLEAR", (0, 1), slot=1), _note(0, "RED", recipients={1, 3}, slot=1),
               _note(0, "AMBER+STRICT", retracted=True, slot=0, created=2),
               _note(2, "GREEN", (0, 1), slot=0), _note(2, "AMBER", (1,), retracted=True),
               _note(1, "CLEAR", (1,), slot=None), _note(3, "AMBER", slot=1, created=3)),
    )


TAXII_WORLDS = {"many objects, ties and retractions": _world_with_many_objects()}


def _with_examples(test):
    for world in (*EXAMPLE_WORLDS.values(), *TAXII_WORLDS.values()):
        test = example(world=world)(test)
    return test


@settings(SETTINGS, max_examples=15)
@given(world=worlds())
@_with_examples
def test_taxii_serves_exactly_the_readable_non_red_unretracted_objects(db, app, world):
    check_world(app, world)
