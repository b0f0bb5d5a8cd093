"""A member's digest preferences: what they chose, or until they choose the defaults of
their alliances (DESIGN.md, "Digests and alerts"); and the one-click unsubscribe their mails
carry. Watch terms are watch_terms.py's."""
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alliance.alliances.models import Alliance, Membership
from alliance.alliances.services import active_alliances_of
from alliance.auth.models import User
from alliance.auth.tokens import make_token, read_token
from alliance.core.errors import DomainError, NotFound
from alliance.core.unit import unit_of_work
from alliance.digests import schedule
from alliance.digests.models import DigestPreference
from alliance.extensions import db
from alliance.orgs.models import Organisation

UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600
_FREQUENCY_RANK = {"off": 0, "weekly": 1, "daily": 2}


@dataclass
class Preferences:
    frequency: str
    weekday: int
    hour: int
    timezone: str
    alliance_ids: list | None
    alerts: bool
    chosen: bool  # False: the defaults of the user's alliances


def member_alliances(user) -> Sequence[Alliance]:
    """Alliances the user's organisation is an active member of (what a digest may cover)."""
    return active_alliances_of(user.organisation_id)


def alliance_defaults(alliances, country: str | None) -> Preferences:
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
    return alliance_defaults(member_alliances(user), country)


def preferences_of(user) -> Preferences:
    row = db.session.get(DigestPreference, user.id)
    if row is not None:
        return Preferences(row.frequency, row.weekday, row.hour, row.timezone,
                           row.alliance_ids, row.alerts, True)
    return default_preferences(user)


@unit_of_work()
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
    return row


def effective_preferences(users) -> dict[int, Preferences]:
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
                .where(Membership.organisation_id.in_(org_ids), Membership.is_active)):
            by_org[org_id].append(alliance)
    countries = dict(db.session.execute(select(Organisation.id, Organisation.country).where(
        Organisation.id.in_(org_ids))).all()) if org_ids else {}
    result = {}
    for user in users:
        row = rows.get(user.id)
        result[user.id] = (Preferences(row.frequency, row.weekday, row.hour, row.timezone,
                                       row.alliance_ids, row.alerts, True) if row else
                           alliance_defaults(by_org.get(user.organisation_id, []),
                                             countries.get(user.organisation_id)))
    return result



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
        try:
            with unit_of_work():
                prefs = preferences_of(user)
                row = db.session.get(DigestPreference, user.id) or DigestPreference(
                    user_id=user.id, hour=prefs.hour, weekday=prefs.weekday,
                    timezone=prefs.timezone, alliance_ids=prefs.alliance_ids)
                row.frequency, row.alerts = "off", False
                db.session.add(row)
        except IntegrityError:
            if last:
                raise
        else:
            break
    return user
