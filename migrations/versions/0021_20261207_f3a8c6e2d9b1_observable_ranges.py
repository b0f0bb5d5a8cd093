"""observables.net_lo / net_hi: addresses and networks correlate by range

Revision ID: f3a8c6e2d9b1
Revises: 8e9d1b7f0608
Create Date: 2026-12-07 06:05:00

An address inside a network another note shares correlates with it, and a search by a
network finds the addresses inside it (alliance.notes.ranges). On PostgreSQL a GiST index
on the value as inet (address and network kinds only) answers "inside" and "around"; on
SQLite each address or network observable is stored with its first and last address as
fixed-width text (the IP version and 32 hex digits, which sorts as the numbers do) under a
(kind, net_lo, net_hi) index. The observables stored before are filled in now, once per
distinct value.
"""
import sqlalchemy as sa
from alembic import op

revision = 'f3a8c6e2d9b1'
down_revision = '8e9d1b7f0608'
branch_labels = None
depends_on = None

IP_KINDS = ('ipv4', 'ipv6', 'cidr4', 'cidr6')


def upgrade():
    from alliance.notes import ranges

    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.add_column(sa.Column('net_lo', sa.String(length=33), nullable=True))
        batch_op.add_column(sa.Column('net_hi', sa.String(length=33), nullable=True))
        batch_op.create_index('ix_observables_kind_net', ['kind', 'net_lo', 'net_hi'],
                              unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        # alliance.notes.ranges.PG_NETWORK: the same expression, for the planner to match.
        op.execute("CREATE INDEX ix_observables_network ON observables USING gist "
                   "((CASE WHEN observables.kind IN ('ipv4', 'ipv6', 'cidr4', 'cidr6') "
                   "THEN observables.value::inet END) inet_ops)")
    observables = sa.table('observables', sa.column('kind', sa.String),
                           sa.column('value', sa.String), sa.column('net_lo', sa.String),
                           sa.column('net_hi', sa.String))
    filled = []
    for kind, value in bind.execute(sa.select(observables.c.kind, observables.c.value)
                                    .where(observables.c.kind.in_(IP_KINDS)).distinct()):
        lo, hi = ranges.bounds(kind, value)
        if lo is not None:
            filled.append({"k": kind, "v": value, "lo": lo, "hi": hi})
    if filled:
        bind.execute(observables.update().where(
            observables.c.kind == sa.bindparam("k"), observables.c.value == sa.bindparam("v"))
            .values(net_lo=sa.bindparam("lo"), net_hi=sa.bindparam("hi")), filled)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX ix_observables_network")
    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.drop_index('ix_observables_kind_net')
        batch_op.drop_column('net_hi')
        batch_op.drop_column('net_lo')
