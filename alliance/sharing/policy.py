"""THE read rule (DESIGN.md, "Who may read a note"), as one SQL filter with an explicit
principal. Every read of notes composes readable_notes() or readable_clause(): pages, lists,
counts, search, correlation, comments, sightings, exports, TAXII, digests, the public page.
Nothing else in the code base selects from `notes` (tests/sharing/test_architecture.py).

The rule, decided at read time:
- CLEAR: every signed-in user; anonymous visitors too when the author published it and one
  of its audience alliances allows public CLEAR posts.
- GREEN, AMBER, AMBER+STRICT: users of organisations that are *active* members of one of the
  note's audience alliances.
- RED: the named recipients while their organisation is an active member of an audience
  alliance, and the author.
- Always: users of the author's organisation read its non-RED notes.
- A retracted note is readable only (within the rule above) by its author's organisation and
  the coordinators of its alliances. Those the rule without its retraction term admits are
  its former readers (former_readable_clause): they are told it was retracted, and no more.
A principal that is not a usable account (deactivated, unverified, organisation not vetted) is
anonymous. Not-found and not-allowed are the same 404. The filter fails closed: an unknown
TLP value matches no branch."""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from flask import abort
from sqlalchemy import Integer, Join, Row, and_, any_, exists, false, func, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from alliance.alliances.models import Alliance, Coordinator, Membership
from alliance.extensions import db
from alliance.notes.models import Note, NoteAudience, NoteObject, NoteRecipient

SHARED_LEVELS = ("GREEN", "AMBER", "AMBER+STRICT")


@dataclass(frozen=True)
class Principal:
    """Who is reading: a user (by id and organisation) or nobody in particular."""

    user_id: int | None = None
    organisation_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None

    @classmethod
    def anonymous(cls) -> "Principal":
        return cls()

    @classmethod
    def of(cls, user) -> "Principal":
        """The principal for a user object (web session, API key's user, digest recipient).
        Anything but an active, verified user of a vetted organisation reads as anonymous."""
        if user is None or not getattr(user, "is_authenticated", False):
            return cls.anonymous()
        if not user.can_act:
            return cls.anonymous()
        return cls(user_id=user.id, organisation_id=user.organisation_id)


def _per_note(postgresql: bool, *conditions):
    """EXISTS (SELECT 1 ... WHERE conditions), looked up for each note it is asked about.

    On PostgreSQL the subquery carries OFFSET 0, which keeps the planner from turning it into
    a hashed subplan: that builds a hash of the ids of every note addressed to the reader's
    alliances before the first row, a cost that grows with the platform (some 26,000 ids,
    ~20 ms, at 1,000,000 objects), while a feed or TAXII page walks its index and looks at a
    few hundred notes, each checked by primary key (~10 us). Same rows either way; SQLite
    evaluates a correlated EXISTS per row already."""
    subquery = select(literal(1)).where(*conditions)
    if postgresql:
        subquery = subquery.offset(0)
    return subquery.exists()


def _in_active_alliances(postgresql: bool, org_id: int):
    """The condition on NoteAudience: its alliance is one the organisation is an active
    member of. The database works the list (a few ids) out once per statement, when the
    statement runs: on PostgreSQL as `= ANY(ARRAY(SELECT ...))`, an InitPlan (an `IN
    (SELECT ...)` inside the per-note subquery was joined anew for every note: at 100,000
    notes, a 90-day count of 25,000 notes spent 100 ms reading the same memberships 17,000
    times); SQLite runs an uncorrelated IN list once by itself."""
    ids = select(Membership.alliance_id).where(Membership.organisation_id == org_id,
                                               Membership.is_active)
    if postgresql:
        return NoteAudience.alliance_id == any_(func.array(ids.scalar_subquery()))
    return NoteAudience.alliance_id.in_(ids)


def _member_of_audience(postgresql: bool, org_id: int):
    """The organisation is an active member of one of the note's audience alliances."""
    return _per_note(postgresql, NoteAudience.note_id == Note.id,
                     _in_active_alliances(postgresql, org_id))


def _coordinator_of_audience(postgresql: bool, user_id: int, org_id: int | None):
    """The user coordinates one of the note's alliances, and may act as coordinator there
    (their organisation is an active member of it; a user of none never may)."""
    return _per_note(
        postgresql,
        NoteAudience.note_id == Note.id,
        Coordinator.alliance_id == NoteAudience.alliance_id,
        Coordinator.user_id == user_id,
        Membership.alliance_id == NoteAudience.alliance_id,
        Membership.organisation_id == org_id,
        Membership.is_active)


def _public_clause():
    public_alliance = exists().where(
        NoteAudience.note_id == Note.id,
        Alliance.id == NoteAudience.alliance_id,
        Alliance.publish_clear_allowed.is_(True))
    return and_(Note.tlp == "CLEAR", Note.publish_public.is_(True),
                Note.retracted_at.is_(None), public_alliance)


