"""E-mail digests and watch alerts (DESIGN.md, "Digests and alerts").

How a digest goes out, once:
1. The beat task runs schedule_due() every few minutes. For each user whose next digest is
   due (plan_digest: the one rule the "Next digest" page shows too) it inserts a ledger row
   (Delivery, unique on user + the key of the content window's end) and an outbox message in
   one transaction. A second beat or a second run trips over the unique key and enqueues
   nothing.
2. The outbox relays the message to a worker; the outbox claim runs it at most once at a time
   (acks_late, reject on worker loss, leases, retries with backoff for 4xx, none for 5xx).
3. The handler builds the digest AS THE USER, AT SEND TIME, through the read rule, renders
   it (autoescaped, text and HTML), sends it with a deterministic Message-ID and marks the
   ledger row sent. A row that is no longer pending is never sent again.

Alerts: posting a note enqueues a scan (unless a bulk import asks for none); the scan finds
users watching a term the note carries, writes one ledger row per (user, note) and enqueues
the alert — or, past ALERT_LIMIT alerts in the last hour, folds it into the next digest."""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import current_app
from limits import parse as parse_limit
from markupsafe import Markup
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from alliance.alliances.models import Alliance, Membership
from alliance.alliances.services import require_coordinator
from alliance.auth.models import User
from alliance.auth.tokens import make_token, read_token
from alliance.core.errors import DomainError, NotFound
from alliance.core.models import utcnow
from alliance.core.urls import external_url
from alliance.core.vocab import country_choices, policy_tag_choices, sector_choices
from alliance.digests import schedule
from alliance.digests.models import Delivery, DigestPreference, WatchTerm
from alliance.extensions import db, limiter
from alliance.mail.services import (
    build_message,
    deterministic_message_id,
    flatten,
    render_mail,
    send_message,
)
from alliance.notes.models import Note, NoteAudience, NoteComment, NoteFacet, Observable
from alliance.orgs.models import Organisation
from alliance.outbox.services import PermanentFailure, TemporaryFailure, enqueue, handler
from alliance.sharing.policy import (
    Principal,
    count_by_first_alliance,
    readable_note_ids,
    readable_notes,
)
from alliance.stix import observables
from alliance.stix.tlp import TLP_RANK

DIGEST_ITEMS = 200          # listed in full at most (fewer past MAIL_BYTES); the rest counted
SUMMARY_CHARS = 280
UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600
MAX_WATCH_TERMS = 100
WATCH_TERM_CHARS = 300      # the watch_terms.value column
PREVIEW_PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7)}
_FREQUENCY_RANK = {"off": 0, "weekly": 1, "daily": 2}
KIND_LABELS = {"incident": "Incident report", "indicators": "Indicator set",
               "analysis": "Policy analysis", "bundle": "STIX bundle"}


# --- preferences --------------------------------------------------------------------------

@dataclass
class Preferences:
    frequency: str
    weekday: int
    hour: int
    timezone: str
    alliance_ids: list | None
    alerts: bool
    chosen: bool  # False: the defaults of the user's alliances


def member_alliances(user) -> list[Alliance]:
    """Alliances the user's organisation is an active member of (what a digest may cover)."""
    if user.organisation_id is None:
        return []
    return db.session.scalars(
        select(Alliance).join(Membership, Membership.alliance_id == Alliance.id)
        .where(Membership.organisation_id == user.organisation_id,
               Membership.state == "active").order_by(Alliance.name)).all()


def _defaults(alliances, country: str | None) -> Preferences:
    """Until a user chooses: the most frequent digest any of their alliances sets, at that
    alliance's hour, in the zone of the organisation's country when it has one zone."""
    best = max(alliances, key=lambda a: (_FREQUENCY_RANK.get(a.digest_frequency, 0), -a.id),
               default=None)
    return Preferences(frequency=best.digest_frequency if best else "off", weekday=0,
                       hour=best.digest_hour if best else 8,
                       timezone=schedule.timezone_for_country(country or ""),
                       alliance_ids=None, alerts=True, chosen=False)


def default_preferences(user) -> Preferences:
    """What the user gets from their alliances' digest defaults when they have not chosen."""
    country = user.organisation.country if user.organisation else None
    return _defaults(member_alliances(user), country)


def preferences_of(user) -> Preferences:
    row = db.session.get(DigestPreference, user.id)
    if row is not None:
        return Preferences(row.frequency, row.weekday, row.hour, row.timezone,
                           row.alliance_ids, row.alerts, True)
    return default_preferences(user)


def save_preferences(user, *, frequency: str, hour: int, timezone: str, weekday: int = 0,
                     alliance_ids=None, alerts: bool = True) -> DigestPreference:
    if frequency not in schedule.FREQUENCIES:
        raise DomainError("Choose off, daily or weekly.", field="frequency")
    if not isinstance(hour, int) or not 0 <= hour <= 23:
        raise DomainError("Choose an hour from 0 to 23.", field="hour")
    if not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise DomainError("Choose a weekday.", field="weekday")
    if timezone not in schedule.valid_timezones():
        raise DomainError("Choose a time zone from the list.", field="timezone")
    mine = {a.id for a in member_alliances(user)}
    if alliance_ids is not None:
        alliance_ids = sorted(set(alliance_ids))
        if not set(alliance_ids) <= mine:
            raise DomainError("Choose among your organisation's alliances.", field="alliances")
    row = db.session.get(DigestPreference, user.id) or DigestPreference(user_id=user.id)
    row.frequency, row.hour, row.weekday, row.timezone = frequency, hour, weekday, timezone
    row.alliance_ids, row.alerts = alliance_ids, bool(alerts)
    db.session.add(row)
    db.session.commit()
    return row


def unsubscribe_token(user) -> str:
    return make_token("unsubscribe", {"u": user.id})


def unsubscribe_user(token: str) -> User:
    """The user an unsubscribe token names, changing nothing (the page a GET shows). Raises
    DomainError for a tampered or expired token, NotFound for a user who is gone."""
    data = read_token("unsubscribe", token, max_age=UNSUBSCRIBE_MAX_AGE)
    user = db.session.get(User, data.get("u")) if isinstance(data, dict) else None
    if user is None:
        raise NotFound("This unsubscribe link is not valid.")
    return user


def unsubscribe(token: str) -> User:
    """One click, no sign-in: the signed token says who. Digests and alerts both stop.

    Writes the row directly rather than through save_preferences: the user's other values
    (an alliance the organisation has left since, a zone gone from the tz database) must
    never stop an unsubscribe."""
    user = unsubscribe_user(token)
    # Twice at once (a mail client's one-click POST and the person's own click) with no
    # row yet: both insert, and the second's insert fails on the key. It then finds the
    # row the first stored and turns that off: the same page for both, not a conflict.
    for last in (False, True):
        prefs = preferences_of(user)
        row = db.session.get(DigestPreference, user.id) or DigestPreference(
            user_id=user.id, hour=prefs.hour, weekday=prefs.weekday, timezone=prefs.timezone,
            alliance_ids=prefs.alliance_ids)
        row.frequency, row.alerts = "off", False
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            if last:
                raise
        else:
            break
    return user


