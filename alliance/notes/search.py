"""Full-text search over notes: one service, two engines.

SQLite (the embedded default) keeps an FTS5 table `note_search` (rowid = note id) filled by
triggers on `notes`; PostgreSQL uses a GIN index on to_tsvector(title, description,
labels) with a text search configuration `alliance_search` ('simple' words, accents
folded by unaccent). Both are created by the migration (20261127_c41d9a7e5b10). Words are matched whole,
case- and accent-insensitively, all of them (AND); no stemming, so that "phish" does not find
"phishing" in one engine and not the other. Observable values are matched separately, exactly
and normalised (alliance.stix.observables), through the observables table.

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


def _fts_query(found: list[str]) -> str:
    """An FTS5 query for every one of these words, each a quoted string."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in found)


def match_clause(query: str):
    """A condition on Note.id: the note's title, description or labels hold every word of
    the query. None when the query has no words."""
    found = words(query)
    if not found:
        return None
    if db.session.get_bind().dialect.name == "postgresql":
        query = f"{PG_DOCUMENT} @@ plainto_tsquery('alliance_search'::regconfig, :fts_q)"
        return text(query).bindparams(bindparam("fts_q", " ".join(found)))
    matching = text("SELECT rowid FROM note_search WHERE note_search MATCH :fts_q").bindparams(
        bindparam("fts_q", _fts_query(found))).columns(column("rowid", Integer))
    return Note.id.in_(matching)


def match_probe(query: str):
    """match_clause() for a walk of the feed index: a condition checked on each note the walk
    reaches — SQLite looks that note's id up in the search table (rowid = note id) for the
    words; PostgreSQL computes that note's document (only for the notes walked: a common word
    fills a page within a few dozen of them). None when the query has no words."""
    found = words(query)
    if not found:
        return None
    if db.session.get_bind().dialect.name == "postgresql":
        return match_clause(query)
    return text("EXISTS (SELECT 1 FROM note_search WHERE note_search MATCH :fts_q "
                "AND note_search.rowid = notes.id)").bindparams(
        bindparam("fts_q", _fts_query(found)))


def matches_often(query: str, low: int, high: int, share: float) -> bool:
    """Whether the words of the query are in `share` or more of the notes: SQLite counts the
    matches among the notes numbered low+1..high in the search index, and stops counting at
    that share; PostgreSQL asks its statistics (_pg_share). Readable or not: it only chooses
    how the feed reads the matches (alliance.notes.reading.feed), and tells the reader
    nothing."""
    found = words(query)
    if not found:
        return False
    if db.session.get_bind().dialect.name == "postgresql":
        return _pg_share(found) >= share
    wanted = max(1, round((high - low) * share))
    return db.session.scalar(text(
        "SELECT count(*) FROM (SELECT rowid FROM note_search WHERE note_search MATCH :fts_q "
        "AND rowid > :low AND rowid <= :high LIMIT :n)"),
        {"fts_q": _fts_query(found), "low": low, "high": high, "n": wanted}) >= wanted


def _pg_share(found: list[str]) -> float:
    """PostgreSQL: the share of notes that hold all these words, as its planner estimates
    it — from the statistics ANALYZE keeps of the search index's most common words
    (most_common_elems of ix_notes_search, each with the share of notes holding it), the
    words taken as independent. A word not among them is rare: 0."""
    row = db.session.execute(text(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs "
        "FROM pg_stats WHERE tablename = 'ix_notes_search'")).first()
    if row is None or row[0] is None:
        return 0.0
    shares = dict(zip(row[0], row[1], strict=False))
    share = 1.0
    for word in found:
        share *= shares.get(word, 0.0)
    return share


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For Alembic's autogenerate: the search table (and FTS5's shadow tables) and index are
    made by hand in the migration and are not in the models, nor is PostgreSQL's GiST
    index of observables as inet (alliance.notes.ranges); leave them alone."""
    if type_ == "table" and name and name.startswith("note_search"):
        return False
    return not (type_ == "index" and name in ("ix_notes_search", "ix_observables_network"))