def last_public_retraction():
    """When a note of the public feed (TLP:CLEAR, published) was last retracted, or None:
    the feed's <updated> never goes back. A public note's retraction time reveals nothing."""
    return db.session.scalar(select(func.max(Note.retracted_at)).where(
        Note.tlp == "CLEAR", Note.publish_public.is_(True)))


def readable_clause(principal: Principal):
    """The SQL condition on Note that is true exactly for the notes the principal may read."""
    return _readable_clause(principal, db.session.get_bind().dialect.name == "postgresql")


@lru_cache(maxsize=256)  # a few KB each; a request or digest reuses its own
def _readable_clause(principal: Principal, postgresql: bool):
    """readable_clause, built once per principal and database kind in a process. Safe to
    share: the clause is SQL only (nothing in it is looked up when it is built; memberships,
    retractions, recipients are read by the database when a statement runs), statements are
    immutable, and the key is everything it is built from. Building it cost a worker about
    as much as running a digest's count."""
    if principal.is_anonymous:
        return _public_clause()
    uid, oid = principal.user_id, principal.organisation_id
    if uid is None or oid is None:  # (uid is set: not anonymous)
        return false()
    not_withdrawn = or_(Note.retracted_at.is_(None), Note.organisation_id == oid,
                        _coordinator_of_audience(postgresql, uid, oid))
    return and_(_may_read_clause(principal, postgresql), not_withdrawn)


def _may_read_clause(principal: Principal, postgresql: bool):
    """The rule for a signed-in principal as if no note were retracted: readable_clause is
    this and the retraction term, former_readable_clause this and the note being retracted.
    Anonymous and organisation-less principals match nothing here (the public page has its
    own clause, which a retraction leaves; nobody is told there)."""
    uid, oid = principal.user_id, principal.organisation_id
    if principal.is_anonymous or oid is None:
        return false()
    own_org = Note.organisation_id == oid
    named = exists().where(NoteRecipient.note_id == Note.id, NoteRecipient.user_id == uid)
    return or_(
        and_(Note.tlp.in_(("CLEAR",) + SHARED_LEVELS), own_org),
        and_(Note.tlp == "RED", Note.author_id == uid),
        Note.tlp == "CLEAR",
        and_(Note.tlp.in_(SHARED_LEVELS), _member_of_audience(postgresql, oid)),
        and_(Note.tlp == "RED", named, _member_of_audience(postgresql, oid)),
    )


def readable_notes(principal: Principal, *first):
    """select(Note) limited to what the principal may read; add filters and order to it.
    `first`: conditions that narrow the candidates cheaply, put before the rule. SQLite checks
    a WHERE clause's terms in the order written, so a note they turn away never costs the
    rule's subqueries (a digest's "new in your alliances" over a busy day: about half the
    time). They only narrow: the rule is always checked on what is left."""
    return select(Note).where(*first, readable_clause(principal))


def readable_note_ids(principal: Principal):
    """The ids of readable notes, for joins and IN (...) from other tables."""
    return select(Note.id).where(readable_clause(principal))


def names_readable_note(principal: Principal, note_id):
    """EXISTS: the note whose id `note_id` (a column or expression of the outer query, e.g.
    the audit log's target) names is one the principal may read. Correlated: one primary-key
    lookup and the rule per outer row, not the rule over every note."""
    return exists(select(Note.id).where(Note.id == note_id, readable_clause(principal)))


def readable_among(principal: Principal, note_ids) -> set[int]:
    """Which of these note ids the principal may read. Looks the ids up by primary key, so
    its cost follows the number of ids asked about, not the number of notes stored (an
    uncorrelated `IN (readable_note_ids(...))` makes SQLite evaluate the rule on every note)."""
    from alliance.core.queries import one_of

    wanted = set(note_ids)
    if not wanted:
        return set()
    return set(db.session.scalars(readable_note_ids(principal).where(
        one_of(Note.id, wanted, Integer))))


def feed_position(offset: int, *conditions):
    """(created_at, id) of the note `offset` places into the notes under `conditions` (the
    keyset condition of a walk's start, if any) in the feed's order (newest first),
    readable or not, and of the one after it: a list of up to two rows. For bounding a walk
    of the feed index only (notes.reading.feed's `scan`): it is never shown, and what a
    walk shows is what readable_notes lets through."""
    from alliance.core.queries import walk_index

    return walk_index(select(Note.created_at, Note.id).where(*conditions)
                      .order_by(Note.created_at.desc(), Note.id.desc())
                      .offset(offset).limit(2))


def count_readable(principal: Principal, *conditions) -> int:
    return db.session.execute(select(func.count()).select_from(Note).where(
        readable_clause(principal), *conditions)).scalar_one()


