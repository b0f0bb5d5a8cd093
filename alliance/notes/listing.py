"""The feed as a list: its filters as the feed form sends them (the feed page, its saved
searches and its exports take the same ones), and what each note of a page shows beside its
title, read once per page, never per note (alliance.sharing.policy decides what is counted)."""
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from sqlalchemy import func, literal, select, union_all

from alliance.alliances.models import Alliance
from alliance.extensions import db
from alliance.notes.models import NoteAudience, NoteComment, Observable
from alliance.orgs.models import Organisation
from alliance.sharing.policy import Principal, names_readable_note

# The feed form's fields that filter (the query string of a shareable feed address).
FILTERS = ("q", "alliance", "tlp", "type", "sector", "country", "tag", "since", "until")


def feed_filters(form) -> dict:
    """reading.feed's keyword arguments for a validated FeedFilterForm."""
    since, until = form.since.data, form.until.data
    return {
        "alliance_id": int(form.alliance.data) if form.alliance.data else None,
        "tlp": form.tlp.data or None, "stix_type": form.type.data or None,
        "sector": form.sector.data or None, "country": form.country.data or None,
        "policy_tag": form.tag.data or None, "query": form.q.data or None,
        "since": datetime.combine(since, time.min, UTC) if since else None,
        # Up to the end of that day; the last day there is has no end to put.
        "until": datetime.combine(until, time.min, UTC) + timedelta(days=1)
        if until and until < date.max else None,
    }


def filter_args(args) -> dict[str, str]:
    """The filters in a request's arguments, blank ones left out: for links that keep them
    (the next page, the exports, a saved search). Any other name is dropped."""
    return {name: args[name] for name in FILTERS if (args.get(name) or "").strip()}


def filter_query(args) -> str:
    """filter_args as a query string, in the feed form's order."""
    return urlencode(filter_args(args))


@dataclass(frozen=True)
class NoteFacts:
    """What the feed shows of a note beside its title: the alliances it is shared with
    (every alliance is listed in the directory), and its counts."""

    alliances: tuple = ()
    observables: int = 0
    responses: int = 0
    sightings: int = 0


def page_facts(principal: Principal, notes) -> dict[int, NoteFacts]:
    """NoteFacts for each note of a feed page, in three statements whatever the page's size:
    the author organisations (loaded once, so note.organisation is no query per note), the
    audience alliances, and one aggregate of the counts. Each count group is kept only if
    the rule lets the principal read its note (HAVING, once per note): the page's notes come
    from the rule already; a caller passing others gets no counts for them."""
    ids = [n.id for n in notes]
    if not ids:
        return {}
    org_ids = sorted({n.organisation_id for n in notes})
    db.session.scalars(select(Organisation).where(Organisation.id.in_(org_ids))).all()
    alliances: dict[int, list] = {}
    for note_id, name, slug in db.session.execute(
            select(NoteAudience.note_id, Alliance.name, Alliance.slug)
            .join(Alliance, Alliance.id == NoteAudience.alliance_id)
            .where(NoteAudience.note_id.in_(ids)).order_by(Alliance.name)):
        alliances.setdefault(note_id, []).append((name, slug))
    counts: dict[int, dict[str, int]] = {}
    for note_id, kind, count in db.session.execute(_counts(principal, ids)):
        counts.setdefault(note_id, {})[kind] = count
    facts = {}
    for note_id in ids:
        got = counts.get(note_id, {})
        facts[note_id] = NoteFacts(
            alliances=tuple(alliances.get(note_id, ())), observables=got.get("observable", 0),
            responses=got.get("comment", 0) + got.get("opinion", 0),
            sightings=got.get("sighting", 0))
    return facts


def _counts(principal: Principal, ids: list[int]):
    """(note id, "observable" | response kind, count) for the notes `ids` the principal may
    read: distinct observable values, comments, opinions and sightings (which inherit their
    note's audience and TLP)."""
    observables = (
        select(Observable.note_id.label("note_id"), literal("observable").label("kind"),
               func.count(func.distinct(Observable.value)).label("n"))
        .where(Observable.note_id.in_(ids)).group_by(Observable.note_id)
        .having(names_readable_note(principal, Observable.note_id)))
    responses = (
        select(NoteComment.note_id, NoteComment.kind, func.count())
        .where(NoteComment.note_id.in_(ids)).group_by(NoteComment.note_id, NoteComment.kind)
        .having(names_readable_note(principal, NoteComment.note_id)))
    return union_all(observables, responses)