# --- watch terms --------------------------------------------------------------------------

def normalise_term(kind: str, raw: str) -> str:
    """The stored form of a watch term, as observables and facets are stored."""
    raw = (raw or "").strip()
    if len(raw) > WATCH_TERM_CHARS:
        raise DomainError(f"Watch terms are at most {WATCH_TERM_CHARS} characters long.",
                          field="value")
    if kind in ("value", "cve"):
        hit = observables.detect(raw)
        if hit is None or (kind == "cve") != (hit[0] == "cve"):
            what = "a CVE id such as CVE-2024-3094" if kind == "cve" else (
                "an IP address, network, domain, URL, e-mail address or hash")
            raise DomainError(f"{raw[:80]!r} is not {what}.", field="value")
        if len(hit[1]) > WATCH_TERM_CHARS:  # normalising can lengthen a URL
            raise DomainError(f"Watch terms are at most {WATCH_TERM_CHARS} characters long.",
                              field="value")
        return hit[1]
    choices = {"sector": sector_choices, "country": country_choices,
               "policy_tag": policy_tag_choices}.get(kind)
    if choices is None:
        raise DomainError("Unknown kind of watch term.", field="kind")
    if raw not in {value for value, _ in choices()}:
        raise DomainError("Choose a value from the list.", field="value")
    return raw


def add_watch_term(user, kind: str, raw: str) -> WatchTerm:
    value = normalise_term(kind, raw)
    count = db.session.scalar(select(func.count()).select_from(WatchTerm)
                              .where(WatchTerm.user_id == user.id))
    if count >= MAX_WATCH_TERMS:
        raise DomainError(f"You watch {MAX_WATCH_TERMS} terms already; remove one first.",
                          field="value")
    existing = db.session.scalar(select(WatchTerm).where(
        WatchTerm.user_id == user.id, WatchTerm.kind == kind, WatchTerm.value == value))
    if existing is not None:
        return existing
    term = WatchTerm(user_id=user.id, kind=kind, value=value)
    db.session.add(term)
    db.session.commit()
    return term


def remove_watch_term(user, term_id: int) -> None:
    term = db.session.get(WatchTerm, term_id)
    if term is None or term.user_id != user.id:
        raise NotFound("No such watch term.")
    db.session.delete(term)
    db.session.commit()


def watch_terms_of(user) -> list[WatchTerm]:
    return db.session.scalars(select(WatchTerm).where(WatchTerm.user_id == user.id)
                              .order_by(WatchTerm.kind, WatchTerm.value)).all()


def _matching_terms(note_ids, user_ids=None) -> dict[tuple[int, int], list[str]]:
    """(user id, note id) -> the watch terms of those users that the notes carry."""
    if not note_ids:
        return {}
    facet_of = {"sector": "sector", "country": "country", "policy_tag": "policy_tag"}
    value_hits = (select(WatchTerm.user_id, Observable.note_id, WatchTerm.value)
                  .join(Observable, Observable.value == WatchTerm.value)
                  .where(WatchTerm.kind.in_(("value", "cve")), Observable.note_id.in_(note_ids),
                         Observable.warning.is_(None)))  # on a warning list: never alerted
    facet_hits = (select(WatchTerm.user_id, NoteFacet.note_id, WatchTerm.value)
                  .join(NoteFacet, and_(NoteFacet.value == WatchTerm.value,
                                        NoteFacet.facet == WatchTerm.kind))
                  .where(WatchTerm.kind.in_(tuple(facet_of)), NoteFacet.note_id.in_(note_ids)))
    if user_ids is not None:
        value_hits = value_hits.where(WatchTerm.user_id.in_(user_ids))
        facet_hits = facet_hits.where(WatchTerm.user_id.in_(user_ids))
    found: dict[tuple[int, int], list[str]] = defaultdict(list)
    for stmt in (value_hits, facet_hits):
        for user_id, note_id, value in db.session.execute(stmt):
            if value not in found[(user_id, note_id)]:
                found[(user_id, note_id)].append(value)
    return found


# --- building a digest (as the user, through the read rule) ------------------------------

@dataclass
class NoteView:
    """What a digest shows of a note: read as plain columns (no ORM objects to build for the
    hundreds of notes of a busy period)."""
    id: int
    report_id: str
    title: str
    description: str
    tlp: str
    kind: str
    created_at: datetime
    organisation: SimpleNamespace
    alliance_ids: list

    @property
    def uuid(self) -> str:
        return self.report_id.split("--", 1)[1]


def _names_terms(tlp: str) -> bool:
    """Whether a mail may name the watch term a note carries: that is a piece of the note's
    content, and AMBER and AMBER+STRICT notes reach mail as title and link only (DESIGN.md)."""
    return tlp in ("CLEAR", "GREEN")


WATCH_REASONS = ("matches your watch term", "matches one of your watch terms")


def term_reason(tlp: str, term: str) -> str:
    """Why a note carrying a watch term is in a mail: the term, where its TLP allows."""
    return (f"matches your watch term {term}" if _names_terms(tlp)
            else "matches one of your watch terms")


@dataclass
class Item:
    """One listed note of a digest or alert. The values both parts print are computed once
    here and shared by the text and the HTML part (plain strings: each template escapes
    them, as it escapes everything)."""
    note: NoteView
    reasons: list[str]
    link: str

    @property
    def tlp(self) -> str:
        return self.note.tlp

    @cached_property
    def title(self) -> str:
        return self.note.title

    @cached_property
    def organisation_name(self) -> str:
        return self.note.organisation.name

    @cached_property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.note.kind, self.note.kind)

    @cached_property
    def when(self) -> str:
        return current_app.jinja_env.filters["when"](self.note.created_at)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)  # not cached: a preview rewrites the reasons

    @cached_property
    def details(self) -> str | None:
        """Kind, author organisation and time, for CLEAR and GREEN; AMBER and AMBER+STRICT
        reach mail as title and link only (DESIGN.md): who posted an incident report often
        names its victim."""
        if self.note.tlp not in ("CLEAR", "GREEN"):
            return None
        return f"{self.kind_label} · {self.organisation_name} · {self.when}"

    @cached_property
    def summary(self) -> str | None:
        """CLEAR and GREEN carry a summary; AMBER and AMBER+STRICT only title and link."""
        if self.note.tlp not in ("CLEAR", "GREEN"):
            return None
        text = " ".join((self.note.description or "").split())
        return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1].rstrip() + "…"

    @property
    def text_block(self) -> Markup:
        """The item in the text part: the note's lines, why, link (_fragments)."""
        return self._blocks()[0]

    @property
    def html_block(self) -> Markup:
        """The item's block in the HTML part (_fragments)."""
        return self._blocks()[1]

    def _blocks(self) -> tuple[Markup, Markup]:
        # Looked up once for both parts, again only if the reasons changed since (a preview
        # rewrites them).
        why = self.why
        kept = self.__dict__.get("_kept")
        if kept is None or kept[0] != why:
            kept = self.__dict__["_kept"] = (why, _fragments(self))
        return kept[1]