def count_by_first_alliance(statements, excluded_ids, alliance_ids) -> Sequence[Row]:
    """(alliance name or None, TLP, count) of the notes these statements select, each note
    once, but `excluded_ids`: under the first of `alliance_ids` (by name) in its audience,
    None when none of them is. The statements are readable_notes(...) statements (the rule
    is in them already), as a digest's queries are; only their note ids are used."""
    from sqlalchemy import union

    ids = union(*[stmt.with_only_columns(Note.id).order_by(None) for stmt in statements]
                ).subquery()
    first = (select(NoteAudience.note_id, func.min(Alliance.name).label("name"))
             .join(Alliance, Alliance.id == NoteAudience.alliance_id)
             .where(NoteAudience.alliance_id.in_(alliance_ids or [-1]),
                    NoteAudience.note_id.in_(select(ids.c.id)))
             .group_by(NoteAudience.note_id).subquery())
    return db.session.execute(
        select(first.c.name, Note.tlp, func.count()).select_from(Note)
        .join(ids, ids.c.id == Note.id)
        .outerjoin(first, first.c.note_id == Note.id)
        .where(Note.id.not_in(excluded_ids or [-1]))
        .group_by(first.c.name, Note.tlp)).all()


def get_readable_note(principal: Principal, report_id: str) -> Note | None:
    return db.session.scalar(readable_notes(principal).where(Note.report_id == report_id))


def get_readable_note_or_404(principal: Principal, report_id: str) -> Note:
    """The note, if the principal may read it; otherwise 404, the same as for a note that
    does not exist."""
    note = get_readable_note(principal, report_id)
    if note is None:
        abort(404)
    return note


def can_read(principal: Principal, note_id: int) -> bool:
    return db.session.execute(select(func.count()).select_from(Note).where(
        Note.id == note_id, readable_clause(principal))).scalar_one() > 0


def former_readable_clause(principal: Principal):
    """The SQL condition on Note that is true exactly for the retracted notes the principal
    would read if they were not retracted: its former readers, decided by the same rule at
    read time (an organisation that has left since is not one). Anonymous visitors are nobody's
    former readers: a public note's retraction is not announced to the world."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    return and_(Note.retracted_at.is_not(None), _may_read_clause(principal, postgresql))


def former_reader(principal: Principal, note: Note) -> bool:
    """Whether the principal could read this retracted note before it was retracted (False
    for a note that is not retracted). For the tombstone that tells them it was withdrawn."""
    return db.session.execute(select(func.count()).select_from(Note).where(
        Note.id == note.id, former_readable_clause(principal))).scalar_one() > 0


def get_retracted_note_for_former_reader(principal: Principal, report_id: str) -> Note | None:
    """The retracted note, if the principal is one of its former readers; else None, the
    same for a note that never existed, one never shared with them, and one not retracted.
    Only a tombstone may be shown from it (title, who retracted it, when and why), never its
    content: the caller shows the note itself only through get_readable_note."""
    return db.session.scalar(select(Note).where(Note.report_id == report_id,
                                                former_readable_clause(principal)))


def can_moderate(user, note: Note) -> bool:
    """Author, org admins of the author's organisation, or a coordinator of an audience
    alliance may retract the note (the caller has already read it through the rule)."""
    p = Principal.of(user)
    if p.user_id is None:  # anonymous
        return False
    if note.author_id == p.user_id or (note.organisation_id == p.organisation_id
                                       and user.is_org_admin):
        return True
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    return db.session.execute(select(func.count()).select_from(Note).where(
        Note.id == note.id,
        _coordinator_of_audience(postgresql, p.user_id, p.organisation_id))).scalar_one() > 0


@dataclass(frozen=True)
class ServedLinks:
    """The links (note_objects) of the notes TAXII may serve at all, as a FROM clause
    (`source`), with the collection each link counts towards (`owner`: an audience alliance,
    or the author organisation) and when its note was posted (`posted`)."""

    source: Join
    owner: InstrumentedAttribute[int]
    posted: InstrumentedAttribute[datetime]


def taxii_served_links(*, own: bool) -> ServedLinks:
    """DESIGN.md's TAXII column: never TLP:RED; a retracted note leaves every path. Joined to
    the notes' audience alliances (alliance collections), or with `own` to their
    organisations (an organisation's own collection). For the statements that keep
    collection_objects and organisation_collection_objects, the indexes TAXII pages walk
    (alliance.taxii.collections): they write an index, they do not answer a reader; each row
    read through it is still checked against the rule above."""
    served = NoteObject.__table__.join(Note.__table__, and_(
        Note.id == NoteObject.note_id, Note.tlp != "RED", Note.retracted_at.is_(None)))
    if own:
        return ServedLinks(served, Note.organisation_id, Note.created_at)
    return ServedLinks(served.join(NoteAudience.__table__,
                                   NoteAudience.note_id == NoteObject.note_id),
                       NoteAudience.alliance_id, Note.created_at)
