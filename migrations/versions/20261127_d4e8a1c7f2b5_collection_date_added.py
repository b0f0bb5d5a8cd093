"""collection_objects: one row per object version and alliance, dated when it was added there

Revision ID: d4e8a1c7f2b5
Revises: c9d2e7f3a1b4
Create Date: 2026-11-27 21:40:00

A collection row's date_added was a copy of the object version's, so a version stored long
ago and posted later to another alliance entered that alliance's TAXII collection with its
old date: a client reading the collection with added_after never saw it. Rows are now dated
when they enter the collection, so the primary key (alliance_id, date_added, object_id) no
longer keeps a version from being listed twice in one collection: this unique index does
(and lets an object's rows be found by its id). Existing rows keep their dates.
"""
from alembic import op

revision = 'd4e8a1c7f2b5'
down_revision = 'c9d2e7f3a1b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_collection_objects_object_alliance', 'collection_objects',
                    ['object_id', 'alliance_id'], unique=True)


def downgrade():
    op.drop_index('ix_collection_objects_object_alliance', table_name='collection_objects')
