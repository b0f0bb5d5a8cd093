"""drop ix_stix_objects_organisation_id: no query reads stix_objects by organisation

Revision ID: b8e1f4a2c6d3
Revises: a7d3e9c1b5f2
Create Date: 2026-11-27 17:10:00

Objects are found by STIX id (the unique (stix_id, modified, organisation_id) index), by
(date_added, id) and (type, date_added, id) for TAXII, and by first_note_id; never by
organisation, and organisations are never deleted (suspended instead), so the foreign key
needs no index either. The index only cost an insert per stored object.
"""
from alembic import op

revision = 'b8e1f4a2c6d3'
down_revision = 'a7d3e9c1b5f2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_stix_objects_organisation_id')


def downgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.create_index('ix_stix_objects_organisation_id', ['organisation_id'],
                              unique=False)
