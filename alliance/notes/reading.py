"""Reading notes: the feed and search, correlation, a note's objects, bundle and history.
Every query starts from the policy's readable set (alliance.sharing.policy)."""
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Integer,
    Row,
    and_,
    any_,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import selectinload

from alliance.core.queries import one_of, walk_index
from alliance.extensions import db
from alliance.notes import holders, ranges, search, served_with
from alliance.notes.models import (
    SERVED_WITH,
    Note,
    NoteAudience,
    NoteFacet,
    NoteObject,
    Observable,
    StixObject,
)
from alliance.notes.versions import links_of
from alliance.sharing.policy import (
    Principal,
    feed_position,
    last_public_retraction,
    readable_among,
    readable_notes,
)
from alliance.stix import observables

FEED_PAGE = 25


@dataclass(frozen=True, kw_only=True)
class FeedFilters:
    """What the feed is narrowed to (each None: not filtered): an audience alliance, a TLP,
    facets (a STIX type the note holds, a sector, a country, a policy tag), words or an
    observable value (`query`), and posting times (`since` inclusive, `until` exclusive)."""

    alliance_id: int | None = None
    tlp: str | None = None
    stix_type: str | None = None
    sector: str | None = None
    country: str | None = None
    policy_tag: str | None = None
    query: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def lookups(self) -> list[tuple]:
        """Each filter on another table, as (note id column, condition on that table)."""
        found = []
        if self.alliance_id:
            found.append((NoteAudience.note_id, NoteAudience.alliance_id == self.alliance_id))
        for facet, value in (("type", self.stix_type), ("sector", self.sector),
                             ("country", self.country), ("policy_tag", self.policy_tag)):
            if value:
                found.append((NoteFacet.note_id, and_(NoteFacet.facet == facet,
                                                      NoteFacet.value == value)))
        return found


def feed(principal: Principal, *, before=None, limit: int = FEED_PAGE, scan: int | None = None,
         **filters):
    """Readable notes, newest first, filtered (`filters`: FeedFilters' fields); keyset
    pagination on (created_at, id) from `before`. Returns (notes, next_cursor).

    `scan` (the feed page: FEED_SCAN): where the filters are walked (each value held by many
    notes, but maybe not all of them together), the walk passes at most this many notes,
    readable or not, from `before`. A page that ends short of `limit` with a cursor then
    means "no other match among the notes passed": the cursor goes on from the last of
    them. Without it (exports, counts), the walk goes on to the page's end, however far."""
    chosen = FeedFilters(**filters)
    lookups, query = chosen.lookups(), chosen.query
    # Values many notes hold (issue 22: type=indicator, 86% of notes; a search for
    # "phishing"): walk the feed index newest first and look each note up in the filter's
    # index, to the page's end — a few dozen lookups however many notes match. Reading every
    # match and sorting them grows with the data instead. A rare value is the other way
    # round: its few notes are looked up and sorted, where a walk would pass most notes by.
    top = _window_top(before) if lookups or query else 0
    walk = all(_held_by_many(column, condition, top) for column, condition in lookups) and (
        not query or _text_matches_many(query, top))
    if walk:
        probes = [_per_note(column == Note.id, condition) for column, condition in lookups]
        if query:
            probes.append(or_(*_text_probes(query)))
        # First: checked before the read rule on each note walked (readable_notes).
        stmt = readable_notes(principal, *probes)
    else:
        stmt = readable_notes(principal)
        for column, condition in lookups:
            stmt = stmt.where(Note.id.in_(select(column).where(condition)))
        if query:
            stmt = stmt.where(or_(*_text_match(query)))
    stmt = _page(_on_notes(stmt, chosen), before).limit(limit + 1)
    edge = None
    if walk and (lookups or query) and scan:
        # Seven common filters together may hold one note in thousands: a walk to the page's
        # end would pass them all, more of them the more notes are stored.
        edge = _scan_edge(before, scan)
        if edge is not None:
            # created_at >= first: a bound of the index range on SQLite and PostgreSQL alike.
            stmt = stmt.where(Note.created_at >= edge[0],
                              or_(Note.created_at > edge[0], Note.id >= edge[1]))
    rows = (walk_index(stmt, scalars=True) if walk and (lookups or query)
            else db.session.scalars(stmt).all())
    cursor: tuple | None = None
    if len(rows) > limit:
        cursor = (rows[limit - 1].created_at, rows[limit - 1].id)
    elif edge is not None:
        cursor = _readable_cursor(principal, edge)
    return rows[:limit], cursor


# The notes a walk of the feed page passes at most (see feed's `scan`).
FEED_SCAN = 5000


