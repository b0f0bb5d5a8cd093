"""collection_objects: one row per object version and alliance, dated when it entered there

Revision ID: d4e8a1c7f2b5
Revises: c9d2e7f3a1b4
Create Date: 2026-11-27 21:40:00

A collection row's date_added was a copy of the object version's, and notes TAXII does not
serve (TLP:RED, retracted) filled the table too. So a version stored long ago and posted
later to another alliance (or first served later) entered that collection with its old
date, and a client reading the collection with added_after never saw it. Rows are now dated
when a served note first brings the version to the alliance: the later of the note's post
and the version's storing. The primary key (alliance_id, date_added, object_id) then no
longer keeps a version from being listed twice in one collection: the unique index below
does (and finds an object's rows). Existing rows are rebuilt under the new rule; a date
only ever moves later, so no client misses a version it has not read.
"""
from alembic import op

revision = 'd4e8a1c7f2b5'
down_revision = 'c9d2e7f3a1b4'
branch_labels = None
depends_on = None

# alliance.notes.services.COLLECT_ALL_SQL as of this revision (a migration keeps its own).
REBUILD = (
    "INSERT INTO collection_objects (alliance_id, date_added, object_id, type) "
    "SELECT note_audiences.alliance_id, MIN(CASE WHEN notes.created_at > stix_objects.date_added "
    "THEN notes.created_at ELSE stix_objects.date_added END), stix_objects.id, stix_objects.type "
    "FROM note_objects JOIN notes ON notes.id = note_objects.note_id "
    "JOIN note_audiences ON note_audiences.note_id = note_objects.note_id "
    "JOIN stix_objects ON stix_objects.id = note_objects.object_id "
    "WHERE notes.tlp <> 'RED' AND notes.retracted_at IS NULL "
    "GROUP BY note_audiences.alliance_id, stix_objects.id, stix_objects.type")


def upgrade():
    op.execute("DELETE FROM collection_objects")
    op.create_index('ix_collection_objects_object_alliance', 'collection_objects',
                    ['object_id', 'alliance_id'], unique=True)
    op.execute(REBUILD)


def downgrade():
    op.drop_index('ix_collection_objects_object_alliance', table_name='collection_objects')
