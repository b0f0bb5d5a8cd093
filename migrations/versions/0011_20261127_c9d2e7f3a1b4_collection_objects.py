"""collection_objects: each alliance's object versions in TAXII order

Revision ID: c9d2e7f3a1b4
Revises: b8e1f4a2c6d3
Create Date: 2026-11-27 17:20:00

A TAXII page of an alliance collection walked every stored object in (date_added, id) order
and checked each for a readable note of the alliance: the smaller the alliance's share of
the table, the more objects a page checked (2,993 for a page of 101 at 1,000,000 objects).
It now walks this table's primary key, (alliance_id, date_added, object_id), which holds
only the alliance's objects; the read rule is still checked for each one. Filled from what
notes hold now (note_objects and note_audiences); alliance.notes.services keeps it filled.
On SQLite a WITHOUT ROWID table: the primary key is the table, one B-tree per row written.
"""
import sqlalchemy as sa
from alembic import op

revision = 'c9d2e7f3a1b4'
down_revision = 'b8e1f4a2c6d3'
branch_labels = None
depends_on = None

BACKFILL = (
    "INSERT INTO collection_objects (alliance_id, date_added, object_id, type) "
    "SELECT DISTINCT note_audiences.alliance_id, stix_objects.date_added, stix_objects.id, "
    "stix_objects.type FROM note_objects "
    "JOIN note_audiences ON note_audiences.note_id = note_objects.note_id "
    "JOIN stix_objects ON stix_objects.id = note_objects.object_id")


def upgrade():
    op.create_table(
        'collection_objects',
        sa.Column('alliance_id', sa.Integer(), nullable=False),
        sa.Column('date_added', sa.DateTime(), nullable=False),
        sa.Column('object_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(['alliance_id'], ['alliances.id'],
                                name=op.f('fk_collection_objects_alliance_id_alliances'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['object_id'], ['stix_objects.id'],
                                name=op.f('fk_collection_objects_object_id_stix_objects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('alliance_id', 'date_added', 'object_id',
                                name=op.f('pk_collection_objects')),
        sqlite_with_rowid=False,
    )
    op.execute(BACKFILL)


def downgrade():
    op.drop_table('collection_objects')