def _scan_edge(before, scan: int):
    """(created_at, id) of the `scan`-th note from `before` in the feed's order, readable or
    not: the oldest a bounded walk reaches. None when no note is older than that one (the
    walk then reads to the end, and its page does not offer to go on into nothing). An
    index-only read of `scan` + 1 entries of the feed index, never shown (_readable_cursor)."""
    rows = feed_position(scan - 1, *_keyset(before))
    return rows[0] if len(rows) == 2 else None


def _readable_cursor(principal: Principal, edge) -> tuple | None:
    """The cursor going on after a bounded walk that stopped at `edge`, naming a note the
    reader may read (the edge may be one they may not: its date and id must not show): the
    edge itself when readable; else the newest readable note older than it, included in the
    next page (its id + 1: a cursor takes what is strictly older); None when there is none.
    The notes between are ones the reader may not read, so no match is skipped."""
    found = walk_index(readable_notes(principal, or_(
        Note.created_at < edge[0], and_(Note.created_at == edge[0], Note.id <= edge[1])))
        .with_only_columns(Note.created_at, Note.id)
        .order_by(Note.created_at.desc(), Note.id.desc()).limit(1))
    if not found:
        return None
    created, note_id = found[0]
    return (created, note_id) if (created, note_id) == (edge[0], edge[1]) else \
        (created, note_id + 1)


def _keyset(before) -> list:
    """The keyset condition of a page after `before` (created_at, id), as a list."""
    if not before:
        return []
    created, note_id = before
    return [or_(Note.created_at < created, and_(Note.created_at == created, Note.id < note_id))]


def _on_notes(stmt, filters: FeedFilters):
    """The filters on the notes' own columns: the TLP, the posting times."""
    if filters.tlp:
        stmt = stmt.where(Note.tlp == filters.tlp)
    if filters.since:
        stmt = stmt.where(Note.created_at >= filters.since)
    if filters.until:
        stmt = stmt.where(Note.created_at < filters.until)
    return stmt


def _page(stmt, before):
    """Newest first, from after `before` (created_at, id), the last note of a page before."""
    return stmt.where(*_keyset(before)).order_by(Note.created_at.desc(), Note.id.desc())


def feed_updated(notes) -> datetime:
    """The public feed's <updated>: the last time anything in it changed, which never goes
    back (RFC 4287 4.2.15). A retraction takes a note out of the feed: when it happened
    counts too, or the feed would seem older after it (the retracted note was public, so its
    retraction time reveals nothing)."""
    retracted = last_public_retraction()
    times = [n.updated_at for n in notes] + ([retracted] if retracted else [])
    return max(times) if times else datetime(2000, 1, 1, tzinfo=UTC)


# How the feed tells a common filter value from a rare one: among the FEED_WINDOW notes
# numbered up to where the page starts (ids follow posting order), one note in 100 or more
# holds it. Common: a walk of the feed index finds a page's notes within some 100 notes per
# note of the page, however many notes are stored. Rare: its notes are looked up and sorted.
FEED_WINDOW = 2000
FEED_COMMON = FEED_WINDOW // 100


def _window_top(before) -> int:
    """The highest note id the page can hold (an estimate: ids follow posting order)."""
    if before:
        return before[1]
    return db.session.scalar(select(func.max(NoteAudience.note_id))) or 0


def _held_by_many(column, condition, top: int) -> bool:
    """Whether FEED_COMMON or more of the FEED_WINDOW notes numbered up to `top` are in a
    filter's table (audiences, facets, observables; `column` its note id) under `condition`.
    Reads at most that many index entries of it. Readable or not: it only chooses the plan
    and tells the reader nothing."""
    return db.session.scalars(select(func.count()).select_from(
        select(column).where(condition, column > top - FEED_WINDOW, column <= top)
        .limit(FEED_COMMON).subquery())).one() >= FEED_COMMON  # COUNT: one row


def _text_matches_many(query: str, top: int) -> bool:
    """A search many notes match: by their words, or by the observable value it names."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    return search.matches_often(q, top - FEED_WINDOW, top, FEED_COMMON / FEED_WINDOW) or \
        _held_by_many(Observable.note_id,
                      Observable.value == (hit[1] if hit else q.lower()), top)


def _per_note(*conditions):
    """EXISTS (SELECT 1 ... WHERE conditions): one index lookup for each note a walk of the
    feed reaches, the conditions tying it to that note (`NoteFacet.note_id == Note.id`) of
    a statement from the read rule. On PostgreSQL, OFFSET 0 keeps it a lookup per note
    instead of a join that reads (or hashes) every matching row first."""
    subquery = select(literal(1)).where(*conditions)
    if db.session.get_bind().dialect.name == "postgresql":
        subquery = subquery.offset(0)
    return subquery.exists()


def _text_probes(query: str):
    """_text_match for a walk of the feed: each condition looks the walked note up (its
    observables by note id, its words in the search index)."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    probes = [_per_note(Observable.note_id == Note.id,
                        Observable.value == (hit[1] if hit else q.lower()))]
    words = search.match_probe(q)
    if words is not None:
        probes.append(words)
    return probes


