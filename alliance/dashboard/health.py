"""The dashboards' figures that are not about notes: memberships and digest deliveries for a
coordinator, registrations, the vetting queue, the outbox and deliveries for the platform
admin. SQL aggregates; nothing here reads the notes table."""
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from alliance.alliances.models import Membership
from alliance.audit.models import AuditEvent
from alliance.auth.models import User
from alliance.dashboard.charts import Chart, Series, Window, day_of, grid
from alliance.digests.models import Delivery, DigestPreference
from alliance.extensions import db
from alliance.orgs.models import Organisation
from alliance.outbox.models import OutboxMessage

# Membership states as a coordinator reads their health; "pending" waits on someone.
HEALTH = {"active": "Active", "suspended": "Suspended", "requested": "Pending",
          "invited": "Pending"}
HEALTH_KEYS = {"Active": "good", "Suspended": "bad", "Pending": "wait"}
# The vetting queue's age buckets: (label, up to this many days old).
AGES = (("Under a day", 1), ("1 to 7 days", 7), ("8 to 30 days", 30), ("Over 30 days", None))


# --- coordinator --------------------------------------------------------------------------

def membership_health(alliances) -> Chart:
    """Active, suspended and pending (requested or invited) members per alliance, now.
    Memberships keep when they began and last changed, not their past states, so this is
    today's picture; their history is in the audit log."""
    rows = db.session.execute(
        select(Membership.alliance_id, Membership.state, func.count())
        .where(Membership.alliance_id.in_([a.id for a in alliances] or [-1]),
               Membership.state.in_(tuple(HEALTH)))
        .group_by(Membership.alliance_id, Membership.state)).all()
    names = {a.id: a.name for a in alliances}
    counts: dict[tuple[str, str], int] = {}
    for alliance_id, state, n in rows:
        key = (names[alliance_id], HEALTH[state])
        counts[key] = counts.get(key, 0) + n
    labels = [a.name for a in alliances]
    return Chart("membership", "Members of the alliances you coordinate", "stacked",
                 "Alliance", labels, grid(labels, ["Active", "Suspended", "Pending"], counts,
                                          HEALTH_KEYS),
                 help="Pending: organisations that asked to join or were invited and have "
                      "not been answered yet.")


# What the audit log says happened to memberships, as a coordinator reads it.
CHANGES = {"membership.requested": "Asked to join", "membership.approved": "Joined",
           "membership.accepted": "Joined", "membership.suspended": "Suspended",
           "membership.left": "Left or removed", "membership.removed": "Left or removed"}
CHANGE_KEYS = {"Asked to join": "wait", "Joined": "good", "Suspended": "bad",
               "Left or removed": "gone"}


def membership_changes(alliances, win: Window) -> Chart:
    """Membership changes per day of the window across the alliances, from the audit log
    (written in the transaction of each change): the history the memberships do not keep."""
    day = func.date(AuditEvent.created_at)
    rows = db.session.execute(
        select(day, AuditEvent.action, func.count())
        .where(AuditEvent.alliance_id.in_([a.id for a in alliances] or [-1]),
               AuditEvent.action.in_(tuple(CHANGES)), AuditEvent.created_at >= win.start)
        .group_by(day, AuditEvent.action)).all()
    counts: dict[tuple[str, str], int] = {}
    for d, action, n in rows:
        key = (day_of(d), CHANGES[action])
        counts[key] = counts.get(key, 0) + n
    labels = win.day_labels()
    return Chart("membership-changes", f"Membership changes, last {win.days} days", "stacked",
                 "Day", labels, grid(labels, list(CHANGE_KEYS), counts, CHANGE_KEYS),
                 help="From the audit log of the alliances you coordinate. Times are UTC.")


def digest_figures(alliance, win: Window) -> Chart:
    """Digests of the window to the users of the alliance's active member organisations, sent
    and failed, and how many of those users have turned digests off (unsubscribed). Digests
    only: an alert is about one note, which the coordinator may not be allowed to read."""
    members = (select(User.id).join(Membership,
                                    Membership.organisation_id == User.organisation_id)
               .where(Membership.alliance_id == alliance.id, Membership.is_active,
                      User.deactivated_at.is_(None)))
    sent, failed = db.session.execute(
        select(func.count(case((Delivery.state == "sent", Delivery.id))),
               func.count(case((Delivery.state == "failed", Delivery.id))))
        .where(Delivery.kind == "digest", Delivery.created_at >= win.start,
               Delivery.user_id.in_(members))).one()
    off = db.session.scalar(select(func.count()).select_from(DigestPreference).where(
        DigestPreference.frequency == "off", DigestPreference.user_id.in_(members))) or 0
    return Chart("digests", f"Digests to the members of {alliance.name}, last {win.days} days",
                 "bar", "Figure", ["Sent", "Failed", "Unsubscribed users"],
                 [Series("Count", [sent, failed, off], "figures")],
                 help="Unsubscribed users have turned their digests off.")


