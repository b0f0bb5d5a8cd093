"""TAXII pages by type walk an index; audiences by alliance covering

Revision ID: e5c2a9d41f07
Revises: 70a93ebcf500
Create Date: 2026-11-27 11:15:00

ix_stix_objects_type_added (type, date_added, id) replaces ix_stix_objects_type (type): a
TAXII page with match[type] then walks the index in page order and stops at the page's end
(with the one-column index SQLite read and sorted every object of the type on every page).

ix_note_audiences_alliance_note (alliance_id, note_id) replaces ix_note_audiences_alliance_id
(alliance_id): PostgreSQL answers the read rule's "an active member of an audience alliance"
by hashing the note ids of the reader's alliances; from this index alone that is an index-only
scan (measured at 1,000,000 objects: ~20-36 ms of a feed page down to ~4-8 ms).

(PostgreSQL's JIT compilation, which cost a TAXII page ~50 ms of compiling, is turned off
for the app's connections in alliance/__init__.py, not here.)
"""
from alembic import op

revision = 'e5c2a9d41f07'
down_revision = '70a93ebcf500'
branch_labels = None
depends_on = None

def upgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_stix_objects_type')
        batch_op.create_index('ix_stix_objects_type_added', ['type', 'date_added', 'id'],
                              unique=False)
    with op.batch_alter_table('note_audiences', schema=None) as batch_op:
        batch_op.drop_index('ix_note_audiences_alliance_id')
        batch_op.create_index('ix_note_audiences_alliance_note', ['alliance_id', 'note_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('note_audiences', schema=None) as batch_op:
        batch_op.drop_index('ix_note_audiences_alliance_note')
        batch_op.create_index('ix_note_audiences_alliance_id', ['alliance_id'], unique=False)
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_index('ix_stix_objects_type_added')
        batch_op.create_index('ix_stix_objects_type', ['type'], unique=False)