def _text_match(query: str):
    """Full-text words in title, description and labels (alliance.notes.search), or the
    normalised observable value."""
    q = query.strip()[:200]
    hit = observables.detect(q)
    by_value = select(Observable.note_id).where(
        Observable.value == (hit[1] if hit else q.lower()))
    if db.session.connection().dialect.name == "postgresql":
        # `id = ANY(ARRAY(subquery))` rather than `id IN (subquery)`: ORed with the full-text
        # condition, PostgreSQL then combines the primary key and the search index
        # (BitmapOr) instead of walking the feed index and computing every note's search
        # document, which grows with the notes stored (tests/bench/test_query_plans.py).
        matches = [Note.id == any_(func.array(by_value.scalar_subquery()))]
    else:
        matches = [Note.id.in_(by_value)]
    words = search.match_clause(q)
    if words is not None:
        matches.append(words)
    return matches


# Candidates of a correlation checked through the read rule at once, newest first.
CANDIDATES_AT_ONCE = 500


def correlated(principal: Principal, note: Note, limit: int = 50) -> list[tuple[Note, list]]:
    """Other readable notes sharing an observable with this one (common and warning-listed
    values excluded), the `limit` newest (by posting order) shown newest first, each with
    the values it shares. Per
    value, only the newest holders.CORRELATION_HOLDERS notes holding it are candidates (an
    index walk, issue 22): a value thousands of notes share costs no more than one a
    thousand do, and the reader sees the latest of them."""
    mine = select(Observable.value).where(Observable.note_id == note.id,
                                          Observable.value.not_in(observables.COMMON_VALUES),
                                          Observable.warning.is_(None))  # warninglists
    candidates: set[int] = set()
    for chunk in holders.chunks(sorted(set(db.session.scalars(mine)))):
        held, params = holders.newest(chunk, note.id)
        candidates.update(db.session.scalars(select(held.c.note_id).distinct(), params))
    # The newest first (ids follow posting order), through the rule a batch at a time until
    # `limit` are readable: a note of 1,000 values has some 8,000 candidates at 100,000
    # notes, and checking every one of them took 70 ms of its page.
    newest: list[int] = []
    ordered = sorted(candidates, reverse=True)
    for start in range(0, len(ordered), CANDIDATES_AT_ONCE):
        batch = ordered[start:start + CANDIDATES_AT_ONCE]
        readable = readable_among(principal, batch)
        newest += [note_id for note_id in batch if note_id in readable]
        if len(newest) >= limit:
            break
    newest = newest[:limit]
    # With their organisations, which the page names (one query, not one per note).
    rows = sorted(db.session.scalars(readable_notes(principal, Note.id.in_(newest)).options(
        selectinload(Note.organisation))).all(),
        key=lambda n: (n.created_at, n.id), reverse=True) if newest else []
    # The shared values of every related note, in one query (not one per note).
    shared_values: dict[int, set[str]] = {}
    if rows:
        for note_id, value in db.session.execute(select(Observable.note_id, Observable.value)
                                                 .where(Observable.note_id.in_(
                                                     [other.id for other in rows]),
                                                     Observable.value.in_(mine))):
            shared_values.setdefault(note_id, set()).add(value)
    return [(other, sorted(shared_values.get(other.id, ()))) for other in rows]


def who_has_seen(principal: Principal, raw_value: str,
                 limit: int = 50) -> tuple[str | None, Sequence[Note]]:
    """"Has anyone I share with seen this?": readable notes carrying the value, and for an
    address or network those holding one inside or around it (ranges.notes_in_range)."""
    hit = observables.detect(raw_value or "")
    if hit is None:
        return None, []
    if hit[1] in observables.COMMON_VALUES:
        return hit[1], []
    notes = db.session.scalars(
        readable_notes(principal).where(Note.id.in_(select(Observable.note_id).where(
            Observable.value == hit[1]))).order_by(Note.created_at.desc()).limit(limit)).all()
    if hit[0] in ranges.IP_KINDS:
        by_id = {n.id: n for n in [*notes, *ranges.notes_in_range(principal, *hit, limit)]}
        notes = sorted(by_id.values(), key=lambda n: (n.created_at, n.id), reverse=True)[:limit]
    return hit[1], notes