FRAGMENTS_PER_WORKER = 10_000  # about 2.5 KB each with its key: some 25 MB at most


def _fragments(item: Item) -> tuple[Markup, Markup]:
    """The item's text and HTML, rendered (autoescaped) by emails/_digest_item.html — once
    per note and reason per worker process, then reused for each reader whose digest lists
    the note for that reason: a busy period lists the same few thousand notes, mostly "new
    in <alliance>", in thousands of digests. Safe to share because the fragment is a function
    of the note's own values and the reason only, and the key holds every one of them (an
    edited title, a changed TLP or organisation name, another BASE_URL make another key).
    Whether the reader may see the note at all is decided before, by build_digest, through
    the read rule."""
    note, why = item.note, item.why
    key = (note.id, note.report_id, note.title, note.description, note.tlp, note.kind,
           note.created_at, item.organisation_name, item.link, why)
    cache = current_app.extensions.setdefault("digest_fragments", {})
    found = cache.get(key)
    if found is None:
        module = current_app.jinja_env.get_template("emails/_digest_item.html").module
        # Macros of an autoescaped environment return Markup; a plain str (autoescape off)
        # would be escaped again where it is printed: wrong, never unsafe.
        found = (module.text(item, why), module.html(item, why))
        if len(cache) >= FRAGMENTS_PER_WORKER:
            cache.clear()
        cache[key] = found
    return found


@dataclass
class Counted:
    """Notes of a digest's period that its mail counts instead of listing: how many, in which
    alliance (None: the other notes the reader gets, by a watch term or a comment), why, and
    the link to the feed filtered to that alliance and the period."""
    name: str | None
    count: int
    why: str
    link: str

    @property
    def text_link(self) -> Markup:
        """The link as the text part prints it: as is, or its "&" would read "&amp;" and the
        link would not work. Safe: external_url built it from BASE_URL, an alliance id and
        two ISO dates, URL-encoded; nothing in it is typed by anyone."""
        return Markup(self.link)  # noqa: S704


@dataclass
class Digest:
    user: User
    start: datetime
    end: datetime
    groups: list[tuple[str, list[Item]]] = field(default_factory=list)
    red_count: int = 0
    more: int = 0  # notes counted (Counted rows), not listed
    counted: list[Counted] = field(default_factory=list)
    # Filled by build_digest: every listable item loaded, the most relevant first (with its
    # group), the notes past the queries' limits per group (never loaded: counted only),
    # their reasons, and the alliance ids by name (for the feed links).
    ranked: list[tuple[str | None, Item]] = field(default_factory=list)
    unlisted: dict = field(default_factory=dict)
    unlisted_why: dict = field(default_factory=dict)
    alliance_ids: dict = field(default_factory=dict)
    shown: int = 0

    @property
    def count(self) -> int:
        return sum(len(items) for _, items in self.groups) + self.red_count + self.more

    @property
    def empty(self) -> bool:
        return self.count == 0

    @property
    def strictest(self) -> str:
        """The strictest TLP of what the mail shows: its listed notes. TLP:RED notes are
        only counted and the "N more" only numbered, never shown, so they add nothing: a
        mail that carries nothing but counts is TLP:CLEAR."""
        levels = [item.tlp for _, items in self.groups for item in items]
        return max(levels, key=TLP_RANK.__getitem__, default="CLEAR")

    @property
    def alliance_count(self) -> int:
        return len({name for name, _ in self.groups if name}
                   | {row.name for row in self.counted if row.name})

    def feed_link(self, name: str | None) -> str:
        """The feed filtered to the period (the UTC days it touches: the feed filters by
        day) and, for an alliance's row, to that alliance."""
        since = self.start.astimezone(UTC).date()
        until = max(since, (self.end - timedelta(microseconds=1)).astimezone(UTC).date())
        values = {"since": since.isoformat(), "until": until.isoformat()}
        if name is not None and name in self.alliance_ids:
            values = {"alliance": self.alliance_ids[name], **values}
        return external_url("notes.feed", **values)

    def show(self, listed: int, rows: int | None = None) -> None:
        """List the `listed` most relevant items in full (grouped by alliance, newest first
        in each group, as always) and count the rest per alliance, with a feed link each;
        past `rows` rows, the smallest go into one row linking to the feed of the period."""
        listed = max(0, min(listed, len(self.ranked), DIGEST_ITEMS))
        self.shown = listed
        groups: dict[str | None, list[Item]] = defaultdict(list)
        for name, item in sorted(self.ranked[:listed],
                                 key=lambda g: (g[1].note.created_at, g[1].note.id),
                                 reverse=True):
            groups[name].append(item)
        self.groups = sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        counts: dict[str | None, int] = defaultdict(int, self.unlisted)
        whys: dict[str | None, list[str]] = {k: list(v) for k, v in self.unlisted_why.items()}
        for name, item in self.ranked[listed:]:
            counts[name] += 1
            for reason in item.reasons:
                # Counted notes are not named: nor is the watch term one carries.
                reason = WATCH_REASONS[1] if reason.startswith(WATCH_REASONS) else reason
                if reason not in whys.setdefault(name, []):
                    whys[name].append(reason)
        self.counted = [Counted(name, counts[name], "; ".join(whys.get(name, [])) or
                                (f"new in {name}" if name else "notes you can read"),
                                self.feed_link(name))
                        for name in sorted(counts, key=lambda n: (n is None, n or ""))
                        if counts[name]]
        if rows is not None and len(self.counted) > rows:
            kept = sorted(self.counted, key=lambda r: -r.count)[:max(rows - 1, 0)]
            rest = [r for r in self.counted if r not in kept]
            self.counted = [r for r in self.counted if r in kept] + [Counted(
                f"{len(rest)} other alliances", sum(r.count for r in rest),
                "new in your alliances", self.feed_link(None))]
        self.more = sum(row.count for row in self.counted)


