"""Watch alerts (DESIGN.md, "Digests and alerts"): posting a note queues a scan (unless a
bulk import asks for none); the scan finds users watching a term the note carries, writes
one ledger row per (user, note) and queues the alert, or, past ALERT_LIMIT_PER_HOUR alerts
in the last hour, folds it into the next digest. What an alert may show of its note is
alliance.sharing.channels'."""
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.digests.content import Item, note_link, term_reason
from alliance.digests.delivery import build_delivery_mail, finish_delivery, send_delivery_mail
from alliance.digests.models import Delivery
from alliance.digests.preferences import preferences_of
from alliance.digests.rendering import member_links
from alliance.digests.watch_terms import matching_terms
from alliance.extensions import db
from alliance.mail.services import deterministic_message_id, render_mail
from alliance.notes.models import Note
from alliance.outbox.services import enqueue
from alliance.sharing.channels import mail_detail
from alliance.sharing.policy import Principal, readable_notes


def alert_limit() -> int:
    return current_app.config["ALERT_LIMIT_PER_HOUR"]


def scan_note_for_watchers(message) -> None:
    """Outbox handler "watch-scan", after a note is posted: a ledger row per (watching user
    who may read it, note), then an alert, or a fold into the next digest once the user had
    ALERT_LIMIT alerts in the last hour (a user who gets no digest gets every alert: a fold
    would lose the match). A watcher who may not read the note gets no row: it would count
    towards their limit, and anyone could then hold back their alerts with notes they never
    see. Nor does the author, whose own note is never alerted. Who may read the note is
    decided again when the alert is sent."""
    note_id = message.payload["note_id"]
    matches = matching_terms([note_id])
    now = utcnow()
    for (user_id, _), terms in sorted(matches.items()):
        user = db.session.get(User, user_id)
        if user is None or not user.can_act:
            continue
        prefs = preferences_of(user)
        if not prefs.alerts:
            continue
        note = db.session.scalar(readable_notes(Principal.of(user)).where(Note.id == note_id))
        if note is None or note.author_id == user_id:
            continue
        state = "pending"
        if prefs.frequency != "off":  # with no digest to fold into, every match is alerted
            recent = db.session.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.user_id == user_id, Delivery.kind == "alert",
                Delivery.state.in_(("pending", "sent")),
                Delivery.created_at >= now - timedelta(hours=1))) or 0
            state = "folded" if recent >= alert_limit() else "pending"
        try:
            with db.session.begin_nested():
                row = Delivery(user_id=user_id, kind="alert", period_key=f"alert:{note_id}",
                               note_id=note_id, watch_term=terms[0], state=state)
                db.session.add(row)
                db.session.flush()
                if state == "pending":
                    enqueue("alert", delivery_id=row.id)
        except IntegrityError:
            continue


def send_alert(message) -> None:
    """Outbox handler "alert": one watch alert, built as the user at send time; a note the
    user may no longer read, or their own, is skipped."""
    delivery = db.session.get(Delivery, message.payload["delivery_id"])
    if delivery is None or delivery.state != "pending":
        return
    user = delivery.user
    if not user.can_act or not preferences_of(user).alerts:
        finish_delivery(delivery, "skipped", error="alerts off or inactive at send time")
        return
    note = db.session.scalar(readable_notes(Principal.of(user)).where(
        Note.id == delivery.note_id, Note.retracted_at.is_(None)))
    if note is None:
        finish_delivery(delivery, "skipped", error="not readable at send time")
        return
    if note.author_id == user.id:
        finish_delivery(delivery, "skipped", error="the user's own note")
        return
    links = member_links(user)
    detail = mail_detail(note.tlp)
    if not detail.listed:
        # A RED note reaches mail as a count only (sharing.channels): not its title, not the
        # term it carries (its content too), not its id — the link is the reader's RED feed.
        # The subject's tag names the content the mail carries (Digest.strictest): a count.
        item, term = Item(note, [], links["red_url"]), None
        subject = "[TLP:CLEAR] CyberPeace alert — 1 TLP:RED note addressed to you"
    else:
        # An alert row is made with the term it matched (scan_note_for_watchers).
        assert delivery.watch_term is not None
        term = delivery.watch_term if detail.watch_term else None
        item = Item(note, [term_reason(note.tlp, delivery.watch_term)], note_link(note))
        subject = (f"[TLP:{note.tlp}] CyberPeace alert — "
                   + (f"{term} in a new note" if term else "a note matches a watch term"))
    text, html = render_mail("alert", item=item, term=term, subject=subject,
                             red=not detail.listed,
                             digests=preferences_of(user).frequency != "off", **links)
    message_id = deterministic_message_id(f"alert-{user.id}-{delivery.note_id}")
    delivery.items, delivery.strictest_tlp, delivery.message_id = 1, note.tlp, message_id
    send_delivery_mail(delivery, build_delivery_mail(delivery, user, (subject, text, html),
                                                     message_id, links))


def scan_when_posted(note: Note, alerts: bool = True, **_) -> None:
    """Receiver of alliance.notes.events.note_posted (connected by handlers.register), in
    the posting transaction: scan for watchers once it commits, unless the poster (a bulk
    import) asked for no alerts."""
    if alerts:
        enqueue("watch-scan", note_id=note.id)