def _objects_of(note: Note):
    """select(StixObject): the note's own objects (not what is served beside them)."""
    return (select(StixObject).join(NoteObject, NoteObject.object_id == StixObject.id)
            .where(NoteObject.note_id == note.id, StixObject.scope != SERVED_WITH))


def note_objects(note: Note) -> Sequence[Row]:
    """The objects of a note the caller has already read through the policy, as rows with
    StixObject's columns as attributes (o.id, o.stix_id, o.type, o.body, ...), read only:
    a note of 1,000 objects loads in less than half the time of 1,000 StixObjects."""
    return db.session.execute(_objects_of(note).with_only_columns(
        *StixObject.__table__.columns).order_by(StixObject.type, StixObject.stix_id)).all()


def note_bundle(note: Note, objects: Sequence[Row] | None = None) -> dict:
    """A STIX 2.1 bundle of the note with what its objects need beside them (served_with):
    the identities of the platform organisations that created them, the TLP 2.0 marking
    definitions they use with their extension definition and its creator. `objects`: the
    note's objects (note_objects), when the caller has them already (the note page), so they
    are not read twice."""
    objs = [row.body for row in (note_objects(note) if objects is None else objects)]
    objs += [body for _owner, body in served_with.needed(db.session, objs, note.tlp)]
    # A bundle is a wrapper, not an object with a life of its own: a version 4 id each time,
    # as STIX 2.1 says ids SHOULD be (stix2-validator's strict mode checks it).
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
            "objects": objs}


@dataclass(frozen=True)
class Version:
    """One stored version of an object, as a reader's history shows it: `added` is when it
    became readable to them, not when it was first stored. Its body is read when asked for
    (the page shows ids and dates only)."""

    id: int
    stix_id: str
    modified: str
    first_note_id: int
    added: datetime

    @property
    def body(self) -> dict:
        return db.session.get_one(StixObject, self.id).body


def _posted(principal: Principal, note_ids: set[int]) -> dict[int, datetime]:
    """note id -> when it was posted, for those of the notes the principal may read."""
    if not note_ids:
        return {}
    return dict(db.session.execute(readable_notes(principal).with_only_columns(
        Note.id, Note.created_at).where(one_of(Note.id, note_ids, Integer))).all())


def history(principal: Principal, note: Note) -> list[Version]:
    """Versions of the note's objects, newest first, by the organisations whose versions the
    note holds — only versions held by notes the principal may read (a version posted in
    another, unreadable note stays out of sight).
    A version first stored by a note the principal may not read (a TLP:RED note, a note in
    another alliance) and linked by a later one is dated as that later note: its own date
    would tell them when the note they may not read was posted. The versions' bodies are
    not read."""
    held = {(stix_id, org_id) for stix_id, org_id in db.session.execute(
        _objects_of(note).with_only_columns(StixObject.stix_id, StixObject.organisation_id))}
    # Plain rows, not StixObjects: a note of 1,000 objects loads 1,000 or more. One
    # statement, the ids as one parameter (queries.one_of), each looked up in the
    # (stix_id, ...) index.
    rows = db.session.execute(select(
        StixObject.id, StixObject.stix_id, StixObject.modified, StixObject.organisation_id,
        StixObject.first_note_id, StixObject.date_added).where(
        one_of(StixObject.stix_id, {stix_id for stix_id, _ in held}))).all()
    # One organisation's versions of an id are one history: another organisation's copy
    # of the same id (a third-party object it re-shared) is not this note's.
    rows = [r for r in rows if (r.stix_id, r.organisation_id) in held]
    # The notes the principal may read among those that first stored them, with when each
    # was posted; then, for the versions whose first note they may not read only, the other
    # notes holding them (a note of 1,000 objects it stored itself needs none).
    posted = _posted(principal, {r.first_note_id for r in rows})
    holders: dict[int, list[int]] = {}
    for object_id, note_id in links_of(r.id for r in rows if r.first_note_id not in posted):
        holders.setdefault(object_id, []).append(note_id)
    posted |= _posted(principal, {n for held in holders.values() for n in held} - set(posted))
    versions = []
    for r in rows:
        # Earlier versions of an edited note's report are held by no note any more; they
        # belong to the note they were first posted in.
        if r.first_note_id in posted:
            added = r.date_added
        else:
            seen = [posted[n] for n in holders.get(r.id, ()) if n in posted]
            if not seen:
                continue
            added = max(r.date_added, min(seen))
        versions.append(Version(r.id, r.stix_id, r.modified, r.first_note_id, added))
    return sorted(versions, key=lambda v: (-v.added.timestamp(), v.stix_id))
