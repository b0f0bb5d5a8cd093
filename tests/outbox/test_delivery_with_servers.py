"""The outbox end to end with real parts: redis-server, a Celery worker process (with beat)
and an SMTP server. Mail goes out once, also when Redis was down when the change was made."""
import time

import pytest
from sqlalchemy import select

from alliance.outbox.models import OutboxMessage
from tests import factories
from tests.servers import assert_tried_once, broker_attempts

pytestmark = pytest.mark.servers


@pytest.fixture
def requested(alliance):
    org = factories.make_org("Requesting Org")
    admin = factories.make_user(org, "admin@requesting.example", role="org_admin")
    membership = factories.add_member(alliance, org, "requested")
    return membership, admin


def _rows():
    from alliance.extensions import db

    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_approval_with_redis_down_returns_fast_and_mails_once_redis_is_back(
        server_app, worker, redis_server, smtp, coordinator, alliance, requested, monkeypatch):
    membership, requester = requested
    smtp.clear()
    client = server_app.test_client()
    factories.login(client, coordinator)
    redis_server.stop()
    try:
        with monkeypatch.context() as patch:
            attempts = broker_attempts(server_app, patch)
            response = client.post(f"/alliances/atlantic/memberships/{membership.id}/approve",
                                   data={"reason": "welcome"})
    finally:
        redis_server.start()
    assert response.status_code == 302
    assert_tried_once(attempts)
    assert factories.fresh(membership).state == "active"
    mail_rows = [r for r in _rows() if r.kind == "mail"]
    assert len(mail_rows) == 1 and mail_rows[0].published_at is None  # left for the relay

    assert _wait(lambda: len(smtp.messages) >= 1), \
        "no mail after Redis came back:\n" + worker.log()[-3000:]
    time.sleep(3)  # several more relay cycles: nothing may be sent twice
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == requester.email
    assert "Atlantic Alliance" in mail["Subject"]
    row = _rows()[0]
    assert row.done_at is not None and row.run_attempts == 1
    assert mail["Message-ID"] == f"<outbox-{row.id}@alliance.test>"


def test_a_message_published_twice_is_sent_once(server_app, worker, smtp, alliance, requested):
    from alliance.extensions import db
    from alliance.mail.services import queue_mail

    smtp.clear()
    queue_mail("twice@example.com", "member_joined", "Joined", org_name="X",
               alliance_name="Atlantic Alliance", link="http://alliance.test/")
    db.session.commit()
    message_id = _rows()[-1].id
    celery = server_app.extensions["celery"]
    for _ in range(3):
        celery.send_task("alliance.outbox.dispatch", args=[message_id])
    assert _wait(lambda: len(smtp.messages) >= 1)
    time.sleep(3)
    assert [m["To"] for m in smtp.messages] == ["twice@example.com"]


def test_temporary_smtp_failure_is_retried_and_permanent_one_is_not(server_app, worker, smtp):
    from alliance.extensions import db
    from alliance.mail.services import queue_mail

    smtp.clear()
    smtp.fail_next = ["451 4.3.0 try again later"]
    queue_mail("retry@example.com", "member_joined", "Retry me", org_name="X",
               alliance_name="A", link="http://alliance.test/")
    db.session.commit()
    # The first attempt meets 451 and is retried with backoff; it then arrives once.
    assert _wait(lambda: len(smtp.messages) >= 1, timeout=90), worker.log()[-3000:]
    # The worker marks the row done just after the SMTP server took the mail: wait for it.
    assert _wait(lambda: _rows()[-1].done_at is not None, timeout=30), worker.log()[-3000:]
    retried = _rows()[-1]
    assert retried.run_attempts >= 2 and len(smtp.messages) == 1

    smtp.clear()
    smtp.fail_next = ["550 5.1.1 no such user"]
    queue_mail("gone@example.com", "member_joined", "Never", org_name="X",
               alliance_name="A", link="http://alliance.test/")
    db.session.commit()
    assert _wait(lambda: _rows()[-1].failed_at is not None, timeout=60), worker.log()[-3000:]
    failed = _rows()[-1]
    time.sleep(2)
    assert failed.run_attempts == 1 and "550" in failed.last_error
    assert smtp.messages == []
