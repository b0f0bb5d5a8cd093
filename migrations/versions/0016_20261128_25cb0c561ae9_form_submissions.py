"""form_submissions: a compose or response form sent twice posts once

Revision ID: 25cb0c561ae9
Revises: b7e4d2a9c6f3
Create Date: 2026-11-28 12:56:28

A double click on "Post", or a reload of the POST, stored two notes (or two comments). Each
form page now carries a token; what a sending stored is recorded under the token and a
digest of the content sent, unique per user, and the same form sent again with the same
content leads to what the first stored.
"""
import sqlalchemy as sa
from alembic import op

revision = '25cb0c561ae9'
down_revision = 'b7e4d2a9c6f3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('form_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('form_key', sa.String(length=64), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=True),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['note_comments.id'], name=op.f('fk_form_submissions_comment_id_note_comments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'], name=op.f('fk_form_submissions_note_id_notes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_form_submissions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_submissions')),
    sa.UniqueConstraint('user_id', 'form_key', name=op.f('uq_form_submissions_user_id_form_key'))
    )
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_submissions_comment_id'), ['comment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_form_submissions_note_id'), ['note_id'], unique=False)



def downgrade():
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_submissions_note_id'))
        batch_op.drop_index(batch_op.f('ix_form_submissions_comment_id'))

    op.drop_table('form_submissions')