def _note_link(note, base: str | None = None) -> str:
    base = base if base is not None else current_app.config["BASE_URL"].rstrip("/")
    return f"{base}/notes/{note.uuid}"


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
    if only_alliance is not None:
        chosen &= {only_alliance}

    # The read rule's statement for the queries below (each adds its own conditions), with
    # the preview's narrowing.
    narrowing = []
    if also_readable_by is not None:
        narrowing.append(Note.id.in_(readable_note_ids(also_readable_by)))
    if only_alliance is not None:
        narrowing.append(Note.audiences.any(NoteAudience.alliance_id == only_alliance))

    def readable(*first):
        """The rule's statement; `first` narrows before the rule is checked (readable_notes)."""
        return readable_notes(principal, *first).where(Note.retracted_at.is_(None), *narrowing)

    in_window = and_(Note.created_at >= start, Note.created_at < end)
    # A note whose author was deleted (author_id NULL) is someone else's: `!=` alone drops it.
    by_others = or_(Note.author_id.is_(None), Note.author_id != user.id)
    reasons: dict[int, list[str]] = defaultdict(list)
    notes: dict[int, NoteView] = {}
    # Notes past a query's limit: counted per alliance (_count_unloaded), never loaded; with
    # the reason the query stands for.
    pasts: list[tuple[object, str | None]] = []

    def take(stmt, reason_of, why=None):
        found = db.session.execute(
            stmt.with_only_columns(Note.id, Note.report_id, Note.title, Note.description,
                                   Note.tlp, Note.kind, Note.created_at, Organisation.name)
            .join(Organisation, Organisation.id == Note.organisation_id)
            .order_by(Note.created_at.desc(), Note.id.desc()).limit(DIGEST_ITEMS + 1)).all()
        if not found:
            return
        if len(found) > DIGEST_ITEMS:
            # The rows past the last one loaded, in the same order: (created_at, id) below
            # it. Counting only those (not all and subtracting) evaluates the rule on the rest
            # of the period only, not a second time on the part the query above went through.
            last_id, last_at = found[-1][0], found[-1][6]
            pasts.append((stmt.where(Note.created_at <= last_at,
                                     or_(Note.created_at < last_at, Note.id < last_id)), why))
        audiences = defaultdict(list)
        for note_id, alliance_id in db.session.execute(
                select(NoteAudience.note_id, NoteAudience.alliance_id).where(
                    NoteAudience.note_id.in_([r[0] for r in found]))):
            audiences[note_id].append(alliance_id)
        rows = [NoteView(*r[:7], organisation=SimpleNamespace(name=r[7]),
                         alliance_ids=audiences[r[0]]) for r in found]
        for note in rows:
            notes.setdefault(note.id, note)
            for reason in reason_of(note):
                if reason not in reasons[note.id]:
                    reasons[note.id].append(reason)

    first_of: dict[int, str | None] = {}

    def first_alliance(note):
        if note.id not in first_of:
            first_of[note.id] = min((alliances[a].name for a in note.alliance_ids
                                     if a in chosen), default=None)
        return first_of[note.id]

    if chosen:
        # The chosen alliances first: most of a busy day's notes are in other alliances.
        take(readable(Note.audiences.any(NoteAudience.alliance_id.in_(chosen)))
             .where(in_window, by_others),
             lambda n: [f"new in {first_alliance(n)}"])
    # Watch terms: notes of the period that carry one, and alerts folded into this digest.
    # A note found here is listed only for a term the user watches now (_matching_terms),
    # so for a user who watches nothing (most users) both queries are skipped.
    if db.session.scalar(select(exists().where(WatchTerm.user_id == user.id))):
        folded = select(Delivery.note_id).where(
            Delivery.user_id == user.id, Delivery.kind == "alert", Delivery.state == "folded",
            Delivery.created_at >= start, Delivery.created_at < end)
        # Two queries, not one OR: the folded alerts' notes have no period bound, and ORed
        # with the period's matches they made PostgreSQL walk every note stored (its
        # (created_at, id) index end to end, ~40 ms at 1,000,000 objects). Now the period's
        # matches walk the period only, and the folded notes are looked up by id.
        take(readable().where(by_others, in_window, or_(
            Note.id.in_(select(Observable.note_id).join(
                WatchTerm, WatchTerm.value == Observable.value).where(
                WatchTerm.user_id == user.id, WatchTerm.kind.in_(("value", "cve")),
                Observable.warning.is_(None))),
            Note.id.in_(select(NoteFacet.note_id).join(
                WatchTerm, and_(WatchTerm.value == NoteFacet.value,
                                WatchTerm.kind == NoteFacet.facet)).where(
                WatchTerm.user_id == user.id)))), lambda n: [], WATCH_REASONS[1])
        take(readable().where(by_others, Note.id.in_(folded)), lambda n: [], WATCH_REASONS[1])
        terms = _matching_terms(list(notes), [user.id])
        for note_id in notes:
            for term in terms.get((user.id, note_id), []):
                reason = term_reason(notes[note_id].tlp, term)
                if reason not in reasons[note_id]:
                    reasons[note_id].append(reason)
    # Comments, opinions and sightings by others on notes the user posted.
    commented = select(NoteComment.note_id).where(
        NoteComment.created_at >= start, NoteComment.created_at < end,
        NoteComment.author_id != user.id)
    take(readable().where(Note.author_id == user.id, Note.id.in_(commented)),
         lambda n: ["comment on a note you posted"], "comment on a note you posted")

    base = current_app.config["BASE_URL"].rstrip("/")
    candidates = []
    for note in notes.values():
        if not reasons[note.id]:
            continue  # a watched-term candidate whose term no longer matches
        if note.tlp == "RED":
            digest.red_count += 1
            continue
        candidates.append((first_alliance(note), Item(note, reasons[note.id],
                                                      _note_link(note, base))))
    # The order of relevance, which decides what a mail too long for its budget lists in
    # full (Digest.show, render_digest) and what it only counts: notes carrying a watch term
    # of the reader (or folded out of their alerts) first, then comments on notes they
    # posted, then the stricter TLP first (AMBER+STRICT, AMBER, GREEN, CLEAR: shared with
    # fewer, and only title and link in mail), then the newer first. Among the notes
    # loaded: each query loads the newest DIGEST_ITEMS of its kind.
    def relevance(pair):
        item = pair[1]
        return (not any(r.startswith(WATCH_REASONS) for r in item.reasons),
                "comment on a note you posted" not in item.reasons,
                -TLP_RANK[item.tlp], -item.note.created_at.timestamp(), -item.note.id)

    digest.ranked = sorted(candidates, key=relevance)
    digest.alliance_ids = {alliances[a].name: a for a in chosen}
    if pasts:
        _count_unloaded(digest, pasts, list(notes), chosen)
    digest.show(DIGEST_ITEMS)
    return digest


