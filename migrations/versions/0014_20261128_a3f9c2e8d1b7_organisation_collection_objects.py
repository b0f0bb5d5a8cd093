"""organisation_collection_objects: each organisation's own TAXII collection, dated per
collection; stix_objects loses the two indexes only that collection's pages used

Revision ID: a3f9c2e8d1b7
Revises: e7b2c5d9a3f1
Create Date: 2026-11-28 00:30:00

An organisation's own (read-only) collection walked stix_objects in the order versions were
stored, so a version stored long ago (by anyone) that a new note of the organisation linked
entered the collection with its old date, and a client reading it with added_after never saw
it (alliance collections had the same fault, fixed in d4e8a1c7f2b5). Its pages now walk this
table, the organisation-side twin of collection_objects: rows dated when a served note of the
organisation (not TLP:RED, not retracted) first held the version. Rows are built from what
notes hold now. Nothing else walks stix_objects by date: ix_stix_objects_added and
ix_stix_objects_type_added go (two B-trees fewer written per stored object).
"""
import sqlalchemy as sa
from alembic import op

revision = 'a3f9c2e8d1b7'
down_revision = 'e7b2c5d9a3f1'
branch_labels = None
depends_on = None

# alliance.notes.services.COLLECT_OWN_ALL_SQL as of this revision (a migration keeps its own).
BUILD = (
    "INSERT INTO organisation_collection_objects (organisation_id, date_added, object_id, type) "
    "SELECT notes.organisation_id, MIN(CASE WHEN notes.created_at > stix_objects.date_added "
    "THEN notes.created_at ELSE stix_objects.date_added END), stix_objects.id, stix_objects.type "
    "FROM note_objects JOIN notes ON notes.id = note_objects.note_id "
    "JOIN stix_objects ON stix_objects.id = note_objects.object_id "
    "WHERE notes.tlp <> 'RED' AND notes.retracted_at IS NULL "
    "GROUP BY notes.organisation_id, stix_objects.id, stix_objects.type")


def upgrade():
    op.create_table(
        'organisation_collection_objects',
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('date_added', sa.DateTime(), nullable=False),
        sa.Column('object_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ['organisation_id'], ['organisations.id'],
            name=op.f('fk_organisation_collection_objects_organisation_id_organisations'),
            ondelete='CASCADE'),
        sa.ForeignKeyConstraint(
            ['object_id'], ['stix_objects.id'],
            name=op.f('fk_organisation_collection_objects_object_id_stix_objects'),
            ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('organisation_id', 'date_added', 'object_id',
                                name=op.f('pk_organisation_collection_objects')),
        sqlite_with_rowid=False,
    )
    op.create_index('ix_organisation_collection_objects_object_organisation',
                    'organisation_collection_objects', ['object_id', 'organisation_id'],
                    unique=True)
    op.execute(BUILD)
    op.drop_index('ix_stix_objects_added', table_name='stix_objects')
    op.drop_index('ix_stix_objects_type_added', table_name='stix_objects')


def downgrade():
    op.create_index('ix_stix_objects_type_added', 'stix_objects', ['type', 'date_added', 'id'])
    op.create_index('ix_stix_objects_added', 'stix_objects', ['date_added', 'id'])
    op.drop_index('ix_organisation_collection_objects_object_organisation',
                  table_name='organisation_collection_objects')
    op.drop_table('organisation_collection_objects')
