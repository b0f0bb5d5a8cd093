"""What a note's objects need beside them wherever they are served, so that every reference
the platform adds resolves (DESIGN.md: "The author identity of every served object
(`created_by_ref`) is served with it"): the identity of each platform organisation that
created one of them, the TLP 2.0 marking definitions they name, and the extension definition
those declare themselves through, with its creator (CISA).

They are the platform's objects, not the poster's: stored as StixObject rows of scope
SERVED_WITH, which no post compares itself with (notes.versions.stored_versions) and no note
shows among its objects (notes.reading.note_objects), and linked to each note that needs
them. A TAXII collection then serves them exactly where, and to whom, it serves a note that
needs them: the one read rule decides for them as for every object, and they leave a
collection with the last note there that needed them.

An organisation's identity goes out marked TLP:AMBER+STRICT (TLP:RED with a TLP:RED note):
one body for a version wherever it is served, at least as strict as every note it is served
with (TAXII never serves TLP:RED notes)."""
import hashlib
from dataclasses import dataclass, field
from typing import cast

import orjson
from sqlalchemy import Table, select

from alliance.notes.models import SERVED_WITH, NoteObject, StixObject
from alliance.stix.markings import (
    marking_id,
    tlp2_extension_creator,
    tlp2_extension_definition,
    tlp2_objects,
)


def identity_marking(tlp: str) -> str:
    """The TLP level an organisation's identity is served with beside a note of `tlp`."""
    return "RED" if tlp == "RED" else "AMBER+STRICT"


def marked_identity(identity: dict, tlp: str) -> dict:
    """An organisation's identity as the platform vetted it, marked for a note of `tlp`."""
    return {**identity, "object_marking_refs": [marking_id(identity_marking(tlp))]}


@dataclass
class Needs:
    """What objects name that may need serving beside them: their creators and markings, and
    which of those they hold themselves (ids of identities and definitions). Gathered a part
    at a time for a note read from a file in parts (storage.NoteWriter)."""

    held: set[str] = field(default_factory=set)
    creators: set[str] = field(default_factory=set)
    markings: set[str] = field(default_factory=set)

    def add(self, objects: list[dict]) -> "Needs":
        for obj in objects:
            if obj.get("type") in _HELD_TYPES:
                self.held.add(obj["id"])
            creator = obj.get("created_by_ref")
            if isinstance(creator, str):
                self.creators.add(creator)
            self.markings.update(ref for ref in (obj.get("object_marking_refs") or ())
                                 if isinstance(ref, str))
        return self


# The types of what needed() may add: a note that holds one itself needs none beside it.
_HELD_TYPES = frozenset({"identity", "marking-definition", "extension-definition"})


def needed(session, objects: list[dict] | Needs, tlp: str) -> list[tuple[int | None, dict]]:
    """(organisation id of a platform organisation's identity, else None; the object) for what
    these objects of a note of `tlp` need beside them and do not hold themselves."""
    from alliance.orgs.models import Organisation

    needs = objects if isinstance(objects, Needs) else Needs().add(objects)
    creators = sorted(needs.creators - needs.held)
    found = [(org_id, marked_identity(identity, tlp)) for org_id, identity in session.execute(
        select(Organisation.id, Organisation.stix_identity).where(
            Organisation.stix_id.in_(creators))).all()] if creators else []
    used = needs.markings | {ref for _, body in found for ref in body["object_marking_refs"]}
    shipped = [m for m in tlp2_objects().values() if m["id"] in used]
    if shipped:
        shipped += [tlp2_extension_definition(), tlp2_extension_creator()]
    return found + [(None, m) for m in shipped if m["id"] not in needs.held]


def rows(session, objects: list[dict] | Needs, tlp: str, organisation_id: int, note_id: int,
         now) -> list[int]:
    """The rows (ids) of what `objects`, of a note of `tlp` by `organisation_id`, need beside
    them, stored where missing (`note_id`: the first note that needed them). `session`: the
    app's session, or a migration's."""
    # The dialects' insert constructs are imported where rows are written: every process
    # builds the app, and sqlalchemy.dialects.postgresql is heavy to import
    # (tests/core/test_startup.py keeps it out of start-up).
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    found = []
    for owner, body in needed(session, objects, tlp):
        version = body.get("modified") or body.get("created") or ""
        owner = owner or organisation_id
        text = orjson.dumps(body).decode()
        # Cast: a model's __table__ is typed FromClause; it is a Table.
        session.execute(insert(cast(Table, StixObject.__table__)).values(
            stix_id=body["id"], type=body["type"], modified=version, organisation_id=owner,
            first_note_id=note_id, body=body,
            body_hash=hashlib.sha256(text.encode()).hexdigest(), date_added=now,
            scope=SERVED_WITH).on_conflict_do_nothing())
        found.append(session.scalar(select(StixObject.id).where(
            StixObject.stix_id == body["id"], StixObject.modified == version,
            StixObject.organisation_id == owner, StixObject.scope == SERVED_WITH)))
    return found


def link(note, objects: list[dict] | Needs, now) -> None:
    """Store (once) what the note's `objects` need beside them and link it to the note."""
    from alliance.extensions import db

    found = rows(db.session, objects, note.tlp, note.organisation_id, note.id, now)
    if found:
        from sqlalchemy.dialects import postgresql, sqlite

        insert = (postgresql.insert if db.session.get_bind().dialect.name == "postgresql"
                  else sqlite.insert)
        db.session.execute(insert(cast(Table, NoteObject.__table__)).values(
            [{"note_id": note.id, "object_id": row_id, "note_version": 1} for row_id in found]
        ).on_conflict_do_nothing())
