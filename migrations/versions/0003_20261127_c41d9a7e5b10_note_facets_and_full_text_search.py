"""note facets and full-text search (SQLite FTS5, PostgreSQL GIN on to_tsvector)

Revision ID: c41d9a7e5b10
Revises: 8a8f6764e71c
Create Date: 2026-11-27 08:30:00

"""
import json

import sqlalchemy as sa
from alembic import op

revision = 'c41d9a7e5b10'
down_revision = '8a8f6764e71c'
branch_labels = None
depends_on = None

# Kept in step with alliance/notes/search.py (PG_DOCUMENT) — the query must use the same
# expression for PostgreSQL to use the index.
PG_DOCUMENT = ("to_tsvector('alliance_search'::regconfig, coalesce(title, '') || ' ' || "
               "coalesce(description, '') || ' ' || coalesce(labels::text, ''))")
SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE note_search USING fts5(title, description, labels, "
    "tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER notes_search_insert AFTER INSERT ON notes BEGIN "
    "INSERT INTO note_search (rowid, title, description, labels) "
    "VALUES (new.id, new.title, new.description, new.labels); END",
    "CREATE TRIGGER notes_search_update AFTER UPDATE OF title, description, labels ON notes "
    "BEGIN DELETE FROM note_search WHERE rowid = old.id; "
    "INSERT INTO note_search (rowid, title, description, labels) "
    "VALUES (new.id, new.title, new.description, new.labels); END",
    "CREATE TRIGGER notes_search_delete AFTER DELETE ON notes BEGIN "
    "DELETE FROM note_search WHERE rowid = old.id; END",
    "INSERT INTO note_search (rowid, title, description, labels) "
    "SELECT id, title, description, labels FROM notes",
]
FACET_COLUMNS = (("type", "types"), ("sector", "sectors"), ("country", "countries"),
                 ("policy_tag", "policy_tags"))


def upgrade():
    op.create_table('note_facets',
    sa.Column('facet', sa.String(length=20), nullable=False),
    sa.Column('value', sa.String(length=100), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'], name=op.f('fk_note_facets_note_id_notes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facet', 'value', 'note_id', name=op.f('pk_note_facets'))
    )
    with op.batch_alter_table('note_facets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_note_facets_note_id'), ['note_id'], unique=False)

    conn = op.get_bind()
    notes = sa.table("notes", sa.column("id"), *(sa.column(c) for _, c in FACET_COLUMNS))
    rows = []
    for row in conn.execute(sa.select(notes)).mappings():
        for facet, col in FACET_COLUMNS:
            values = row[col]
            values = json.loads(values) if isinstance(values, str) else values or []
            rows += [{"facet": facet, "value": v, "note_id": row["id"]} for v in sorted(set(values))]
    if rows:
        op.bulk_insert(sa.table("note_facets", sa.column("facet"), sa.column("value"),
                                sa.column("note_id")), rows)

    if conn.dialect.name == "postgresql":
        # Words as 'simple' splits them, accents folded (unaccent is a trusted extension: the
        # database owner may create it).
        op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        op.execute("CREATE TEXT SEARCH CONFIGURATION alliance_search (COPY = simple)")
        op.execute("ALTER TEXT SEARCH CONFIGURATION alliance_search ALTER MAPPING FOR "
                   "hword, hword_part, word WITH unaccent, simple")
        op.execute(f"CREATE INDEX ix_notes_search ON notes USING gin ({PG_DOCUMENT})")
    else:
        for statement in SQLITE_SEARCH:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_notes_search")
        op.execute("DROP TEXT SEARCH CONFIGURATION alliance_search")
    else:
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER notes_search_{trigger}")
        op.execute("DROP TABLE note_search")
    with op.batch_alter_table('note_facets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_note_facets_note_id'))

    op.drop_table('note_facets')
