"""stix_objects.scope: a version a TLP:RED note stores is that note's alone

Revision ID: b7e4d2a9c6f3
Revises: a3f9c2e8d1b7
Create Date: 2026-11-28 01:00:00

Versions were unique per (id, modified, organisation), and a post compared itself with every
version its organisation had stored, so a colleague whom a TLP:RED note does not name learned
what it holds: posting an SCO (whose id comes from its value) that the note holds, changed,
was a 409; unchanged, it linked the note's stored version, whose date then showed. A version
a TLP:RED note stores now has scope = that note's id, and only versions of scope 0 are
compared with or linked by later posts; the unique key takes the scope in. Existing versions
first stored by a TLP:RED note and held by no other note get their note's scope.
"""
import sqlalchemy as sa
from alembic import op

revision = 'b7e4d2a9c6f3'
down_revision = 'a3f9c2e8d1b7'
branch_labels = None
depends_on = None

PRIVATE = (
    "UPDATE stix_objects SET scope = first_note_id "
    "WHERE first_note_id IN (SELECT id FROM notes WHERE tlp = 'RED') "
    "AND NOT EXISTS (SELECT 1 FROM note_objects JOIN notes ON notes.id = note_objects.note_id "
    "WHERE note_objects.object_id = stix_objects.id AND notes.tlp <> 'RED')")


def upgrade():
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.Integer(), nullable=False, server_default='0'))
    op.execute(PRIVATE)
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_constraint('uq_stix_objects_stix_id_modified_organisation_id',
                                 type_='unique')
        batch_op.create_unique_constraint(
            'uq_stix_objects_stix_id_modified_organisation_id_scope',
            ['stix_id', 'modified', 'organisation_id', 'scope'])


# A RED note's own version that a later post stored again, as the organisation's: the two
# cannot both stay under the old key, so going down the RED note links the shared one.
_TWINS = ("FROM stix_objects AS private JOIN stix_objects AS shared ON shared.scope = 0 "
          "AND shared.stix_id = private.stix_id AND shared.modified = private.modified "
          "AND shared.organisation_id = private.organisation_id ")


def downgrade():
    op.execute("UPDATE note_objects SET object_id = (SELECT shared.id " + _TWINS +
               "WHERE private.id = note_objects.object_id) "
               "WHERE object_id IN (SELECT private.id " + _TWINS + "WHERE private.scope <> 0)")
    op.execute("DELETE FROM stix_objects WHERE id IN (SELECT private.id " + _TWINS +
               "WHERE private.scope <> 0)")
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_constraint('uq_stix_objects_stix_id_modified_organisation_id_scope',
                                 type_='unique')
        batch_op.create_unique_constraint('uq_stix_objects_stix_id_modified_organisation_id',
                                          ['stix_id', 'modified', 'organisation_id'])
        batch_op.drop_column('scope')
