"""observables (value, note_id): correlation reads the newest holders of a value

Revision ID: 4fdf92ea0ec5
Revises: f3a8c6e2d9b1
Create Date: 2026-12-07 06:40:00

Correlation and the note page's observables table read, for each value, the newest
CORRELATION_HOLDERS notes holding it (alliance.notes.holders, issue 22): a walk of this
index from the value's highest note id, stopped after that many entries, instead of every
note holding the value. It replaces the index on the value alone, which it covers.
"""
from alembic import op

revision = '4fdf92ea0ec5'
down_revision = 'f3a8c6e2d9b1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.create_index('ix_observables_value_note', ['value', 'note_id'], unique=False)
        batch_op.drop_index('ix_observables_value')


def downgrade():
    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.create_index('ix_observables_value', ['value'], unique=False)
        batch_op.drop_index('ix_observables_value_note')