def _count_unloaded(digest: Digest, pasts, loaded: list[int], chosen) -> None:
    """Count the notes past the queries' limits (never loaded), each once, under the first
    of its chosen alliances by name as listed notes are (None: none of them), RED notes into
    red_count. One grouped count over the rest of the period, not one per alliance."""
    counted = count_by_first_alliance([stmt for stmt, _ in pasts], loaded, chosen)
    reasons = [why for _, why in pasts if why]
    for name, tlp, count in counted:
        if tlp == "RED":
            digest.red_count += count
            continue
        digest.unlisted[name] = digest.unlisted.get(name, 0) + count
        why = digest.unlisted_why.setdefault(name, [])
        for reason in ([f"new in {name}"] if name else []) + ([] if name else reasons):
            if reason not in why:
                why.append(reason)


def digest_subject(digest: Digest, local_day: date, test: bool = False) -> str:
    """"[TLP:AMBER] CyberPeace digest — 3 new notes in 1 alliance (Mon 2 Mar)"; a test mail
    says so right after the TLP tag (which mail filters read first)."""
    n, k = digest.count, digest.alliance_count
    where = f" in {k} alliance{'s' if k != 1 else ''}" if k else ""
    day = f"{local_day:%a} {local_day.day} {local_day:%b}"
    return (f"[TLP:{digest.strictest}] {'[TEST] ' if test else ''}CyberPeace digest — "
            f"{n} new note{'s' if n != 1 else ''}{where} ({day})")


# Links in mails come from BASE_URL (alliance.core.urls): a worker or the CLI has no request
# to build them from, and a web request's Host header is the client's to choose.

def _mail_headers(user) -> dict:
    link = external_url("digests.unsubscribe", token=unsubscribe_token(user))
    return {"List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _links(user) -> dict:
    return {"unsubscribe_url": external_url("digests.unsubscribe",
                                            token=unsubscribe_token(user)),
            "preferences_url": external_url("digests.preferences"),
            "red_url": external_url("notes.feed", tlp="RED"),
            "feed_url": external_url("notes.feed")}


# The whole mail as sent (headers, text and HTML parts and the MIME structure around them,
# CRLF line ends) stays under this, whatever the period holds: Gmail clips a mail past about
# 102 KB, and phones struggle with more. A longer digest lists fewer items in full.
MAIL_BYTES = 100_000
# Room for what the measure cannot know exactly: the Date and Message-ID of the very send.
MAIL_MARGIN = 1_000
# Encoded bytes a counted row may add when an item is no longer listed (its group's row).
_ROW_BYTES = 1_200


def _mail_bytes(user, subject: str, text: str, html: str, headers: dict) -> int:
    """The size of the digest mail as it goes out: built and flattened as _message and
    send_message build and send it, with a Message-ID at least as long as any digest's."""
    message_id = deterministic_message_id(
        f"test-digest-{user.id}-until.0000-00-00T00.00.00Z-{'0' * 12}")
    try:
        return len(flatten(build_message(user.email, subject, text, html, message_id,
                                         headers=headers)))
    except ValueError:  # an address the mail cannot be built for: never sent anyway
        return 2 * (len(text.encode()) + len(html.encode())) + 4_000


def _item_bytes(item: Item) -> int:
    """What a listed item weighs in the mail: its text and HTML, base64-encoded (4/3, and
    a CRLF per 76 characters)."""
    return (len(item.text_block.encode()) + len(item.html_block.encode())) * 78 // 57


def _items_to_drop(digest: Digest, over: int) -> int:
    """How many of the least relevant listed items to count instead, to free `over` bytes
    (and the row their group's count may need)."""
    freed, drop = 0, 0
    for _, item in reversed(digest.ranked[:digest.shown]):
        if freed >= over + _ROW_BYTES and drop:
            break
        freed += _item_bytes(item)
        drop += 1
    return max(drop, 1)


def render_digest(digest: Digest, local_day: date, links: dict | None = None,
                  test_of: datetime | None = None) -> tuple[str, str, str]:
    """(subject, text, html) of a digest; both bodies autoescaped. `links` replaces the
    recipient's own links (a coordinator's preview must not carry their unsubscribe token).
    `test_of`: a test mail of the digest due then (local time), marked as a test.

    The mail stays under MAIL_BYTES: rendered, measured as sent (the recipient's headers
    included), and while too large rendered again with fewer items in full (the least
    relevant counted instead, Digest.show). Every path renders through here (the mail, the
    test mail, the member's preview, the coordinator's), so each shows what the mail
    carries. The digest is left as shown (its groups, counted rows and subject)."""
    links = links or _links(digest.user)
    headers = _mail_headers(digest.user)
    budget = MAIL_BYTES - MAIL_MARGIN
    # A first guess from the items' own sizes, so that a busy period is not rendered whole
    # first (the loop below corrects it with the real mail's size).
    total, fits = 0, 0
    for _, item in digest.ranked[:digest.shown]:
        total += _item_bytes(item)
        if total > budget:
            digest.show(fits)
            break
        fits += 1
    rows = None
    while True:
        subject = digest_subject(digest, local_day, test=test_of is not None)
        text, html = render_mail("digest", digest=digest, subject=subject,
                                 local_day=local_day, test_of=test_of, **links)
        size = _mail_bytes(digest.user, subject, text, html, headers)
        if size <= budget:
            break
        if digest.shown:
            digest.show(digest.shown - _items_to_drop(digest, size - budget), rows)
        elif len(digest.counted) > 1:
            # No item listed and still too long: the reader is in very many alliances.
            # The rows with the fewest notes go into one row for the feed of the period.
            rows = len(digest.counted) // 2
            digest.show(0, rows)
        else:
            break  # headers and counts only: cannot be smaller
    return subject, text, html


# --- scheduling ---------------------------------------------------------------------------

def _effective_preferences(users) -> dict[int, Preferences]:
    """Everyone's preferences in three queries (no per-user query in the beat cycle)."""
    ids = [u.id for u in users]
    rows = {r.user_id: r for r in db.session.scalars(
        select(DigestPreference).where(DigestPreference.user_id.in_(ids)))} if ids else {}
    by_org: dict[int, list] = defaultdict(list)
    org_ids = {u.organisation_id for u in users if u.id not in rows}
    if org_ids:
        for org_id, alliance in db.session.execute(
                select(Membership.organisation_id, Alliance)
                .join(Alliance, Alliance.id == Membership.alliance_id)
                .where(Membership.organisation_id.in_(org_ids), Membership.state == "active")):
            by_org[org_id].append(alliance)
    countries = dict(db.session.execute(select(Organisation.id, Organisation.country).where(
        Organisation.id.in_(org_ids))).all()) if org_ids else {}
    result = {}
    for user in users:
        row = rows.get(user.id)
        result[user.id] = (Preferences(row.frequency, row.weekday, row.hour, row.timezone,
                                       row.alliance_ids, row.alerts, True) if row else
                           _defaults(by_org.get(user.organisation_id, []),
                                     countries.get(user.organisation_id)))
    return result


def _active_users():
    return db.session.scalars(
        select(User).join(Organisation, Organisation.id == User.organisation_id)
        .where(User.deactivated_at.is_(None), User.email_verified_at.is_not(None),
               Organisation.status == "approved").order_by(User.id)).all()


# How far back a digest's window may reach to carry on from the last digest (_window_start):
# a week's period and a day's slack for zone changes.
MAX_CATCH_UP = timedelta(days=8)
# Ledger rows older than this say nothing about the next digest: a window ending before
# MAX_CATCH_UP is not carried on from (the scan of the ledger stays within recent rows).
_LEDGER_LOOKBACK = MAX_CATCH_UP + timedelta(days=1)


@dataclass(frozen=True)
class DigestPlan:
    """A user's next digest as the scheduler will build it: content from `start` (inclusive)
    to `end` (exclusive), built once `end` has passed, under the ledger key `key`. due_now:
    `end` had passed when the plan was made; the next scheduling cycle builds it."""
    key: str
    start: datetime
    end: datetime
    timezone: str
    due_now: bool

    @property
    def local_end(self) -> datetime:
        """When it is built, on the user's clock."""
        return self.end.astimezone(ZoneInfo(self.timezone))


def ledger_key(end: datetime) -> str:
    """The ledger key of the digest whose window ends at `end`: "until:2026-03-29T06:00:00Z".
    Periods are told apart by their content window, not by the local day or the hour they
    ran: after the hour moves later, a second window can close on a day that had a digest
    under the old hour, and must not trip over that day's key. Two schedulers building the
    same window build the same key, and the unique (user, key) stops the second."""
    return f"until:{end.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def plan_digest(prefs: Preferences, covered_until: datetime | None,
                now: datetime) -> DigestPlan | None:
    """THE rule of when a user's next digest is built and what it covers: the scheduler
    (schedule_due) builds the plans that are due, and the preferences page shows the plan's
    end as the next digest, so the page says what the scheduler will do.

    covered_until: where the user's last digest window ended (last_window_ends). The period
    is schedule.next_period's; the window starts where the last one ended (_window_start),
    so that a change of hour, zone, weekday or frequency neither skips nor doubles content.
    None when digests are off or the stored zone has vanished from the tz database."""
    if prefs.frequency == schedule.OFF:
        return None
    try:
        period = schedule.next_period(now, prefs.frequency, prefs.hour, prefs.timezone,
                                      prefs.weekday, covered_until=covered_until)
    except ValueError:
        return None
    if period is None:
        return None
    return DigestPlan(key=ledger_key(period.end), start=_window_start(period, covered_until),
                      end=period.end, timezone=prefs.timezone, due_now=period.end <= now)


