"""Served with: organisations' identities and TLP 2.0 definitions beside the notes' objects

Revision ID: c5e1a7d3f9b2
Revises: 3bb0280ac4a9
Create Date: 2026-12-07 02:30:00

TAXII collections now serve, beside a note's objects, the identity of each platform
organisation that created them and the TLP 2.0 marking definitions they name, with the TLP
extension definition and its creator (alliance.notes.served_with), so that every
created_by_ref and marking reference the platform adds resolves in the collection. New posts
link them; this links them to the notes stored before, from what their objects name (read
once, per distinct creator and markings), and dates them in the collections now (after
everything there), so a client polling with added_after gets them.
"""
from alembic import op
from sqlalchemy import select, text
from sqlalchemy.orm import Session

revision = 'c5e1a7d3f9b2'
down_revision = '3bb0280ac4a9'
branch_labels = None
depends_on = None


def upgrade():
    import json
    from collections import defaultdict

    from alliance.core.models import utcnow
    from alliance.notes import served_with
    from alliance.notes.models import Note, NoteObject, StixObject
    from alliance.taxii.collections import collect_statements

    bind = op.get_bind()
    session = Session(bind=bind)
    now = utcnow()
    notes = {note_id: (organisation_id, tlp) for note_id, organisation_id, tlp in
             session.execute(select(Note.id, Note.organisation_id, Note.tlp))}
    # What each note's objects name: their creators and their markings.
    named = defaultdict(lambda: (set(), set()))
    for note_id, creator, markings in session.execute(select(
            NoteObject.note_id, StixObject.body["created_by_ref"].as_string(),
            StixObject.body["object_marking_refs"].as_string())
            .join(StixObject, StixObject.id == NoteObject.object_id)
            .where(StixObject.scope != -1).distinct()):
        creators, refs = named[note_id]
        if creator:
            creators.add(creator)
        if markings:
            refs.update(r for r in json.loads(markings) if isinstance(r, str))
    groups = defaultdict(list)  # notes that need the same: served beside them once
    for note_id, (creators, refs) in named.items():
        organisation_id, tlp = notes[note_id]
        groups[organisation_id, tlp, frozenset(creators), frozenset(refs)].append(note_id)
    for (organisation_id, tlp, creators, refs), note_ids in groups.items():
        objects = [{"id": f"x--{n}", "created_by_ref": c} for n, c in enumerate(creators)]
        objects.append({"id": "x--markings", "object_marking_refs": sorted(refs)})
        found = served_with.rows(session, objects, tlp, organisation_id, min(note_ids), now)
        if found:
            session.execute(text(
                "INSERT INTO note_objects (note_id, object_id, note_version) "
                "VALUES (:note_id, :object_id, 1) ON CONFLICT DO NOTHING"),
                [{"note_id": n, "object_id": o} for n in note_ids for o in found])
    for statement in collect_statements(bind.dialect.name, StixObject.scope == -1,
                                        every_note=True, after=now):
        session.execute(statement)
    session.close()


def downgrade():
    for table in ("collection_objects", "organisation_collection_objects"):
        op.execute(f"DELETE FROM {table} WHERE object_id IN "  # noqa: S608 (our names)
                   "(SELECT id FROM stix_objects WHERE scope = -1)")
    op.execute("DELETE FROM note_objects WHERE object_id IN "
               "(SELECT id FROM stix_objects WHERE scope = -1)")
    op.execute("DELETE FROM stix_objects WHERE scope = -1")
