"""form_submissions.content_key: the same form sent again soon after, from a page of its own, posts once

Revision ID: 3bb0280ac4a9
Revises: 25cb0c561ae9
Create Date: 2026-11-28 17:12:27

Back after posting re-fetches the compose page (signed-in pages are not cached), with a new
token, and the browser fills the fields in again: "Share note" then posted the same note a
second time. A sending is now also recorded under the digest of its content alone, and the
same content from the same user within ten minutes leads to what the first stored. Rows
stored before have no content key: only their token matches them.
"""
import sqlalchemy as sa
from alembic import op

revision = '3bb0280ac4a9'
down_revision = '25cb0c561ae9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_form_submissions_user_id_content_key',
                              ['user_id', 'content_key'], unique=False)


def downgrade():
    with op.batch_alter_table('form_submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_form_submissions_user_id_content_key')
        batch_op.drop_column('content_key')
