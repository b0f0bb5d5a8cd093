"""The import goal's floor (bench/floors.same_rows) stores the same rows an import stores for
the same objects: a floor that left some out (or a schema change the floor missed) would make
the goal easier than it is. Both run on SQLite databases of their own, whatever the test
database is: the floor is SQLite's."""
import os
import uuid

import orjson
import pytest
from sqlalchemy import text

from bench import floors
from tests import factories

ATTACK = os.path.join(os.path.dirname(__file__), "..", "data", "stix", "valid",
                      "attack__mobile-attack-17.1.json")


def _app(tmp_path, name):
    from flask_migrate import upgrade

    from alliance import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / name}.db",
                      "MAIL_URL": str(tmp_path / f"maildir-{name}")})
    with app.app_context():
        upgrade()
    return app


def _post(objects):
    from alliance.notes.posting import NoteDraft, post_note

    org = factories.make_org(f"Floor Org {uuid.uuid4().hex[:6]}")
    # One identity in both databases: objects that name no creator are stored as the
    # poster's, so both store the same bodies.
    org.stix_id = "identity--00000000-0000-4000-8000-00000000f100"
    user = factories.make_user(org, f"floor-{uuid.uuid4().hex[:6]}@floor.example",
                               role="org_admin")
    alliance = factories.make_alliance(user, slug=f"floor-{uuid.uuid4().hex[:4]}",
                                       name=f"Floor {uuid.uuid4().hex[:4]}")
    return post_note(user, NoteDraft(
        title="floor", tlp="AMBER", alliance_ids=[alliance.id], objects=objects))


def _rows(conn, after: int, skip: set[str]) -> dict:
    """The rows of the object versions stored after row `after`, but those in `skip` and the
    platform's objects served beside notes (scope -1, notes.served_with): stored once per
    organisation, which the floor's database did with its first post."""
    where = ("stix_objects.id > :after AND stix_objects.scope != -1 "
             "AND stix_objects.stix_id NOT IN ({})").format(", ".join(f"'{s}'" for s in skip))
    params = {"after": after}

    def rows(sql):
        return sorted(tuple(r) for r in conn.execute(text(sql.format(where=where)), params))

    return {
        "stix_objects": rows("SELECT stix_id, type, modified, body, body_hash, scope "
                             "FROM stix_objects WHERE {where}"),
        "note_objects": rows("SELECT stix_id, note_version FROM note_objects JOIN stix_objects "
                             "ON stix_objects.id = object_id WHERE {where}"),
        "collection_objects": rows("SELECT stix_id, collection_objects.type "
                                   "FROM collection_objects JOIN stix_objects "
                                   "ON stix_objects.id = object_id WHERE {where}"),
        "organisation_collection_objects": rows(
            "SELECT stix_id, o.type FROM organisation_collection_objects o JOIN stix_objects "
            "ON stix_objects.id = object_id WHERE {where}"),
    }


@pytest.mark.parametrize("workload", ["indicators", "attack"])
def test_the_floor_stores_the_rows_an_import_stores(tmp_path, workload):
    from alliance.extensions import db
    from alliance.stix.validation import parse_bundle

    if workload == "indicators":
        raw = floors.indicators_bundle(300)
    else:
        with open(ATTACK, "rb") as f:
            raw = f.read()
    objects = orjson.loads(raw)["objects"]

    ours = _app(tmp_path, "ours")
    with ours.app_context():
        note = _post(parse_bundle(raw).objects)
        conn = db.session.connection()
        stored = _rows(conn, 0, {note.report_id})
        observables = sorted(tuple(r) for r in conn.execute(text(
            "SELECT kind, value FROM observables WHERE note_id = :n"), {"n": note.id}))
        db.session.remove()

    floor = _app(tmp_path, "floor")
    with floor.app_context():
        first = _post([{"type": "identity", "spec_version": "2.1",
                        "id": f"identity--{uuid.uuid4()}", "name": "Floor",
                        "created": "2024-01-01T00:00:00.000Z",
                        "modified": "2024-01-01T00:00:00.000Z"}])
        note_id, org_id = first.id, first.organisation_id
        last = db.session.scalar(text("SELECT max(id) FROM stix_objects"))
        db.session.remove()
    rate = floors.same_rows(str(tmp_path / "floor.db"), note_id, org_id, raw)
    with floor.app_context():
        conn = db.session.connection()
        floored = _rows(conn, last, {"-"})
        floored_observables = sorted(tuple(r) for r in conn.execute(text(
            "SELECT kind, value FROM observables WHERE note_id = :n"), {"n": note_id}))
        db.session.remove()

    assert rate > 0
    assert len(stored["stix_objects"]) == len(objects)
    for table, rows in stored.items():
        assert floored[table] == rows, table
    assert len(stored["collection_objects"]) == len(objects)
    assert floored_observables == observables
    assert observables or workload == "attack"  # ATT&CK's objects carry no observable
