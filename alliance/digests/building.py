"""Building a digest: what a member may read that is new in a period, found AS THE MEMBER
through the read rule (sharing.policy), at the time it is built. Three queries, each loading
at most DIGEST_ITEMS notes (the rest are counted, never loaded): notes new in the chosen
alliances, notes carrying a watch term (and alerts folded into the digest), comments on the
member's own notes. RED notes are counted, never listed."""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import and_, exists, or_, select

from alliance.alliances.models import Alliance
from alliance.auth.models import User
from alliance.digests import content
from alliance.digests.content import WATCH_REASONS, Digest, Item, NoteView, note_link, term_reason
from alliance.digests.models import Delivery, WatchTerm
from alliance.digests.preferences import member_alliances
from alliance.digests.watch_terms import matching_terms
from alliance.extensions import db
from alliance.notes.models import Note, NoteAudience, NoteComment, NoteFacet, Observable
from alliance.orgs.models import Organisation
from alliance.sharing.channels import mail_detail
from alliance.sharing.policy import (
    Principal,
    count_by_first_alliance,
    readable_note_ids,
    readable_notes,
)
from alliance.stix.tlp import TLP_RANK

COMMENT_REASON = "comment on a note you posted"


@dataclass
class _Reading:
    """One digest's reading of the notes: who reads, the period, the alliances it covers,
    and what the queries found so far (each note once, with every reason it is there)."""
    user: User
    principal: Principal
    start: datetime
    end: datetime
    alliances: dict[int, Alliance]
    chosen: set[int]
    narrowing: list
    notes: dict[int, NoteView] = field(default_factory=dict)
    reasons: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    # Notes past a query's limit: counted per alliance (_count_unloaded), never loaded; with
    # the reason the query stands for.
    pasts: list[tuple[object, str | None]] = field(default_factory=list)
    first_of: dict[int, str | None] = field(default_factory=dict)

    def readable(self, *first):
        """The read rule's statement for the queries (each adds its own conditions), with a
        preview's narrowing; `first` narrows before the rule is checked (readable_notes)."""
        return readable_notes(self.principal, *first).where(Note.retracted_at.is_(None),
                                                            *self.narrowing)

    @property
    def in_window(self):
        return and_(Note.created_at >= self.start, Note.created_at < self.end)

    @property
    def by_others(self):
        # A note whose author was deleted (author_id NULL) is someone else's: `!=` alone
        # drops it.
        return or_(Note.author_id.is_(None), Note.author_id != self.user.id)

    def first_alliance(self, note: NoteView) -> str | None:
        """The first (by name) of the note's alliances the digest covers: its group."""
        if note.id not in self.first_of:
            self.first_of[note.id] = min((self.alliances[a].name for a in note.alliance_ids
                                          if a in self.chosen), default=None)
        return self.first_of[note.id]

    def add_reason(self, note_id: int, reason: str) -> None:
        if reason not in self.reasons[note_id]:
            self.reasons[note_id].append(reason)

    def take(self, stmt, reason_of, why: str | None = None) -> None:
        """Load the newest DIGEST_ITEMS notes of `stmt` as NoteViews, each with the reasons
        reason_of(note) gives; remember the rest (counted, never loaded) with `why`."""
        found = db.session.execute(
            stmt.with_only_columns(Note.id, Note.report_id, Note.title, Note.description,
                                   Note.tlp, Note.kind, Note.created_at, Organisation.name)
            .join(Organisation, Organisation.id == Note.organisation_id)
            .order_by(Note.created_at.desc(), Note.id.desc())
            .limit(content.DIGEST_ITEMS + 1)).all()
        if not found:
            return
        if len(found) > content.DIGEST_ITEMS:
            # The rows past the last one loaded, in the same order: (created_at, id) below
            # it. Counting only those (not all and subtracting) evaluates the rule on the rest
            # of the period only, not a second time on the part the query above went through.
            last_id, last_at = found[-1][0], found[-1][6]
            self.pasts.append((stmt.where(Note.created_at <= last_at,
                                          or_(Note.created_at < last_at, Note.id < last_id)),
                               why))
        audiences = _audiences([r[0] for r in found])
        for note_id, report_id, title, description, tlp, kind, created_at, org in found:
            note = NoteView(note_id, report_id, title, description, tlp, kind, created_at,
                            organisation=SimpleNamespace(name=org),
                            alliance_ids=audiences[note_id])
            self.notes.setdefault(note.id, note)
            for reason in reason_of(note):
                self.add_reason(note.id, reason)


def _audiences(note_ids: list[int]) -> dict[int, list[int]]:
    """note id -> the ids of its audience alliances."""
    audiences = defaultdict(list)
    for note_id, alliance_id in db.session.execute(
            select(NoteAudience.note_id, NoteAudience.alliance_id).where(
                NoteAudience.note_id.in_(note_ids))):
        audiences[note_id].append(alliance_id)
    return audiences


def build_digest(user, start: datetime, end: datetime, alliance_ids=None,
                 only_alliance: int | None = None, also_readable_by: Principal | None = None
                 ) -> Digest:
    """What the user may read that is new in [start, end): notes new in their chosen
    alliances, notes matching their watch terms (also those folded out of alerts), comments on
    notes they posted. Each note once, under the first of its alliances the user is in.
    RED notes are counted, never listed. `only_alliance` and `also_readable_by` narrow it
    for a coordinator's preview (never wider than either reader may see)."""
    digest = Digest(user=user, start=start, end=end)
    principal = Principal.of(user)
    if principal.is_anonymous:
        return digest
    alliances = {a.id: a for a in member_alliances(user)}
    chosen = set(alliances) if alliance_ids is None else set(alliance_ids) & set(alliances)
    narrowing: list = []
    if also_readable_by is not None:
        narrowing.append(Note.id.in_(readable_note_ids(also_readable_by)))
    if only_alliance is not None:
        chosen &= {only_alliance}
        narrowing.append(Note.audiences.any(NoteAudience.alliance_id == only_alliance))
    reading = _Reading(user, principal, start, end, alliances, chosen, narrowing)
    _take_new_in_alliances(reading)
    _take_watched(reading)
    _take_comments(reading)
    _rank(digest, reading)
    digest.alliance_ids = {alliances[a].name: a for a in chosen}
    if reading.pasts:
        _count_unloaded(digest, reading.pasts, list(reading.notes), chosen)
    digest.show(content.DIGEST_ITEMS)
    return digest


