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


# Going down, versions may no longer share (id, modified, organisation). A RED note's own
# version that another of the organisation's versions repeats to the letter (the same
# body_hash) is folded into it: the notes holding it link the one kept (the shared one
# first, then the oldest). One that differs cannot be kept under the old key: the downgrade
# stops, changing nothing, rather than lose what a TLP:RED note holds.
_SAME = ("keep.stix_id = gone.stix_id AND keep.modified = gone.modified "
         "AND keep.organisation_id = gone.organisation_id AND keep.body_hash = gone.body_hash")
_ORDER = " ORDER BY CASE WHEN keep.scope = 0 THEN 0 ELSE 1 END, keep.id LIMIT 1"
_KEPT = "(SELECT keep.id FROM stix_objects AS keep WHERE " + _SAME + _ORDER + ")"
_FOLDED = "SELECT gone.id FROM stix_objects AS gone WHERE gone.scope <> 0 AND gone.id <> " + _KEPT
_RELINK = ("UPDATE note_objects SET object_id = (SELECT keep.id FROM stix_objects AS keep "
           "JOIN stix_objects AS gone ON gone.id = note_objects.object_id WHERE " + _SAME +
           _ORDER + ") WHERE object_id IN (" + _FOLDED + ")")


def downgrade():
    op.execute(_RELINK)
    op.execute("DELETE FROM stix_objects WHERE id IN (" + _FOLDED + ")")
    clashes = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM stix_objects AS a JOIN stix_objects AS b "
        "ON a.stix_id = b.stix_id AND a.modified = b.modified "
        "AND a.organisation_id = b.organisation_id AND a.id < b.id").scalar()
    if clashes:
        raise RuntimeError(
            f"Cannot go below b7e4d2a9c6f3: {clashes} TLP:RED note version(s) differ from "
            "another version of the same organisation with the same id and modified, and the "
            "older schema can keep only one. Nothing was changed.")
    with op.batch_alter_table('stix_objects', schema=None) as batch_op:
        batch_op.drop_constraint('uq_stix_objects_stix_id_modified_organisation_id_scope',
                                 type_='unique')
        batch_op.create_unique_constraint('uq_stix_objects_stix_id_modified_organisation_id',
                                          ['stix_id', 'modified', 'organisation_id'])
        batch_op.drop_column('scope')
