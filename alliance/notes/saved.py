"""Saved searches: a user's named sets of feed filters. A saved search holds a feed query
string, not notes: running it is opening the feed with those filters, through the read rule
as the user is then. Each user sees, runs and deletes only their own (another's is a 404)."""
from collections.abc import Sequence
from urllib.parse import parse_qsl

from sqlalchemy import func, select

from alliance.core.errors import DomainError, NotFound
from alliance.core.unit import unit_of_work
from alliance.extensions import db
from alliance.notes.listing import filter_query
from alliance.notes.models import SavedSearch

MAX_SAVED = 50


def saved_searches(user) -> Sequence[SavedSearch]:
    """The user's saved searches, by name."""
    return db.session.scalars(select(SavedSearch).where(SavedSearch.user_id == user.id)
                              .order_by(func.lower(SavedSearch.name), SavedSearch.id)).all()


def get_saved_search(user, search_id: int) -> SavedSearch:
    """The user's saved search; NotFound (404) for one that does not exist or is another
    user's, alike."""
    found = db.session.scalar(select(SavedSearch).where(SavedSearch.id == search_id,
                                                        SavedSearch.user_id == user.id))
    if found is None:
        raise NotFound("No such saved search.")
    return found


def clean_query(query: str) -> str:
    """The feed filters in a query string, in the feed form's order; anything else (a page
    cursor, unknown names) dropped."""
    first: dict[str, str] = {}
    for name, value in parse_qsl(query or ""):
        first.setdefault(name, value)  # as the feed's form reads a name sent twice
    return filter_query(first)


@unit_of_work()
def save_search(user, name: str, query: str) -> tuple[SavedSearch, bool]:
    """Save the feed filters in `query` under `name`; saving under a name the user has used
    already replaces that search's filters. Returns (the search, whether it is new). The
    caller has checked the filters with the feed's form."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the search a name.", field="name")
    query = clean_query(query)
    if not query:
        raise DomainError("Choose at least one filter or search word to save.", field="name")
    existing = db.session.scalar(select(SavedSearch).where(SavedSearch.user_id == user.id,
                                                           SavedSearch.name == name))
    if existing is not None:
        existing.query = query
        return existing, False
    held = db.session.scalars(select(func.count()).select_from(SavedSearch)
                              .where(SavedSearch.user_id == user.id)).one()  # COUNT: one row
    if held >= MAX_SAVED:
        raise DomainError(f"You have {MAX_SAVED} saved searches, the most there can be: "
                          "delete one first.", field="name")
    search = SavedSearch(user_id=user.id, name=name, query=query)
    db.session.add(search)
    return search, True


@unit_of_work()
def delete_saved_search(user, search_id: int) -> SavedSearch:
    """Delete the user's saved search (NotFound for another user's)."""
    search = get_saved_search(user, search_id)
    db.session.delete(search)
    return search