def _take_new_in_alliances(reading: _Reading) -> None:
    """Notes of the period in the chosen alliances, posted by others. First: most of a busy
    day's notes are in other alliances."""
    if not reading.chosen:
        return
    reading.take(reading.readable(Note.audiences.any(NoteAudience.alliance_id.in_(
        reading.chosen))).where(reading.in_window, reading.by_others),
        lambda n: [f"new in {reading.first_alliance(n)}"])


def _take_watched(reading: _Reading) -> None:
    """Notes of the period that carry one of the user's watch terms, and alerts folded into
    this digest. A note found here is listed only for a term the user watches now
    (matching_terms), so for a user who watches nothing (most users) both queries are
    skipped."""
    user_id = reading.user.id
    if not db.session.scalar(select(exists().where(WatchTerm.user_id == user_id))):
        return
    folded = select(Delivery.note_id).where(
        Delivery.user_id == user_id, Delivery.kind == "alert", Delivery.state == "folded",
        Delivery.created_at >= reading.start, Delivery.created_at < reading.end)
    carries_value = Note.id.in_(select(Observable.note_id).join(
        WatchTerm, WatchTerm.value == Observable.value).where(
        WatchTerm.user_id == user_id, WatchTerm.kind.in_(("value", "cve")),
        Observable.warning.is_(None)))
    carries_facet = Note.id.in_(select(NoteFacet.note_id).join(
        WatchTerm, and_(WatchTerm.value == NoteFacet.value,
                        WatchTerm.kind == NoteFacet.facet)).where(WatchTerm.user_id == user_id))
    # Two queries, not one OR: the folded alerts' notes have no period bound, and ORed
    # with the period's matches they made PostgreSQL walk every note stored (its
    # (created_at, id) index end to end). Now the period's matches walk the period only, and
    # the folded notes are looked up by id.
    reading.take(reading.readable().where(reading.by_others, reading.in_window,
                                          or_(carries_value, carries_facet)),
                 lambda n: [], WATCH_REASONS[1])
    reading.take(reading.readable().where(reading.by_others, Note.id.in_(folded)),
                 lambda n: [], WATCH_REASONS[1])
    terms = matching_terms(list(reading.notes), [user_id])
    for note_id, note in reading.notes.items():
        for term in terms.get((user_id, note_id), []):
            reading.add_reason(note_id, term_reason(note.tlp, term))


def _take_comments(reading: _Reading) -> None:
    """The user's own notes that others commented on (opinions, sightings) in the period."""
    commented = select(NoteComment.note_id).where(
        NoteComment.created_at >= reading.start, NoteComment.created_at < reading.end,
        NoteComment.author_id != reading.user.id)
    reading.take(reading.readable().where(Note.author_id == reading.user.id,
                                          Note.id.in_(commented)),
                 lambda n: [COMMENT_REASON], COMMENT_REASON)


def _relevance(pair: tuple[str | None, Item]) -> tuple:
    """The order of relevance, which decides what a mail too long for its budget lists in
    full (Digest.show, render_digest) and what it only counts: notes carrying a watch term
    of the reader (or folded out of their alerts) first, then comments on notes they
    posted, then the stricter TLP first (AMBER+STRICT, AMBER, GREEN, CLEAR: shared with
    fewer, and only title and link in mail), then the newer first. Among the notes
    loaded: each query loads the newest DIGEST_ITEMS of its kind."""
    item = pair[1]
    return (not any(r.startswith(WATCH_REASONS) for r in item.reasons),
            COMMENT_REASON not in item.reasons,
            -TLP_RANK[item.tlp], -item.note.created_at.timestamp(), -item.note.id)


def _rank(digest: Digest, reading: _Reading) -> None:
    """The loaded notes as the digest's items, most relevant first; the notes a mail may
    only count (RED: sharing.channels) into red_count."""
    base = current_app.config["BASE_URL"].rstrip("/")
    candidates = []
    for note in reading.notes.values():
        reasons = reading.reasons[note.id]
        if not reasons:
            continue  # a watched-term candidate whose term no longer matches
        if not mail_detail(note.tlp).listed:
            digest.red_count += 1
            continue
        candidates.append((reading.first_alliance(note),
                           Item(note, reasons, note_link(note, base))))
    digest.ranked = sorted(candidates, key=_relevance)


def _count_unloaded(digest: Digest, pasts, loaded: list[int], chosen) -> None:
    """Count the notes past the queries' limits (never loaded), each once, under the first
    of its chosen alliances by name as listed notes are (None: none of them), RED notes into
    red_count. One grouped count over the rest of the period, not one per alliance."""
    counted = count_by_first_alliance([stmt for stmt, _ in pasts], loaded, chosen)
    reasons = [why for _, why in pasts if why]
    for name, tlp, count in counted:
        if not mail_detail(tlp).listed:
            digest.red_count += count
            continue
        digest.unlisted[name] = digest.unlisted.get(name, 0) + count
        why = digest.unlisted_why.setdefault(name, [])
        for reason in ([f"new in {name}"] if name else []) + ([] if name else reasons):
            if reason not in why:
                why.append(reason)
