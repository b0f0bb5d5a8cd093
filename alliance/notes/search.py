"""Full-text search over notes: one service, two engines.

SQLite (the embedded default) keeps an FTS5 table `note_search` (rowid = note id) filled by
triggers on `notes`; PostgreSQL uses a GIN index on to_tsvector(title, description,
labels) with a text search configuration `alliance_search` ('simple' words, accents
folded by unaccent). Both are created by the migration (20261127_c41d9a7e5b10). Words are matched whole,
case- and accent-insensitively, all of them (AND); no stemming, so that "phish" does not find
"phishing" in one engine and not the other. Observable values are matched separately, exactly
and normalised (alliance.notes.observables), through the observables table.

match_clause() returns a condition on Note.id to add to a statement that came from the read
rule (alliance.sharing.policy); it never selects notes itself."""
import re

from sqlalchemy import Integer, bindparam, column, text

from alliance.extensions import db
from alliance.notes.models import Note

MAX_WORDS = 12
_WORD = re.compile(r"\w+", re.UNICODE)

# The same expression as the PostgreSQL index ix_notes_search, so that the planner uses it.
PG_DOCUMENT = ("to_tsvector('alliance_search'::regconfig, coalesce(notes.title, '') || ' ' || "
               "coalesce(notes.description, '') || ' ' || coalesce(notes.labels::text, ''))")


def words(query: str) -> list[str]:
    """The words of a query, as both engines split text (letters and digits)."""
    return _WORD.findall((query or "").lower())[:MAX_WORDS]


def match_clause(query: str):
    """A condition on Note.id: the note's title, description or labels hold every word of
    the query. None when the query has no words."""
    found = words(query)
    if not found:
        return None
    if db.session.get_bind().dialect.name == "postgresql":
        query = f"{PG_DOCUMENT} @@ plainto_tsquery('alliance_search'::regconfig, :fts_q)"
        return text(query).bindparams(bindparam("fts_q", " ".join(found)))
    fts = " ".join('"' + w.replace('"', '""') + '"' for w in found)
    matching = text("SELECT rowid FROM note_search WHERE note_search MATCH :fts_q").bindparams(
        bindparam("fts_q", fts)).columns(column("rowid", Integer))
    return Note.id.in_(matching)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For Alembic's autogenerate: the search table (and FTS5's shadow tables) and index are
    made by hand in the migration and are not in the models; leave them alone."""
    if type_ == "table" and name and name.startswith("note_search"):
        return False
    return not (type_ == "index" and name == "ix_notes_search")
