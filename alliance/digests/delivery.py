"""Sending digests (outbox handlers, in a worker): a due ledger row is built AS THE USER, AT
SEND TIME, through the read rule, rendered, sent with a deterministic Message-ID and marked
sent in the outbox's own commit. A row that is no longer pending is never sent again. The
ledger helpers here (finish_delivery, build_delivery_mail, send_delivery_mail) serve the
alerts too."""
from alliance.core.models import utcnow
from alliance.digests.building import build_digest
from alliance.digests.models import Delivery
from alliance.digests.preferences import preferences_of
from alliance.digests.rendering import list_headers, local_day, render_digest
from alliance.extensions import db
from alliance.mail.services import build_message, deterministic_message_id, send_message
from alliance.outbox.services import PermanentFailure


def finish_delivery(delivery: Delivery, state: str, **values) -> None:
    """Settle a ledger row: its state and the values given, stored with the outbox row's
    mark in the outbox's unit of work."""
    delivery.state = state
    for key, value in values.items():
        setattr(delivery, key, value)


def send_delivery_mail(delivery: Delivery, msg) -> None:
    """Send, and mark the ledger row sent: stored in one unit of work with the outbox row's
    done mark (the ledger row and the outbox row can never disagree). A failure rolls that
    back; record_failure, the handlers' on_failure, records it."""
    send_message(msg)
    finish_delivery(delivery, "sent", sent_at=utcnow(), error=None)


def record_failure(payload: dict, error: str, permanent: bool) -> None:
    """on_failure of digests and alerts: a permanent failure settles the ledger row as
    failed (the outbox stops); a temporary one is noted on it while the outbox retries."""
    delivery = db.session.get(Delivery, payload.get("delivery_id"))
    if delivery is None or delivery.state != "pending":
        return
    if permanent:
        finish_delivery(delivery, "failed", error=error[:2000])
    else:
        delivery.error = f"temporary: {error}"[:2000]


def build_delivery_mail(delivery: Delivery, user, mail: tuple[str, str, str],
                        message_id: str, links: dict):
    """The mail for a ledger row, or a permanent failure recorded on it: an address the
    e-mail package refuses is refused the same on every retry (send_queued_mail's rule)."""
    try:
        subject, text, html = mail
        return build_message(user.email, subject, text, html, message_id,
                             headers=list_headers(links["unsubscribe_url"]))
    except ValueError as exc:
        raise PermanentFailure(f"cannot build the message: {exc}"[:2000]) from exc


def _digest_message_id(delivery: Delivery) -> str:
    # "daily:2026-03-29" -> "daily.2026-03-29": a colon is not allowed in a Message-ID's
    # left part (RFC 5322 dot-atom); parsers cut the id there and relays may replace it.
    return deterministic_message_id(
        f"digest-{delivery.user_id}-{delivery.period_key.replace(':', '.')}")


def mark_sending(message) -> None:
    """The ledger mark before sending, committed with the outbox claim (one transaction, not
    two): the pending row gets the Message-ID its mail is about to carry. send_digest clears
    it again when it sends nothing (empty, skipped), and records the items with the outcome."""
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is not None and delivery.state == "pending":
        delivery.message_id = _digest_message_id(delivery)


def mark_failed(payload: dict, error: str) -> None:
    """Give-up hook of digests and alerts: the ledger row says the outbox stopped trying."""
    delivery = db.session.get(Delivery, payload.get("delivery_id"))
    if delivery is not None and delivery.state == "pending":
        delivery.state, delivery.error = "failed", f"gave up: {error}"[:2000]


def send_digest(message) -> None:
    """Outbox handler "digest": build, render and send one ledger row's digest."""
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is None or delivery.state != "pending":
        return  # sent (or settled) already: a duplicate or redelivered task
    user = delivery.user
    prefs = preferences_of(user)
    if not user.can_act or prefs.frequency == "off":
        finish_delivery(delivery, "skipped", error="unsubscribed or inactive at send time",
                        message_id=None)
        return
    # A digest row is made with its window (scheduling.schedule_due), unlike an alert's.
    assert delivery.window_start is not None and delivery.window_end is not None
    digest = build_digest(user, delivery.window_start, delivery.window_end, prefs.alliance_ids)
    if digest.empty:
        finish_delivery(delivery, "empty", message_id=None)
        return
    subject, text, html = render_digest(digest, local_day(delivery.window_end, prefs.timezone))
    message_id = _digest_message_id(delivery)
    # Marked with the claim when run through run_message (mark_sending); stored with the
    # outcome: "sent" with the outbox row's done_at, or a failure (record_failure).
    delivery.message_id = message_id
    delivery.items, delivery.strictest_tlp = digest.count, digest.strictest
    assert digest.links is not None  # render_digest set the links it rendered with
    msg = build_delivery_mail(delivery, user, (subject, text, html), message_id, digest.links)
    send_delivery_mail(delivery, msg)
