"""Digests built now and never recorded: a member's "preview my digest" and "send me a test
mail", and a coordinator's preview of what a member of their alliance gets. Each is built as
the member through the read rule and rendered as the mail would be."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import parse as parse_limit

from alliance.alliances.services import require_coordinator
from alliance.auth.models import User
from alliance.core.errors import DomainError, NotFound
from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.core.urls import external_url
from alliance.digests import schedule
from alliance.digests.building import build_digest
from alliance.digests.content import WATCH_REASONS, Digest
from alliance.digests.preferences import preferences_of
from alliance.digests.rendering import list_headers, local_day, render_digest
from alliance.digests.scheduling import DigestPlan, next_digest
from alliance.digests.stats import alliance_recipients
from alliance.extensions import db, limiter
from alliance.mail.services import build_message, deterministic_message_id, send_message
from alliance.outbox.services import PermanentFailure, enqueue
from alliance.sharing.policy import Principal

PREVIEW_PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7)}
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


@unit_of_work()
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


def send_test_digest(message) -> None:
    """Outbox handler "digest-test": the test mail request_test_digest asked for. Built now, as the user;
    nothing to do for a user who is gone, inactive or has turned digests off since."""
    user = db.session.get(User, message.payload.get("user_id"))
    if user is None or not user.can_act:
        return
    preview = _build_next(user, utcnow(), test=True)
    if preview is None:
        return
    # One id per request: a retried send of this message keeps it, another request differs.
    message_id = deterministic_message_id(f"test-digest-{user.id}-{message.id}")
    assert preview.digest.links is not None  # render_digest set the links it rendered with
    try:
        msg = build_message(user.email, preview.subject, preview.text, preview.html,
                            message_id,
                            headers=list_headers(preview.digest.links["unsubscribe_url"]))
    except ValueError as exc:
        raise PermanentFailure(f"cannot build the message: {exc}") from exc
    send_message(msg)


# --- a coordinator's preview of a member's digest -----------------------------------------

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
    subject, text, html = render_digest(digest, local_day(end, prefs.timezone), links)
    return digest, subject, text, html
