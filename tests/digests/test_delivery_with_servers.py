"""Digests and watch alerts end to end with real parts: redis-server, a Celery worker process
(with embedded beat relaying the outbox every second) and an aiosmtpd SMTP server. Whatever
goes wrong on the way (4xx, SMTP down, a worker killed mid-digest, a duplicated task, two
schedulers, Redis down, a 5xx, access lost before sending) each due user gets each digest
and each alert at most once, and exactly once when it can be delivered (DESIGN.md, "Digests
and alerts").

The worker runs with short leases and retry delays (WORKER_ENV), keeping config.py's
invariant: task time limit (7.5 s) < claim lease (10 s) < Redis visibility timeout (12 s).
Digests are made due by a daily preference at the current UTC hour (the period that ended at
hour:00 today) and notes whose created_at lies inside that period."""
import os
import signal
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from alliance.auth.models import User
from alliance.core.models import utcnow
from alliance.digests import schedule, scheduling, stats
from alliance.digests.models import Delivery, DigestPreference, WatchTerm
from alliance.extensions import db
from alliance.notes.models import Note
from alliance.outbox.models import OutboxMessage
from tests import factories
from tests.notes.helpers import identity
from tests.servers import CeleryWorker, assert_tried_once, broker_attempts

pytestmark = pytest.mark.servers

CLAIM_SECONDS = 10
WORKER_ENV = {
    "OUTBOX_RELAY_SECONDS": "1",
    "OUTBOX_CLAIM_SECONDS": str(CLAIM_SECONDS),   # time limits: soft 5 s, hard 7.5 s
    "OUTBOX_REPUBLISH_SECONDS": "10",
    "CELERY_VISIBILITY_TIMEOUT": "12",
    "OUTBOX_RETRY_BASE_SECONDS": "0.5",
    "OUTBOX_RETRY_MAX_SECONDS": "2",
    "OUTBOX_MAX_ATTEMPTS": "30",                  # an outage of seconds never exhausts them
    "DIGEST_SCAN_SECONDS": "3600",                # the tests run each scheduling cycle
}


# --- fixtures -------------------------------------------------------------------------------

def _ready_count(worker) -> int:
    return worker.log().count("ready.")


def _start(worker, timeout: float = 60.0) -> None:
    """Start the worker process (again) and wait until it consumes."""
    before = _ready_count(worker)
    worker.start()
    deadline = time.monotonic() + timeout
    while _ready_count(worker) <= before:
        if time.monotonic() > deadline or worker.proc.poll() is not None:
            raise RuntimeError("the Celery worker did not start:\n" + worker.log()[-3000:])
        time.sleep(0.2)


@pytest.fixture(scope="module")
def worker(app, redis_server, smtp, tmp_root):
    """This module's worker: the shared fixture's, with short leases and retry delays."""
    proc = CeleryWorker({
        "ALLIANCE_ENV": "testing",
        "TEST_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": redis_server.url, "MAIL_URL": smtp.url,
        "BASE_URL": app.config["BASE_URL"],
        "INSTANCE_PATH": os.path.join(tmp_root, "digest-worker-instance"),
        **WORKER_ENV,
    }, logfile=os.path.join(tmp_root, f"digest-worker-{time.monotonic_ns()}.log"))
    _start(proc)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def servers_up(worker, redis_server, smtp, db):
    """Every test starts with the servers running, an empty sink that fails nothing, and
    ends once the worker has nothing of it left to run (no retry of one test meets the
    rows of the next, whose ids the database reuses)."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    if smtp.controller is None:
        smtp.start()
    if worker.proc is None or worker.proc.poll() is not None:
        _start(worker)
    smtp.clear()
    smtp.fail_next, smtp.rcpt_delays = [], []
    smtp.rcpt_delayed.clear()
    yield
    smtp.fail_next, smtp.rcpt_delays = [], []
    db.session.rollback()
    _wait(lambda: all(r.done_at or r.failed_at for r in _outbox()), timeout=15)


@pytest.fixture
def quiet(alliance):
    """No digest by the alliance's default: only users with a preference below are due."""
    alliance.digest_frequency = "off"
    db.session.commit()
    return alliance


# --- helpers --------------------------------------------------------------------------------

