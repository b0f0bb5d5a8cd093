"""pending_registrations: a registration waits for its address to be confirmed

Revision ID: e7b2c5d9a3f1
Revises: d4e8a1c7f2b5
Create Date: 2026-11-27 22:00:00

Registering created the organisation and its first user at once, and said when an address
had an account already: anyone could learn which addresses (and, through names taken, which
registrations) exist. Now the form's answer is the same for every address, and nothing is
created until the link mailed to the address is opened.
"""
import sqlalchemy as sa
from alembic import op

revision = 'e7b2c5d9a3f1'
down_revision = 'd4e8a1c7f2b5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pending_registrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_registrations')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_pending_registrations_token_hash')),
    )
    op.create_index(op.f('ix_pending_registrations_email'), 'pending_registrations', ['email'])
    op.create_index(op.f('ix_pending_registrations_created_at'), 'pending_registrations',
                    ['created_at'])


def downgrade():
    op.drop_index(op.f('ix_pending_registrations_created_at'),
                  table_name='pending_registrations')
    op.drop_index(op.f('ix_pending_registrations_email'), table_name='pending_registrations')
    op.drop_table('pending_registrations')
