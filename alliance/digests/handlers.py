"""What the digests slice plugs into the rest of the application, registered by the factory
(alliance.configure_outbox), never by importing a module: the outbox kinds it runs, and its
receiver of the notes slice's note_posted signal (notes does not import digests)."""
from alliance.digests.alerts import scan_note_for_watchers, scan_when_posted, send_alert
from alliance.digests.delivery import mark_failed, mark_sending, record_failure, send_digest
from alliance.digests.previews import send_test_digest
from alliance.notes.events import note_posted
from alliance.outbox.services import Handler

HANDLERS = {
    "digest": Handler(send_digest, on_give_up=mark_failed, on_claim=mark_sending,
                      on_failure=record_failure),
    "watch-scan": Handler(scan_note_for_watchers),
    "alert": Handler(send_alert, on_give_up=mark_failed, on_failure=record_failure),
    "digest-test": Handler(send_test_digest),
}


def connect_signals() -> None:
    """Queue a watch scan with every note posted (alerts.scan_when_posted). Connecting twice
    (a second app in one process) connects once."""
    note_posted.connect(scan_when_posted)