def last_window_ends(user_ids, now: datetime) -> dict[int, datetime]:
    """user id -> where their latest digest window ended, whatever became of it (sent,
    empty, skipped, failed, or still pending), from ledger rows of the last few days."""
    if not user_ids:
        return {}
    stmt = (select(Delivery.user_id, func.max(Delivery.window_end))
            .where(Delivery.kind == "digest", Delivery.window_end.is_not(None),
                   Delivery.created_at >= now - _LEDGER_LOOKBACK)
            .group_by(Delivery.user_id))
    if len(user_ids) <= 500:
        stmt = stmt.where(Delivery.user_id.in_(list(user_ids)))
    wanted = set(user_ids)
    return {user_id: end for user_id, end in db.session.execute(stmt)
            if user_id in wanted and end is not None}


def next_digest(user, now: datetime | None = None) -> DigestPlan | None:
    """The user's next digest, as the scheduler will build it (plan_digest)."""
    now = now or utcnow()
    return plan_digest(preferences_of(user), last_window_ends([user.id], now).get(user.id), now)


def schedule_due(now: datetime | None = None, publish: bool = True) -> list[int]:
    """One scheduling cycle: a ledger row and an outbox message for every user whose next
    digest (plan_digest) is due. Safe to run twice, or in two beats at once.
    Returns the new ledger row ids."""
    from alliance.outbox.services import relay_pending

    now = now or utcnow()
    users = _active_users()
    prefs = _effective_preferences(users)
    covered = last_window_ends([u.id for u in users], now)
    due = []
    for user in users:
        plan = plan_digest(prefs[user.id], covered.get(user.id), now)
        if plan is not None and plan.due_now:
            due.append({"user_id": user.id, "kind": "digest", "period_key": plan.key,
                        "window_start": plan.start, "window_end": plan.end,
                        "state": "pending", "items": 0, "created_at": now})
    created = []
    for start in range(0, len(due), 500):
        created += _insert_new_deliveries(due[start:start + 500])
    db.session.commit()
    if publish and created:
        while relay_pending():
            pass
    return created


def _window_start(period, last_end: datetime | None) -> datetime:
    """Where a digest's window starts: where the user's last digest's window ended, so that
    after a change of hour, zone, weekday or frequency no note falls between two digests
    and none is in both (the new schedule's period would start elsewhere). Not further back
    than MAX_CATCH_UP before the period's end: digests off for a while start afresh.
    (schedule.next_period never gives a period that ends at or before last_end.)"""
    if last_end is None or last_end < period.end - MAX_CATCH_UP:
        return period.start
    return last_end


def _insert_new_deliveries(rows: list[dict]) -> list[int]:
    """Insert ledger rows, skipping any (user, period) that exists already (another beat, an
    earlier run), and an outbox message for each new one. One statement each, not one per
    user: a cycle at 10,000 users takes a moment, not a minute."""
    from alliance.outbox.models import OutboxMessage

    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    stmt = (upsert(Delivery.__table__).values(rows)
            .on_conflict_do_nothing(index_elements=["user_id", "period_key"])
            .returning(Delivery.__table__.c.id))
    ids = sorted(db.session.execute(stmt).scalars().all())
    if ids:
        now = utcnow()
        db.session.execute(OutboxMessage.__table__.insert(), [
            {"kind": "digest", "payload": {"delivery_id": i}, "created_at": now,
             "available_at": now, "publish_attempts": 0, "run_attempts": 0} for i in ids])
    return ids


# --- sending (outbox handlers, in a worker) ------------------------------------------------

def _finish(delivery: Delivery, state: str, commit: bool = True, **values) -> None:
    delivery.state = state
    for key, value in values.items():
        setattr(delivery, key, value)
    if commit:
        db.session.commit()


def _send(delivery: Delivery, msg) -> None:
    """Send; record a permanent failure on the ledger (then the outbox stops), leave
    temporary ones to the outbox's retries."""
    try:
        send_message(msg)
    except PermanentFailure as exc:
        _finish(delivery, "failed", error=str(exc)[:2000])
        raise
    except TemporaryFailure as exc:
        delivery.error = f"temporary: {exc}"[:2000]
        db.session.commit()
        raise
    # Not committed here: run_message commits it in one transaction with the outbox row's
    # done_at (one commit, and the ledger row and the outbox row can never disagree).
    _finish(delivery, "sent", commit=False, sent_at=utcnow(), error=None)


