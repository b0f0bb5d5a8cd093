"""Watch terms: the values, CVE ids, sectors, countries and policy tags a member watches,
stored in the form observables and facets are stored in, and which of them notes carry
(what an alert is for, and why a note is in a digest)."""
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import and_, func, select

from alliance.core.errors import DomainError, NotFound
from alliance.core.unit import unit_of_work
from alliance.core.vocab import country_choices, policy_tag_choices, sector_choices
from alliance.digests.models import WatchTerm
from alliance.extensions import db
from alliance.notes.models import NoteFacet, Observable
from alliance.stix import observables

MAX_WATCH_TERMS = 100
WATCH_TERM_CHARS = 300      # the watch_terms.value column


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


@unit_of_work()
def add_watch_term(user, kind: str, raw: str) -> WatchTerm:
    value = normalise_term(kind, raw)
    count = db.session.scalar(select(func.count()).select_from(WatchTerm)
                              .where(WatchTerm.user_id == user.id)) or 0
    if count >= MAX_WATCH_TERMS:
        raise DomainError(f"You watch {MAX_WATCH_TERMS} terms already; remove one first.",
                          field="value")
    existing = db.session.scalar(select(WatchTerm).where(
        WatchTerm.user_id == user.id, WatchTerm.kind == kind, WatchTerm.value == value))
    if existing is not None:
        return existing
    term = WatchTerm(user_id=user.id, kind=kind, value=value)
    db.session.add(term)
    return term


@unit_of_work()
def remove_watch_term(user, term_id: int) -> None:
    term = db.session.get(WatchTerm, term_id)
    if term is None or term.user_id != user.id:
        raise NotFound("No such watch term.")
    db.session.delete(term)


def watch_terms_of(user) -> Sequence[WatchTerm]:
    return db.session.scalars(select(WatchTerm).where(WatchTerm.user_id == user.id)
                              .order_by(WatchTerm.kind, WatchTerm.value)).all()


def matching_terms(note_ids, user_ids=None) -> dict[tuple[int, int], list[str]]:
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
