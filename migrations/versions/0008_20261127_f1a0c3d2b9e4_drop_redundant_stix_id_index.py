"""drop ix_stix_objects_stix_id: the unique (stix_id, modified, organisation_id) index serves it

Revision ID: f1a0c3d2b9e4
Revises: e5c2a9d41f07
Create Date: 2026-11-27 11:52:00

Every lookup by STIX id (versions on posting, TAXII match[id], object and versions endpoints)
uses the unique index uq_stix_objects_stix_id_modified_organisation_id, whose first column is
stix_id; the one-column index only cost a second random-key index insert per stored object.
tests/bench/test_query_plans.py checks the lookups still use an index.
"""
from alembic import op

revision = 'f1a0c3d2b9e4'
down_revision = 'e5c2a9d41f07'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_stix_objects_stix_id')


def downgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.create_index('ix_stix_objects_stix_id', ['stix_id'], unique=False)
