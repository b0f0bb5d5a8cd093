"""The figures of the dashboards, as SQL aggregates.

Every figure about notes is composed on the read rule: each statement starts from
alliance.sharing.policy.readable_notes(principal, ...) and only narrows, joins and groups it,
so a chart never counts a note its viewer may not read (DESIGN.md: "a path that counts before
filtering leaks"; tests/sharing/test_read_rule_properties.py and test_canary.py check every
chart). The figures that are not about notes (memberships, deliveries, the outbox,
registrations) are in alliance.dashboard.health."""
from collections import defaultdict
from datetime import datetime
from functools import cache

from flask import url_for
from sqlalchemy import (
    Date,
    Integer,
    and_,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from alliance.alliances.services import active_alliances_of, coordinated_alliances
from alliance.dashboard import health
from alliance.dashboard.charts import Chart, Series, Window, day_of, grid
from alliance.digests.models import WatchTerm
from alliance.extensions import db
from alliance.notes.models import (
    Note,
    NoteAudience,
    NoteComment,
    NoteFacet,
    NoteObject,
    Observable,
    StixObject,
)
from alliance.orgs.models import Organisation
from alliance.sharing.policy import Principal, count_readable, readable_notes
from alliance.stix import attack
from alliance.stix.tlp import TLP_LEVELS

TOP = 10  # rows of a "top" chart
# The "top" charts count over the newest LATEST readable notes of the window: a bounded
# index walk, the same work at 10,000 notes or a million (issue 23: p95 < 200 ms at 100k).
LATEST = 1000
RESPONSES = ("comment", "opinion")
FACET_TERMS = ("sector", "country", "policy_tag")


def _readable(principal: Principal, *first, columns):
    """readable_notes(principal, *first) selecting `columns` instead of notes (still FROM
    notes, still filtered by the rule): the base of every aggregate here. Joins onto it add
    rows per note and narrow; they never widen. A table the rule's own subqueries read
    (note_audiences) is joined under an alias (_addressed_to), or SQLAlchemy would
    correlate those subqueries with the joined row."""
    return readable_notes(principal, *first).with_only_columns(*columns,
                                                               maintain_column_froms=True)


def _day():
    return func.date(Note.created_at)


# --- the analyst's dashboard ----------------------------------------------------------------

def window_counts(principal: Principal, win: Window) -> tuple[list, list]:
    """The readable notes of the window counted two ways: (day, TLP, notes) and (alliance,
    TLP, notes) for the alliances the reader's organisation is an active member of (a note
    addressed to two of them counts in both). One pass of the rule over the window's notes
    (a common table expression read twice), not one per chart: at 100,000 notes a 90-day
    window holds some 25,000 notes to check."""
    window = _readable(principal, Note.created_at >= win.start,
                       columns=(Note.id.label("id"), _day().label("day"),
                                Note.tlp.label("tlp"))).cte("window")
    alliance_ids = [a.id for a in active_alliances_of(principal.organisation_id)]
    audience = aliased(NoteAudience)
    by_day = select(window.c.day, cast(null(), Integer).label("alliance_id"), window.c.tlp,
                    func.count()).group_by(window.c.day, window.c.tlp)
    by_alliance = (select(cast(null(), Date), audience.alliance_id, window.c.tlp, func.count())
                   .select_from(window).join(audience, and_(
                       audience.note_id == window.c.id,
                       audience.alliance_id.in_(alliance_ids or [-1])))
                   .group_by(audience.alliance_id, window.c.tlp))
    rows = db.session.execute(union_all(by_day, by_alliance)).all()
    return ([(day, tlp, n) for day, alliance_id, tlp, n in rows if alliance_id is None],
            [(alliance_id, tlp, n) for _day, alliance_id, tlp, n in rows
             if alliance_id is not None])


def activity(principal: Principal, win: Window, counts=None) -> Chart:
    """Readable notes posted per UTC day of the window, by TLP (`counts`: window_counts'
    answer, read here when None)."""
    by_day, _by_alliance = counts or window_counts(principal, win)
    counts = {(day_of(d), tlp): n for d, tlp, n in by_day}
    labels = win.day_labels()
    return Chart("activity", f"Notes you can read, per day, last {win.days} days", "stacked",
                 "Day", labels, grid(labels, list(TLP_LEVELS), counts,
                                     {t: t for t in TLP_LEVELS}),
                 help="Days with no note count zero. Times are UTC.")


def by_alliance(principal: Principal, win: Window, counts=None) -> Chart:
    """Readable notes of the window per alliance the reader's organisation is an active
    member of, by TLP (a note addressed to two of them counts in both; `counts`:
    window_counts' answer, read here when None)."""
    alliances = list(active_alliances_of(principal.organisation_id))
    _by_day, rows = counts or window_counts(principal, win)
    names = {a.id: a.name for a in alliances}
    counts = {(names[alliance_id], tlp): n for alliance_id, tlp, n in rows
              if alliance_id in names}
    labels = [a.name for a in alliances]
    return Chart("alliances", f"Notes you can read per alliance, last {win.days} days",
                 "stacked", "Alliance", labels,
                 grid(labels, list(TLP_LEVELS), counts, {t: t for t in TLP_LEVELS}),
                 links=[url_for("notes.feed", alliance=a.id) for a in alliances],
                 help="The alliances your organisation is an active member of; a note "
                      "addressed to two of them counts in both.")


def _latest(principal: Principal, win: Window) -> tuple[list[int], bool]:
    """(the ids of the newest LATEST readable notes of the window, whether the window holds
    more): the notes the "top" charts count over. The walk of the feed's index, newest
    first, is the same plan whatever the window (with the window in the statement, the
    planner may read the whole window and sort it); the notes before it are left out here."""
    rows = db.session.execute(
        _readable(principal, columns=(Note.id, Note.created_at))
        .order_by(Note.created_at.desc(), Note.id.desc()).limit(LATEST + 1)).all()
    ids = [note_id for note_id, created in rows if created >= win.start]
    return ids[:LATEST], len(ids) > LATEST


def _latest_help(more: bool) -> str:
    return (f" Counted over the newest {LATEST:,} notes you can read from these days."
            if more else "")


def top_observables(principal: Principal, win: Window, latest=None) -> Chart:
    """The observable values in the most readable notes of the window (values on a warning
    list, such as public resolvers, are left out: they are everywhere and mean nothing);
    over the newest LATEST of them (`latest`: _latest's answer, read here when None)."""
    latest, more = latest or _latest(principal, win)
    notes = func.count(func.distinct(Observable.note_id)).label("notes")
    rows = db.session.execute(
        select(Observable.kind, Observable.value, notes)
        .where(Observable.note_id.in_(latest), Observable.warning.is_(None))
        .group_by(Observable.kind, Observable.value)
        .order_by(notes.desc(), Observable.value).limit(TOP)).all()
    return Chart("observables", f"Observables in the most notes, last {win.days} days", "hbar",
                 "Observable", [f"{value} ({kind})" for kind, value, _n in rows],
                 [Series("Notes", [n for _k, _v, n in rows], "count")],
                 links=[url_for("notes.feed", q=value) for _k, value, _n in rows],
                 help="Values on a warning list (private ranges, public resolvers) are left "
                      "out." + _latest_help(more))


def top_techniques(principal: Principal, win: Window, latest=None) -> Chart:
    """The ATT&CK techniques named by attack-pattern objects of the most readable notes of the
    window, by their first mitre-attack reference (where compose and ATT&CK's own bundles put
    it), with their names from alliance.stix.attack; over the newest LATEST of them
    (`latest`: _latest's answer, read here when None)."""
    latest, more = latest or _latest(principal, win)
    technique = func.upper(
        StixObject.body[("external_references", 0, "external_id")].as_string())
    notes = func.count(func.distinct(NoteObject.note_id)).label("notes")
    # Grouped by the output column's name: the JSON path is a bound parameter, and PostgreSQL
    # does not take `GROUP BY <expression with another parameter>` as the selected one.
    by_name: ColumnElement = literal_column("technique")
    rows = db.session.execute(
        select(technique.label("technique"), notes)
        .select_from(NoteObject)
        .join(StixObject, StixObject.id == NoteObject.object_id)
        .where(NoteObject.note_id.in_(latest), StixObject.type == "attack-pattern",
               technique.like("T%"))
        .group_by(by_name).order_by(notes.desc(), by_name).limit(TOP)).all()
    return Chart("techniques", f"ATT&CK techniques in the most notes, last {win.days} days",
                 "hbar", "Technique", [attack.technique(t).label for t, _n in rows],
                 [Series("Notes", [n for _t, n in rows], "count")],
                 help=_latest_help(more).strip())


def own_notes(principal: Principal, win: Window) -> Chart:
    """The reader's organisation's readable notes of the window, newest first, with their
    responses (comments and opinions) and sightings."""
    responses = func.count(case((NoteComment.kind.in_(RESPONSES), NoteComment.id)))
    sightings = func.count(case((NoteComment.kind == "sighting", NoteComment.id)))
    rows = db.session.execute(
        _readable(principal, Note.created_at >= win.start,
                  Note.organisation_id == principal.organisation_id,
                  columns=(Note.id, Note.report_id, Note.title, Note.tlp, Note.created_at,
                           responses, sightings))
        .outerjoin(NoteComment, NoteComment.note_id == Note.id)
        .group_by(Note.id, Note.report_id, Note.title, Note.tlp, Note.created_at)
        .order_by(Note.created_at.desc(), Note.id.desc()).limit(TOP)).all()
    return Chart("own-notes", f"Your organisation's latest notes, last {win.days} days",
                 "hbar", "Note", [f"{r.title} (TLP:{r.tlp})" for r in rows],
                 [Series("Responses", [r[5] for r in rows], "count"),
                  Series("Sightings", [r[6] for r in rows], "sighting")],
                 links=[url_for("notes.show", uuid=r.report_id.split("--", 1)[1])
                        for r in rows],
                 help="Responses are comments and opinions; sightings say \"we saw this too\".")


def watch_hits(principal: Principal, user_id: int, win: Window) -> Chart:
    """Each of the user's watch terms, with the readable notes of the window that carry it
    (the matching of alerts: observable values not on a warning list, and facets)."""
    terms = db.session.scalars(select(WatchTerm).where(WatchTerm.user_id == user_id)
                               .order_by(WatchTerm.kind, WatchTerm.value)).all()
    notes = func.count(func.distinct(Note.id))
    mine = WatchTerm.user_id == user_id
    by_value = (_readable(principal, Note.created_at >= win.start,
                          columns=(WatchTerm.id, notes))
                .join(Observable, Observable.note_id == Note.id)
                .join(WatchTerm, and_(WatchTerm.value == Observable.value, mine,
                                      WatchTerm.kind.in_(("value", "cve"))))
                .where(Observable.warning.is_(None)).group_by(WatchTerm.id))
    by_facet = (_readable(principal, Note.created_at >= win.start,
                          columns=(WatchTerm.id, notes))
                .join(NoteFacet, NoteFacet.note_id == Note.id)
                .join(WatchTerm, and_(WatchTerm.value == NoteFacet.value, mine,
                                      WatchTerm.kind == NoteFacet.facet,
                                      WatchTerm.kind.in_(FACET_TERMS)))
                .group_by(WatchTerm.id))
    hits = dict(db.session.execute(by_value).all()) if terms else {}
    hits.update(db.session.execute(by_facet).all() if terms else {})
    return Chart("watch-terms", f"Notes carrying your watch terms, last {win.days} days",
                 "hbar", "Watch term",
                 [f"{t.value} ({t.kind.replace('_', ' ')})" for t in terms],
                 [Series("Notes", [hits.get(t.id, 0) for t in terms], "count")])


def new_since(principal: Principal, since: datetime, limit: int = TOP) -> tuple[int, list]:
    """How many readable notes were posted after `since`, and the newest of them."""
    count = count_readable(principal, Note.created_at > since)
    latest = list(db.session.scalars(readable_notes(principal, Note.created_at > since)
                                     .order_by(Note.created_at.desc(), Note.id.desc())
                                     .limit(limit)))
    return count, latest


# --- the coordinator's dashboard: an alliance's notes, as the coordinator reads them ------

def _addressed_to(alliance):
    """The join to a note's audience row for the alliance. An alias: the rule's subqueries
    read note_audiences themselves, and a plain join would correlate them with this row
    (checking the rule against this one alliance) instead of all the note's audience."""
    audience = aliased(NoteAudience)
    return audience, and_(audience.note_id == Note.id, audience.alliance_id == alliance.id)


def posting_by_organisation(principal: Principal, alliance, win: Window) -> Chart:
    """Readable notes of the window addressed to the alliance, per author organisation."""
    notes = func.count(func.distinct(Note.id)).label("notes")
    rows = db.session.execute(
        _readable(principal, Note.created_at >= win.start, columns=(Organisation.name, notes))
        .join(*_addressed_to(alliance))
        .join(Organisation, Organisation.id == Note.organisation_id)
        .group_by(Organisation.name).order_by(notes.desc(), Organisation.name)).all()
    return Chart("posting", f"Notes to {alliance.name} per organisation, last {win.days} days",
                 "hbar", "Organisation", [name for name, _n in rows],
                 [Series("Notes", [n for _name, n in rows], "count")])


def tlp_mix(principal: Principal, alliance, win: Window) -> Chart:
    """Readable notes of the window addressed to the alliance, by TLP."""
    rows = db.session.execute(
        _readable(principal, Note.created_at >= win.start, columns=(Note.tlp, func.count()))
        .join(*_addressed_to(alliance)).group_by(Note.tlp)).all()
    counts = defaultdict(int, rows)
    return Chart("tlp-mix", f"TLP of the notes to {alliance.name}, last {win.days} days",
                 "bar", "TLP", [f"TLP:{t}" for t in TLP_LEVELS],
                 [Series("Notes", [counts[t] for t in TLP_LEVELS], "tlp")])


# --- the pages' charts, and the one chart a data endpoint asks for -------------------------

def _analyst_builders(user, win: Window) -> dict:
    principal = Principal.of(user)
    # Read once for the page: two charts count the window's notes, two the newest of them.
    counts = cache(lambda: window_counts(principal, win))
    latest = cache(lambda: _latest(principal, win))
    return {
        "activity": lambda: activity(principal, win, counts()),
        "alliances": lambda: by_alliance(principal, win, counts()),
        "observables": lambda: top_observables(principal, win, latest()),
        "techniques": lambda: top_techniques(principal, win, latest()),
        "own-notes": lambda: own_notes(principal, win),
        "watch-terms": lambda: watch_hits(principal, user.id, win),
    }


def _alliance_builders(user, alliance, win: Window) -> dict:
    principal = Principal.of(user)
    return {
        "posting": lambda: posting_by_organisation(principal, alliance, win),
        "tlp-mix": lambda: tlp_mix(principal, alliance, win),
        "digests": lambda: health.digest_figures(alliance, win),
    }


def _platform_builders(win: Window) -> dict:
    return {
        "growth": lambda: health.growth(win),
        "vetting": lambda: health.vetting_queue(win.now)[0],
        "outbox": lambda: health.outbox(win.now)[0],
        "deliveries": lambda: health.deliveries(win),
    }


ANALYST_CHARTS = ("activity", "alliances", "observables", "techniques", "own-notes", "watch-terms")
ALLIANCE_CHARTS = ("posting", "tlp-mix", "digests")
PLATFORM_CHARTS = ("growth", "vetting", "outbox", "deliveries")
COORDINATOR_CHARTS = ("membership", "membership-changes")
CHARTS = ANALYST_CHARTS + COORDINATOR_CHARTS + ALLIANCE_CHARTS + PLATFORM_CHARTS


def analyst_charts(user, win: Window) -> list[Chart]:
    """The analyst's charts: every signed-in member's, through the read rule as that user."""
    return [build() for build in _analyst_builders(user, win).values()]


def _coordinator_builders(alliances, win: Window) -> dict:
    return {"membership": lambda: health.membership_health(alliances),
            "membership-changes": lambda: health.membership_changes(alliances, win)}


def coordinator_charts(user, alliances, win: Window) -> tuple[list[Chart], list]:
    """The membership charts of the alliances the user coordinates, and (alliance, charts)
    for each of them."""
    return [build() for build in _coordinator_builders(alliances, win).values()], [
        (a, [build() for build in _alliance_builders(user, a, win).values()])
        for a in alliances]


def chart_data(user, name: str, win: Window, alliance_slug: str | None) -> Chart | None:
    """The chart a data endpoint asks for, as the page shows it to this user; None when the
    user may not see it (not a member, not a coordinator of that alliance, not a platform
    admin) or it does not exist: the endpoint answers 404 for both."""
    if name in ANALYST_CHARTS:
        return _analyst_builders(user, win)[name]() if user.can_act else None
    if name in COORDINATOR_CHARTS + ALLIANCE_CHARTS:
        alliances = coordinated_alliances(user)
        if name in COORDINATOR_CHARTS:
            return _coordinator_builders(alliances, win)[name]() if alliances else None
        alliance = next((a for a in alliances if a.slug == alliance_slug), None)
        return _alliance_builders(user, alliance, win)[name]() if alliance else None
    if name in PLATFORM_CHARTS and user.is_admin and user.is_verified:
        return _platform_builders(win)[name]()
    return None