def _message(delivery: Delivery, user, subject: str, text: str, html: str, message_id: str):
    """The mail for a ledger row, or a permanent failure recorded on it: an address the
    e-mail package refuses is refused the same on every retry (send_queued_mail's rule)."""
    try:
        return build_message(user.email, subject, text, html, message_id,
                             headers=_mail_headers(user))
    except ValueError as exc:
        reason = f"cannot build the message: {exc}"[:2000]
        _finish(delivery, "failed", error=reason)
        raise PermanentFailure(reason) from exc


def _digest_message_id(delivery: Delivery) -> str:
    # "daily:2026-03-29" -> "daily.2026-03-29": a colon is not allowed in a Message-ID's
    # left part (RFC 5322 dot-atom); parsers cut the id there and relays may replace it.
    return deterministic_message_id(
        f"digest-{delivery.user_id}-{delivery.period_key.replace(':', '.')}")


def _mark_sending(message) -> None:
    """The ledger mark before sending, committed with the outbox claim (one transaction, not
    two): the pending row gets the Message-ID its mail is about to carry. send_digest clears
    it again when it sends nothing (empty, skipped), and records the items with the outcome."""
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is not None and delivery.state == "pending":
        delivery.message_id = _digest_message_id(delivery)


def _mark_failed(payload: dict, error: str) -> None:
    delivery = db.session.get(Delivery, payload.get("delivery_id"))
    if delivery is not None and delivery.state == "pending":
        delivery.state, delivery.error = "failed", f"gave up: {error}"[:2000]


@handler("digest", on_give_up=_mark_failed, on_claim=_mark_sending)
def send_digest(message) -> None:
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is None or delivery.state != "pending":
        return  # sent (or settled) already: a duplicate or redelivered task
    user = delivery.user
    prefs = preferences_of(user)
    if not user.can_act or prefs.frequency == "off":
        _finish(delivery, "skipped", error="unsubscribed or inactive at send time",
                message_id=None)
        return
    digest = build_digest(user, delivery.window_start, delivery.window_end, prefs.alliance_ids)
    if digest.empty:
        _finish(delivery, "empty", message_id=None)
        return
    local_day = _local_day(delivery.window_end, prefs.timezone)
    subject, text, html = render_digest(digest, local_day)
    message_id = _digest_message_id(delivery)
    if delivery.message_id != message_id:
        # Not marked with the claim (called other than through run_message): mark it now,
        # in a transaction of its own, before sending.
        delivery.message_id = message_id
        db.session.commit()
    # Committed with the outcome: "sent" (with the outbox row's done_at), "failed", or the
    # temporary error.
    delivery.items, delivery.strictest_tlp = digest.count, digest.strictest
    _send(delivery, _message(delivery, user, subject, text, html, message_id))


def alert_limit() -> int:
    return current_app.config["ALERT_LIMIT_PER_HOUR"]


@handler("watch-scan")
def scan_note_for_watchers(message) -> None:
    """After a note is posted: a ledger row per (watching user who may read it, note), then
    an alert, or a fold into the next digest once the user had ALERT_LIMIT alerts in the
    last hour (a user who gets no digest gets every alert: a fold would lose the match).
    A watcher who may not read the note gets no row: it would count towards their limit,
    and anyone could then hold back their alerts with notes they never see. Nor does the
    author, whose own note is never alerted. Who may read the note is decided again when
    the alert is sent."""
    note_id = message.payload["note_id"]
    matches = _matching_terms([note_id])
    now = utcnow()
    for (user_id, _), terms in sorted(matches.items()):
        user = db.session.get(User, user_id)
        prefs = preferences_of(user) if user is not None else None
        if user is None or not user.can_act or not prefs.alerts:
            continue
        note = db.session.scalar(readable_notes(Principal.of(user)).where(Note.id == note_id))
        if note is None or note.author_id == user_id:
            continue
        state = "pending"
        if prefs.frequency != "off":  # with no digest to fold into, every match is alerted
            recent = db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.user_id == user_id, Delivery.kind == "alert",
                Delivery.state.in_(("pending", "sent")),
                Delivery.created_at >= now - timedelta(hours=1)))
            state = "folded" if recent >= alert_limit() else "pending"
        try:
            with db.session.begin_nested():
                row = Delivery(user_id=user_id, kind="alert", period_key=f"alert:{note_id}",
                               note_id=note_id, watch_term=terms[0], state=state)
                db.session.add(row)
                db.session.flush()
                if state == "pending":
                    enqueue("alert", delivery_id=row.id)
        except IntegrityError:
            continue


@handler("alert", on_give_up=_mark_failed)
def send_alert(message) -> None:
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is None or delivery.state != "pending":
        return
    user = delivery.user
    if not user.can_act or not preferences_of(user).alerts:
        _finish(delivery, "skipped", error="alerts off or inactive at send time")
        return
    note = db.session.scalar(readable_notes(Principal.of(user)).where(
        Note.id == delivery.note_id, Note.retracted_at.is_(None)))
    if note is None:
        _finish(delivery, "skipped", error="not readable at send time")
        return
    if note.author_id == user.id:
        _finish(delivery, "skipped", error="the user's own note")
        return
    links = _links(user)
    if note.tlp == "RED":
        # A RED note reaches mail as a count only (DESIGN.md): not its title, not the term
        # it carries (its content too), not its id — the link is the reader's RED feed.
        # The subject's tag names the content the mail carries (Digest.strictest): a count.
        item, term = Item(note, [], links["red_url"]), None
        subject = "[TLP:CLEAR] CyberPeace alert — 1 TLP:RED note addressed to you"
    else:
        term = delivery.watch_term if _names_terms(note.tlp) else None
        item = Item(note, [term_reason(note.tlp, delivery.watch_term)], _note_link(note))
        subject = (f"[TLP:{note.tlp}] CyberPeace alert — "
                   + (f"{term} in a new note" if term else "a note matches a watch term"))
    text, html = render_mail("alert", item=item, term=term, subject=subject,
                             red=note.tlp == "RED",
                             digests=preferences_of(user).frequency != "off", **links)
    message_id = deterministic_message_id(f"alert-{user.id}-{delivery.note_id}")
    delivery.items, delivery.strictest_tlp, delivery.message_id = 1, note.tlp, message_id
    db.session.commit()
    _send(delivery, _message(delivery, user, subject, text, html, message_id))


def note_posted(note: Note, alerts: bool = True) -> None:
    """Called in the posting transaction: scan for watchers once it commits."""
    if alerts:
        enqueue("watch-scan", note_id=note.id)


