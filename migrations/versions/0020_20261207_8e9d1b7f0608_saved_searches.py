"""saved_searches: a user's named feed filters

Revision ID: 8e9d1b7f0608
Revises: d2f4b8a6c1e3
Create Date: 2026-12-07 05:45:00

A signed-in user saves the feed's current filters under a name and runs them again later
(alliance.notes.saved). The filters are kept as the feed's query string and checked again
by the feed each time; a user's saved searches go with the user.
"""
import sqlalchemy as sa
from alembic import op

revision = '8e9d1b7f0608'
down_revision = 'd2f4b8a6c1e3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('saved_searches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('query', sa.String(length=2000), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_saved_searches_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_searches')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_saved_searches_user_id_name'))
    )


def downgrade():
    op.drop_table('saved_searches')