def _wait(predicate, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _outbox(kind: str | None = None) -> list[OutboxMessage]:
    db.session.expire_all()
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        stmt = stmt.where(OutboxMessage.kind == kind)
    return db.session.scalars(stmt).all()


def _ledger(kind: str = "digest") -> list[Delivery]:
    db.session.expire_all()
    return db.session.scalars(select(Delivery).where(Delivery.kind == kind)
                              .order_by(Delivery.id)).all()


def _mails(smtp, kind: str = "digest") -> list:
    """Digest (or alert) mails the sink received; every other mail (membership decisions,
    say) is left out."""
    with smtp.lock:
        return [m for m in smtp.messages if m["Message-ID"].startswith(f"<{kind}-")]


def _body(mail) -> str:
    return "\n".join(mail.get_body((kind,)).get_content() for kind in ("plain", "html"))


def _why(worker) -> str:
    """The tail of the worker's log, without the relay's every-second lines."""
    lines = [line for line in worker.log().splitlines()
             if "relay-outbox" not in line and "alliance.outbox.relay[" not in line]
    return "\n--- worker log (tail) ---\n" + "\n".join(lines)[-5000:]


def _period(now):
    return schedule.current_period(now, "daily", now.hour, "UTC")


def _due_reader(alliances, name: str, now, frequency: str = "daily"):
    """A user of a new organisation, active in `alliances`, whose daily digest is due."""
    org = factories.make_org(f"{name.title()} Org")
    for alliance in alliances:
        factories.add_member(alliance, org, "active")
    user = factories.make_user(org, f"{name}@{name}.example")
    db.session.add(DigestPreference(user_id=user.id, frequency=frequency, hour=now.hour,
                                    weekday=0, timezone="UTC", alerts=True))
    db.session.commit()
    return user


def _note_in_period(author, alliances, title: str, now) -> Note:
    from alliance.notes.posting import NoteDraft, post_note

    note = post_note(author, NoteDraft(
        title=title, tlp="GREEN", alliance_ids=[a.id for a in alliances], objects=[identity(title)]),
        alerts=False)
    db.session.execute(update(Note).where(Note.id == note.id).values(
        created_at=_period(now).end - timedelta(minutes=30)))
    db.session.commit()
    return note


def _schedule(server_app, now, publish: bool = True) -> list[int]:
    """One beat cycle, in the app that publishes to the real Redis."""
    with server_app.app_context():
        return scheduling.schedule_due(now, publish=publish)


def _message_id(user, now) -> str:
    return f"<digest-{user.id}-{scheduling.ledger_key(_period(now).end).replace(':', '.')}" \
           "@alliance.test>"


def _expect_one_digest(smtp, worker, user, now, settle: float = 3.0):
    """Exactly one digest mail to the user for the period, also after a few more relay
    cycles; returns it."""
    assert _wait(lambda: _mails(smtp)), "no digest was delivered" + _why(worker)
    time.sleep(settle)  # more relay cycles and retries: nothing may arrive twice
    mails = _mails(smtp)
    assert [m["Message-ID"] for m in mails] == [_message_id(user, now)], \
        f"expected one digest, got {[m['Message-ID'] for m in mails]}" + _why(worker)
    assert mails[0]["To"] == user.email
    [row] = _ledger()
    assert row.state == "sent" and row.sent_at is not None and row.error is None, \
        (row.state, row.error)
    return mails[0]


@pytest.fixture
def due(quiet, member, now):
    """One due reader and one note of the period, posted by another organisation."""
    reader = _due_reader([quiet], "reader", now)
    _note_in_period(member, [quiet], "Phishing wave against ports", now)
    return reader


@pytest.fixture
def now():
    return utcnow()


# --- the faults -----------------------------------------------------------------------------

def test_smtp_421_twice_is_retried_and_the_digest_arrives_once(server_app, worker, smtp,
                                                                 due, now):
    smtp.fail_next = ["421 4.3.0 busy, try later", "421 4.3.0 busy, try later"]
    assert len(_schedule(server_app, now)) == 1

    mail = _expect_one_digest(smtp, worker, due, now)
    assert "Phishing wave against ports" in _body(mail)
    assert mail["Subject"].startswith("[TLP:GREEN]")
    [message] = _outbox("digest")
    assert message.done_at is not None and message.failed_at is None
    assert message.run_attempts == 3, (message.run_attempts, message.last_error)


def test_smtp_down_for_a_while_then_the_digest_arrives_once(server_app, worker, smtp, due,
                                                             now):
    smtp.stop()
    try:
        assert len(_schedule(server_app, now)) == 1
        # Connections are refused; the outbox retries with backoff, the ledger stays pending.
        assert _wait(lambda: (_outbox("digest")[0].run_attempts >= 3), timeout=30), \
            "the digest was not retried while SMTP was down" + _why(worker)
        time.sleep(2)
        message = _outbox("digest")[0]
        assert message.done_at is None and message.failed_at is None
        assert "SMTP connection" in (message.last_error or ""), message.last_error
        [row] = _ledger()
        assert row.state == "pending" and "temporary" in (row.error or "")
        assert _mails(smtp) == []
    finally:
        smtp.start()
    _expect_one_digest(smtp, worker, due, now)
    assert _outbox("digest")[0].done_at is not None


def test_duplicate_tasks_for_one_digest_send_it_once(server_app, worker, smtp, due, now):
    [delivery_id] = _schedule(server_app, now, publish=False)
    [message] = _outbox("digest")
    celery = server_app.extensions["celery"]
    for _ in range(2):  # the relay publishes it a third time
        celery.send_task("alliance.outbox.dispatch", args=[message.id])
    # A second outbox message for the same ledger row (a task enqueued twice over): the
    # ledger row is no longer pending when it runs.
    with server_app.app_context():
        from alliance.outbox.services import enqueue

        enqueue("digest", delivery_id=delivery_id)
        db.session.commit()

    _expect_one_digest(smtp, worker, due, now)
    first, second = _outbox("digest")
    assert first.run_attempts == 1 and first.done_at is not None
    assert second.done_at is not None


def test_schedulers_running_at_once_make_one_ledger_row_and_one_mail_per_user(
        server_app, worker, smtp, quiet, member, now):
    readers = [_due_reader([quiet], f"reader{n}", now) for n in range(3)]
    _note_in_period(member, [quiet], "Shared by two beats", now)
    barrier = threading.Barrier(3)
    created, errors = [], []

    def beat():
        try:
            barrier.wait(10)
            created.extend(_schedule(server_app, now))
        except Exception as exc:  # reported below with the others
            errors.append(exc)

    beats = [threading.Thread(target=beat) for _ in range(3)]
    for thread in beats:
        thread.start()
    for thread in beats:
        thread.join(30)
    assert errors == []
    assert len(created) == 3 and len(set(created)) == 3, created
    assert _schedule(server_app, now) == []  # and a later cycle finds nothing new

    assert _wait(lambda: len(_mails(smtp)) >= 3), "digests missing" + _why(worker)
    time.sleep(3)
    ids = Counter(m["Message-ID"] for m in _mails(smtp))
    assert ids == Counter({_message_id(reader, now): 1 for reader in readers}), \
        str(ids) + _why(worker)
    ledger = _ledger()
    assert sorted(r.user_id for r in ledger) == sorted(r.id for r in readers)
    assert {r.state for r in ledger} == {"sent"} and len(_outbox("digest")) == 3


def test_a_note_posted_while_redis_is_down_alerts_its_watcher_once_redis_is_back(
        server_app, worker, smtp, redis_server, quiet, member, monkeypatch):
    watcher = _due_reader([quiet], "watcher", utcnow(), frequency="off")  # alerts only
    db.session.add(WatchTerm(user_id=watcher.id, kind="value", value="203.0.113.77"))
    db.session.commit()
    client = server_app.test_client()
    factories.login(client, member)
    redis_server.stop()
    try:
        with monkeypatch.context() as patch:
            attempts = broker_attempts(server_app, patch)
            response = client.post("/notes/new/indicators", data={
                "title": "C2 seen again", "tlp": "GREEN", "alliances": str(quiet.id),
                "observables": "203.0.113.77", "post": "1"})
    finally:
        redis_server.start()
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert_tried_once(attempts)
    [scan] = _outbox("watch-scan")
    assert scan.published_at is None  # left for the relay

    assert _wait(lambda: _mails(smtp, "alert"), timeout=60), \
        "no alert after Redis came back" + _why(worker)
    time.sleep(3)
    alerts = _mails(smtp, "alert")
    assert [m["To"] for m in alerts] == [watcher.email], [m["To"] for m in alerts]
    assert "203.0.113.77" in alerts[0]["Subject"] and "C2 seen again" in _body(alerts[0])
    [row] = _ledger("alert")
    assert row.state == "sent" and row.user_id == watcher.id
    assert _mails(smtp) == []  # no digest is due for anyone


def _failed_at_once(server_app, worker, smtp, now, reason: str) -> Delivery:
    """The due digest, scheduled: it fails on its first attempt, is not retried, and the
    outbox and the ledger say why. Returns the ledger row."""
    assert len(_schedule(server_app, now)) == 1
    assert _wait(lambda: _ledger()[0].state == "failed"), \
        f"ledger is {_ledger()[0].state}" + _why(worker)
    time.sleep(3)  # a retry would have run by now
    [message] = _outbox("digest")
    assert message.run_attempts == 1 and message.failed_at is not None
    assert reason in message.last_error
    [row] = _ledger()
    assert row.state == "failed" and reason in row.error and row.sent_at is None
    assert _mails(smtp) == []
    return row


def test_smtp_550_is_not_retried_and_the_ledger_says_failed(server_app, worker, smtp, due,
                                                            now):
    smtp.fail_next = ["550 5.1.1 no such user"]
    row = _failed_at_once(server_app, worker, smtp, now, "550")
    with server_app.app_context():
        assert [d.id for d in stats.recent_deliveries("failed")] == [row.id]


def test_an_address_no_message_can_be_built_for_is_not_retried(server_app, worker, smtp, due,
                                                              now):
    """Stored before addresses were checked as they are now: the e-mail package refuses it
    on every attempt, so the first is the last, and the ledger says why."""
    db.session.execute(update(User).where(User.id == due.id).values(
        email="reader at reader.example"))
    db.session.commit()
    _failed_at_once(server_app, worker, smtp, now, "cannot build the message")


def test_access_is_checked_when_the_digest_is_sent_not_when_it_is_scheduled(
        server_app, worker, smtp, quiet, coordinator, member, now):
    from alliance.alliances.services import membership_of
    from alliance.alliances.transitions import decide
    from alliance.notes.editing import retract_note

    pacific = factories.make_alliance(coordinator, slug="pacific", name="Pacific Alliance")
    pacific.digest_frequency = "off"
    factories.add_member(pacific, member.organisation, "active")
    reader = _due_reader([quiet, pacific], "reader", now)
    _note_in_period(member, [quiet], "Atlantic only note", now)
    _note_in_period(member, [pacific], "Pacific kept note", now)
    retracted = _note_in_period(member, [pacific], "Pacific retracted note", now)

    worker.stop()  # scheduled and published, but no worker takes it yet
    assert len(_schedule(server_app, now)) == 1
    assert _ledger()[0].state == "pending" and _outbox("digest")[0].published_at is not None
    decide(coordinator, quiet, membership_of(reader.organisation_id, quiet), "remove",
           reason="left the sector")
    retract_note(member, factories.fresh(retracted), "posted by mistake")
    _start(worker)

    mail = _expect_one_digest(smtp, worker, reader, now)
    text = _body(mail) + "\n" + mail["Subject"]
    assert "Pacific kept note" in text
    assert "Atlantic" not in text, "the digest shows an alliance the reader has left"
    assert "Pacific retracted note" not in text
    assert _ledger()[0].items == 1


@pytest.mark.parametrize("restart", ["at once", "after the visibility timeout"])
def test_a_worker_killed_mid_digest_is_restarted_and_the_digest_arrives_once(
        server_app, worker, smtp, redis_server, due, now, restart):
    import redis

    smtp.rcpt_delays = [30.0]  # the worker waits inside the SMTP conversation, before DATA
    assert len(_schedule(server_app, now)) == 1
    assert smtp.rcpt_delayed.wait(30), "the digest never reached RCPT TO" + _why(worker)
    delivered = time.monotonic()
    os.killpg(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    [message] = _outbox("digest")
    assert message.run_attempts == 1 and message.done_at is None
    assert message.claimed_until is not None  # the dead run's lease: nobody runs it meanwhile
    assert _ledger()[0].state == "pending" and _mails(smtp) == []
    broker = redis.Redis.from_url(redis_server.url)
    assert broker.hlen("unacked") == 1  # acks_late: the task is still the dead worker's

    if restart != "at once":
        time.sleep(max(0.0, delivered + float(WORKER_ENV["CELERY_VISIBILITY_TIMEOUT"]) + 0.5
                       - time.monotonic()))
    _start(worker)
    # At once: the relay republishes the message when its lease has expired and it was
    # published OUTBOX_REPUBLISH_SECONDS ago. After the visibility timeout: the restarted
    # worker also takes the unacknowledged task back from Redis. When both run, the claim
    # lets one of them send.
    _expect_one_digest(smtp, worker, due, now, settle=4.0)
    [message] = _outbox("digest")
    assert message.done_at is not None and message.run_attempts == 2, message.run_attempts
    if restart == "at once":
        # Sent through the relay; Redis still holds the dead worker's task until a sweep
        # restores it (then it is skipped). Drop it: it must not run a later test's row.
        assert broker.hlen("unacked") == 1
        broker.delete("unacked", "unacked_index")
    else:
        assert broker.hlen("unacked") == 0, "the killed worker's task was never restored"
