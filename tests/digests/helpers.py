"""Shared by the digest tests: posting a note, a `digests run` instant whose period holds what
is posted now, running outbox messages in order, and reading the mails back from the maildir."""
import email
import email.policy
import mailbox
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from alliance.digests import schedule
from alliance.digests.models import Delivery
from alliance.extensions import db
from alliance.notes.posting import NoteDraft, post_note
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import run_message
from tests.notes.helpers import identity, indicator

ZONE = "Europe/Berlin"


def post(author, title: str, tlp: str = "AMBER", alliances=(), description: str = "",
         domain: str | None = None, recipients=(), alerts: bool = True):
    """A note by `author`; with `domain`, an indicator carrying it (an observable value)."""
    objects = [identity()]
    if domain:
        objects.append(indicator(f"[domain-name:value = '{domain}']"))
    return post_note(author, NoteDraft(
        title=title, tlp=tlp, alliance_ids=[a.id for a in alliances], objects=objects, kind="incident",
        description=description, recipient_ids=[u.id for u in recipients]), alerts=alerts)


def far_hour(zone: str = ZONE, now: datetime | None = None) -> int:
    """A local delivery hour about twelve hours from now, so that the period now falls into
    starts well before the test and ends well after it, whatever the time of day."""
    now = now or datetime.now(UTC)
    return (now.astimezone(ZoneInfo(zone)).hour + 12) % 24


def next_run(hour: int, zone: str = ZONE, now: datetime | None = None):
    """(instant, local date): a minute after the next daily delivery at `hour` in `zone`.
    `digests run --at instant` sends the period that holds `now`."""
    now = now or datetime.now(UTC)
    tz = ZoneInfo(zone)
    current = schedule.current_period(now, "daily", hour, zone)
    end = schedule.delivery_instant(current.local_date + timedelta(days=1), hour, tz)
    assert current.end <= now < end
    return end + timedelta(minutes=1), end.astimezone(tz).date()


def run_digests(app, instant: datetime):
    result = app.test_cli_runner().invoke(
        args=["alliance", "digests", "run", "--at", instant.isoformat()])
    db.session.expire_all()
    assert result.exit_code == 0, result.output
    return result


def run_outbox(kind: str) -> list[str]:
    """Run every waiting outbox message of this kind, oldest first, as a worker would."""
    db.session.expire_all()
    ids = db.session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.kind == kind, OutboxMessage.done_at.is_(None),
        OutboxMessage.failed_at.is_(None)).order_by(OutboxMessage.id)).all()
    outcomes = [run_message(message_id) for message_id in ids]
    db.session.expire_all()
    return outcomes


def run_alerts() -> None:
    """The scan a post enqueued, then the alerts the scan enqueued."""
    run_outbox("watch-scan")
    run_outbox("alert")


def ledger(user=None, kind: str | None = None) -> list[Delivery]:
    db.session.expire_all()
    stmt = select(Delivery).order_by(Delivery.id)
    if user is not None:
        stmt = stmt.where(Delivery.user_id == user.id)
    if kind is not None:
        stmt = stmt.where(Delivery.kind == kind)
    return db.session.scalars(stmt).all()


class Mailbox:
    """The test maildir, emptied when made; mails parsed with the modern e-mail API."""

    def __init__(self, path: str):
        self.path = path
        for sub in ("new", "cur", "tmp"):  # the folders stay: other pages read the maildir
            folder = os.path.join(path, sub)
            os.makedirs(folder, exist_ok=True)
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))

    def all(self) -> list[email.message.EmailMessage]:
        if not os.path.isdir(os.path.join(self.path, "new")):
            return []
        box = mailbox.Maildir(self.path, create=False)
        return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                for key in box.keys()]

    def to(self, user, kind: str | None = None) -> list[email.message.EmailMessage]:
        """Mails to the user; kind "digest" or "alert" by their Message-ID."""
        return [m for m in self.all() if m["To"] == user.email
                and (kind is None or m["Message-ID"].startswith(f"<{kind}-"))]


def parts(mail) -> tuple[str, str]:
    """(text, html) of a mail."""
    return (mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content())
