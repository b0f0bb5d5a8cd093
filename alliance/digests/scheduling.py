"""When digests are built: the one rule of a user's next digest (plan_digest), which the
preferences page shows and the beat's scheduling cycle (schedule_due) acts on. The calendar
arithmetic (periods in the user's zone, DST days) is schedule.py's, pure functions; this
module adds the ledger: where the last digest's window ended, and a ledger row and an
outbox message for each digest that is due, once (unique on user and window end)."""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select

from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.digests import schedule
from alliance.digests.models import Delivery
from alliance.digests.preferences import Preferences, effective_preferences, preferences_of
from alliance.extensions import db
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import relay_pending

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert


def _active_users():
    return db.session.scalars(
        select(User).where(User.can_act).order_by(User.id)).all()


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
    now = now or utcnow()
    users = _active_users()
    prefs = effective_preferences(users)
    covered = last_window_ends([u.id for u in users], now)
    due = []
    for user in users:
        plan = plan_digest(prefs[user.id], covered.get(user.id), now)
        if plan is not None and plan.due_now:
            due.append({"user_id": user.id, "kind": "digest", "period_key": plan.key,
                        "window_start": plan.start, "window_end": plan.end,
                        "state": "pending", "items": 0, "created_at": now})
    created = []
    with unit_of_work():
        for start in range(0, len(due), 500):
            created += _insert_new_deliveries(due[start:start + 500])
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
    # The dialect's insert is imported here: sqlalchemy.dialects.postgresql is heavy, and
    # a command-line start (which imports this through the CLI) never needs it.
    upsert: Callable[[Table], PostgresqlInsert | SqliteInsert]
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    deliveries = cast(Table, Delivery.__table__)  # a model's __table__ is typed FromClause
    stmt = (upsert(deliveries).values(rows)
            .on_conflict_do_nothing(index_elements=["user_id", "period_key"])
            .returning(deliveries.c.id))
    ids = sorted(db.session.execute(stmt).scalars().all())
    if ids:
        now = utcnow()
        db.session.execute(cast(Table, OutboxMessage.__table__).insert(), [
            {"kind": "digest", "payload": {"delivery_id": i}, "created_at": now,
             "available_at": now, "publish_attempts": 0, "run_attempts": 0} for i in ids])
    return ids