# --- platform admin -----------------------------------------------------------------------

def _cumulative(model, win: Window) -> list[int]:
    """How many rows of the model exist at the end of each day of the window."""
    before = db.session.scalar(select(func.count()).select_from(model)
                               .where(model.created_at < win.start)) or 0
    day = func.date(model.created_at)
    per_day = {day_of(d): n for d, n in db.session.execute(
        select(day, func.count()).where(model.created_at >= win.start).group_by(day))}
    totals, running = [], before
    for label in win.day_labels():
        running += per_day.get(label, 0)
        totals.append(running)
    return totals


def growth(win: Window) -> Chart:
    """Organisations (every status: registrations too) and users at the end of each day."""
    return Chart("growth", f"Organisations and users, last {win.days} days", "line", "Day",
                 win.day_labels(), [Series("Organisations", _cumulative(Organisation, win), "org"),
                                    Series("Users", _cumulative(User, win), "user")],
                 help="Counted at the end of each UTC day, whatever their status now.")


def vetting_queue(now: datetime) -> tuple[Chart, datetime | None]:
    """Organisations waiting for vetting by how long they have waited, and the oldest
    registration's time."""
    pending = Organisation.status == "pending"
    buckets: list[int] = []
    lower: int | None = None
    for _label, days in AGES:
        conditions = [pending]
        if days is not None:
            conditions.append(Organisation.created_at > now - timedelta(days=days))
        if lower is not None:
            conditions.append(Organisation.created_at <= now - timedelta(days=lower))
        buckets.append(db.session.scalar(select(func.count()).select_from(Organisation)
                                         .where(*conditions)) or 0)
        lower = days
    oldest = db.session.scalar(select(func.min(Organisation.created_at)).where(pending))
    return Chart("vetting", "Organisations waiting for vetting, by how long", "bar", "Waiting",
                 [label for label, _days in AGES], [Series("Organisations", buckets, "wait")],
                 ), oldest


def outbox(now: datetime) -> tuple[Chart, datetime | None]:
    """The outbox now: waiting for the broker, handed over and not finished, finished, failed;
    and when the oldest waiting message was written."""
    open_ = OutboxMessage.done_at.is_(None) & OutboxMessage.failed_at.is_(None)
    waiting = open_ & OutboxMessage.published_at.is_(None)
    row = db.session.execute(select(
        func.count(case((waiting, OutboxMessage.id))),
        func.count(case((open_ & OutboxMessage.published_at.is_not(None), OutboxMessage.id))),
        func.count(OutboxMessage.done_at), func.count(OutboxMessage.failed_at))).one()
    oldest = db.session.scalar(select(func.min(OutboxMessage.created_at)).where(waiting))
    return Chart("outbox", "Outbox messages now", "bar", "State",
                 ["Waiting for the broker", "Handed over, running", "Done", "Failed"],
                 [Series("Messages", list(row), "figures")]), oldest


DELIVERY_STATES = (("sent", "Sent", "good"), ("failed", "Failed", "bad"),
                   ("pending", "Pending", "wait"))


def deliveries(win: Window) -> Chart:
    """Digests and alerts per day of the window, by outcome."""
    day = func.date(Delivery.created_at)
    rows = db.session.execute(
        select(day, Delivery.state, func.count())
        .where(Delivery.created_at >= win.start,
               Delivery.state.in_([s for s, _label, _key in DELIVERY_STATES]))
        .group_by(day, Delivery.state)).all()
    labels = {s: label for s, label, _key in DELIVERY_STATES}
    counts = {(day_of(d), labels[state]): n for d, state, n in rows}
    days = win.day_labels()
    return Chart("deliveries", f"Mail deliveries per day, last {win.days} days", "line", "Day",
                 days, grid(days, list(labels.values()), counts,
                            {label: key for _s, label, key in DELIVERY_STATES}),
                 help="Digests and alerts, by the day their delivery was recorded (UTC).")