# --- a member's own preview and test mail --------------------------------------------------

TEST_MAIL_LIMIT = "5 per hour"  # per user: each is a mail to their own address


@dataclass
class OwnPreview:
    """What the user's next digest carries so far, rendered as the mail would be."""
    plan: DigestPlan
    until: datetime  # the content window as far as built: [plan.start, until)
    digest: Digest
    subject: str
    text: str
    html: str


def _build_next(user, now: datetime, test: bool = False) -> OwnPreview | None:
    """The user's next digest (next_digest) built now, as the user, through the read rule:
    its window up to now, or whole when it is due. Nothing is recorded. None when the user's
    digests are off."""
    plan = next_digest(user, now)
    if plan is None:
        return None
    until = max(plan.start, min(now, plan.end))
    digest = build_digest(user, plan.start, until, preferences_of(user).alliance_ids)
    subject, text, html = render_digest(digest, plan.local_end.date(),
                                        test_of=plan.local_end if test else None)
    return OwnPreview(plan, until, digest, subject, text, html)


def preview_own_digest(user, now: datetime | None = None) -> OwnPreview:
    """The member's "preview my digest": their next digest as it stands now, built as they
    would get it (same read rule, same rendering, their own links), never sent, nothing
    recorded in the ledger. Raises DomainError when their digests are off."""
    preview = _build_next(user, now or utcnow())
    if preview is None:
        raise DomainError("Your digests are off: choose daily or weekly to preview one.")
    return preview


def request_test_digest(user) -> None:
    """Queue a test mail of the user's next digest to the user themselves. It goes the way
    a digest goes (outbox, worker, SMTP) and is built in the worker at send time, marked as
    a test; it writes no ledger row, so the period is not marked delivered and the digest
    still comes when due. At most TEST_MAIL_LIMIT per user; refused when digests are off."""
    if preferences_of(user).frequency == schedule.OFF:
        raise DomainError("Your digests are off: choose daily or weekly to get a test mail.")
    if not limiter.limiter.hit(parse_limit(TEST_MAIL_LIMIT), "digest-test-mail", str(user.id)):
        raise DomainError("You asked for several test mails in the last hour: the next one "
                          "can wait a little.")
    enqueue("digest-test", user_id=user.id)
    db.session.commit()


@handler("digest-test")
def send_test_digest(message) -> None:
    """Outbox handler: the test mail request_test_digest asked for. Built now, as the user;
    nothing to do for a user who is gone, inactive or has turned digests off since."""
    user = db.session.get(User, message.payload.get("user_id"))
    if user is None or not user.can_act:
        return
    preview = _build_next(user, utcnow(), test=True)
    if preview is None:
        return
    # One id per request: a retried send of this message keeps it, another request differs.
    message_id = deterministic_message_id(f"test-digest-{user.id}-{message.id}")
    try:
        msg = build_message(user.email, preview.subject, preview.text, preview.html,
                            message_id, headers=_mail_headers(user))
    except ValueError as exc:
        raise PermanentFailure(f"cannot build the message: {exc}") from exc
    send_message(msg)


# --- what coordinators and admins see ------------------------------------------------------

def alliance_recipients(alliance) -> list[User]:
    """Users who may get this alliance's notes by mail: active and verified, in a vetted
    organisation that is an active member of it."""
    return db.session.scalars(
        select(User).join(Organisation, Organisation.id == User.organisation_id)
        .join(Membership, Membership.organisation_id == User.organisation_id)
        .where(Membership.alliance_id == alliance.id, Membership.state == "active",
               Organisation.status == "approved", User.deactivated_at.is_(None),
               User.email_verified_at.is_not(None))
        .order_by(Organisation.name, User.name, User.id)).all()


def alliance_digest_stats(alliance) -> dict[str, int]:
    """How many users of the alliance's active member organisations get what."""
    counts = {"daily": 0, "weekly": 0, "off": 0, "not covering this alliance": 0}
    for p in _effective_preferences(alliance_recipients(alliance)).values():
        if p.frequency != "off" and p.alliance_ids is not None and \
                alliance.id not in p.alliance_ids:
            counts["not covering this alliance"] += 1
        else:
            counts[p.frequency] += 1
    return counts


def _local_day(instant: datetime, zone: str) -> date:
    try:
        return instant.astimezone(ZoneInfo(zone)).date()
    except (ValueError, OSError):  # a zone gone from the tz database: the UTC day
        return instant.date()


def preview_digest(coordinator, alliance, user_id: int, period: str = "day",
                   now: datetime | None = None) -> tuple[Digest, str, str, str]:
    """A coordinator's preview of what a member gets from the alliance over the last day or
    week: (digest, subject, text, html). Built as the member, through the read rule, and
    narrowed to this alliance's notes that the coordinator may read too, so it is never wider
    than either reader may see (a RED note addressed to the member alone stays invisible).
    The member's watch terms are theirs: a reason naming one is shown without the term. The
    links are the platform's, not the member's (their unsubscribe token stays theirs)."""
    require_coordinator(coordinator, alliance)
    if period not in PREVIEW_PERIODS:
        raise DomainError("Choose the last day or the last week.", field="period")
    member = next((u for u in alliance_recipients(alliance) if u.id == user_id), None)
    if member is None:
        raise NotFound("No such member of this alliance.")
    end = now or utcnow()
    prefs = preferences_of(member)
    digest = build_digest(member, end - PREVIEW_PERIODS[period], end, prefs.alliance_ids,
                          only_alliance=alliance.id,
                          also_readable_by=Principal.of(coordinator))
    for _, item in digest.ranked:  # listed and counted
        item.reasons = list(dict.fromkeys(
            "matches one of their watch terms" if r.startswith(WATCH_REASONS)
            else r for r in item.reasons))
    for why in digest.unlisted_why.values():
        why[:] = ["matches one of their watch terms" if r.startswith(WATCH_REASONS) else r
                  for r in why]
    digest.show(digest.shown)
    links = {"unsubscribe_url": external_url("digests.preferences"),
             "preferences_url": external_url("digests.preferences"),
             "red_url": external_url("notes.feed", tlp="RED"),
             "feed_url": external_url("notes.feed")}
    subject, text, html = render_digest(digest, _local_day(end, prefs.timezone), links)
    return digest, subject, text, html


def recent_deliveries(state: str | None = None, limit: int = 200) -> list[Delivery]:
    stmt = select(Delivery).options(selectinload(Delivery.user))
    if state:
        stmt = stmt.where(Delivery.state == state)
    return db.session.scalars(stmt.order_by(Delivery.created_at.desc(), Delivery.id.desc())
                              .limit(limit)).all()


def delivery_counts() -> dict[str, int]:
    return dict(db.session.execute(select(Delivery.state, func.count())
                                   .group_by(Delivery.state)).all())
