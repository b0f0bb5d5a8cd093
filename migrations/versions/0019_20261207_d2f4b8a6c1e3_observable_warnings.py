"""observables.warning: values on a warning list are marked and never correlated

Revision ID: d2f4b8a6c1e3
Revises: c5e1a7d3f9b2
Create Date: 2026-12-07 03:00:00

An observable on one of the platform's warning lists (alliance.notes.warninglists: private
and special-use address space, public resolvers, top sites, empty-file hashes) is stored
with the list's id: correlation and watch alerts leave it out, the note page marks it. The
observables stored before are checked now, once per distinct value.
"""
import sqlalchemy as sa
from alembic import op

revision = 'd2f4b8a6c1e3'
down_revision = 'c5e1a7d3f9b2'
branch_labels = None
depends_on = None


def upgrade():
    from alliance.notes import warninglists

    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warning', sa.String(length=40), nullable=True))
    bind = op.get_bind()
    observables = sa.table('observables', sa.column('kind', sa.String),
                           sa.column('value', sa.String), sa.column('warning', sa.String))
    flagged = []
    for kind, value in bind.execute(sa.select(observables.c.kind, observables.c.value)
                                    .distinct()):
        warning = warninglists.warning_of(kind, value)
        if warning:
            flagged.append({"k": kind, "v": value, "w": warning})
    if flagged:
        bind.execute(observables.update().where(
            observables.c.kind == sa.bindparam("k"), observables.c.value == sa.bindparam("v"))
            .values(warning=sa.bindparam("w")), flagged)


def downgrade():
    with op.batch_alter_table('observables', schema=None) as batch_op:
        batch_op.drop_column('warning')
