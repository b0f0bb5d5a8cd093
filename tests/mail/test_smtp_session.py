"""The SMTP session around a message: once the server has accepted it (250 after DATA), the
message is delivered, whatever QUIT then answers; a retry would send it a second time."""
import pytest
from sqlalchemy import select

from alliance.digests import preferences, scheduling
from alliance.digests.models import Delivery
from alliance.extensions import db
from alliance.outbox.models import OutboxMessage
from alliance.outbox.services import TemporaryFailure, run_message
from tests.digests.helpers import far_hour, ledger, next_run, post
from tests.servers import SMTPSink


@pytest.fixture(params=["421 closing transmission channel", "554 no thanks", "drop"])
def quit_fails_sink(request):
    """A real SMTP server that accepts every message and then answers QUIT with a 421 (a
    server going down: RFC 5321 allows 421 in reply to any command), a 5xx, or by dropping
    the connection."""
    sink = SMTPSink()

    async def handle_QUIT(server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        if request.param == "drop":
            server.transport.close()
            return None
        return request.param

    sink.handler.handle_QUIT = handle_QUIT
    sink.start()
    yield sink
    sink.stop()


def test_a_digest_the_server_accepted_is_sent_once_whatever_quit_answers(
        app, monkeypatch, quit_fails_sink, coordinator, alliance, member):
    monkeypatch.setitem(app.config, "MAIL_URL", quit_fails_sink.url)
    preferences.save_preferences(member, frequency="daily", hour=far_hour(),
                              timezone="Europe/Berlin")
    instant, _ = next_run(preferences.preferences_of(member).hour)
    post(coordinator, "Only once please", "GREEN", [alliance])
    scheduling.schedule_due(instant, publish=False)
    [row] = ledger(member, "digest")
    [message_id] = [m.id for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "digest"))
        if m.payload["delivery_id"] == row.id]

    outcomes = []
    for _ in range(3):  # the dispatch task's first run and its retries
        try:
            outcomes.append(run_message(message_id))
        except TemporaryFailure as exc:
            outcomes.append(f"retry: {exc}")
        db.session.expire_all()
        if db.session.get(OutboxMessage, message_id).done_at is not None:
            break

    received = [m for m in quit_fails_sink.messages if m["To"] == member.email]
    assert len(received) == 1, outcomes
    assert db.session.get(Delivery, row.id).state == "sent"
