"""The outbox's claim and relay rules, on the database alone (a recording stand-in replaces
the broker's send_task: this is a unit test of the two functions)."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from alliance.core.models import utcnow
from alliance.extensions import db
from alliance.outbox import services
from alliance.outbox.models import OutboxMessage


@pytest.fixture(autouse=True)
def handle(app):
    """register(kind, run, **hooks): a handler for one test, on the app as create_app
    registers the real ones; gone after the test. "test.record" is always there."""
    registry = app.extensions["outbox_handlers"]
    added = []

    def register(kind, run, **hooks):
        registry[kind] = services.Handler(run, **hooks)
        added.append(kind)

    register("test.record", lambda message: None)
    yield register
    for kind in added:
        registry.pop(kind, None)


@pytest.fixture
def ran(handle):
    calls = []
    handle("test.record", lambda message: calls.append(message.payload["n"]))
    return calls


def test_a_message_runs_once_however_often_it_is_dispatched(ran):
    message = services.enqueue("test.record", n=1)
    db.session.commit()
    assert services.run_message(message.id) == "done"
    assert services.run_message(message.id) == "skipped"
    assert ran == [1]


def test_a_message_claimed_by_a_live_worker_is_not_run_by_another(ran):
    message = services.enqueue("test.record", n=2)
    message.claimed_until = utcnow() + timedelta(minutes=5)
    db.session.commit()
    assert services.run_message(message.id) == "skipped"
    assert ran == []


def test_an_expired_claim_of_a_dead_worker_is_taken_over(ran):
    message = services.enqueue("test.record", n=3)
    message.claimed_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert services.run_message(message.id) == "done"
    assert ran == [3]


def test_a_handler_error_releases_the_claim_for_a_retry(handle):
    def boom(message):
        raise RuntimeError("bug")

    handle("test.boom", boom)
    message = services.enqueue("test.boom")
    db.session.commit()
    with pytest.raises(services.TemporaryFailure):
        services.run_message(message.id)
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.claimed_until is None and row.done_at is None and "bug" in row.last_error


def test_enqueueing_a_kind_no_handler_is_registered_for_fails_at_once():
    """A typo, or a slice whose HANDLERS create_app does not register: refused in the
    caller's transaction, naming the kind, instead of failing later in a worker."""
    with pytest.raises(services.UnknownKind, match="'test.nobody-handles-this'"):
        services.enqueue("test.nobody-handles-this")
    db.session.rollback()
    assert db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "test.nobody-handles-this")).all() == []


def test_a_stored_message_of_a_kind_no_longer_registered_fails_permanently():
    """A row written by an older release whose kind this one no longer handles."""
    message = OutboxMessage(kind="test.nobody-handles-this", payload={})
    db.session.add(message)
    db.session.commit()
    assert services.run_message(message.id) == "failed"
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).failed_at is not None


def test_giving_up_and_its_hook_are_one_transaction(handle):
    """A give-up hook marks what the message was for (a ledger row) failed: when that write
    fails, the message is not left failed either (before, it was, and the ledger row stayed
    pending for ever: nothing would run the message again)."""
    def hook(payload, error):
        raise RuntimeError("database is locked")

    handle("test.hooked", lambda message: None, on_give_up=hook)
    message = services.enqueue("test.hooked")
    db.session.commit()
    with pytest.raises(RuntimeError):
        services.give_up(message.id, "SMTP 550")
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).failed_at is None

def test_relay_publishes_unpublished_and_stale_rows_and_stops_when_the_broker_fails(
        app, monkeypatch):
    sent = []
    celery = app.extensions["celery"]
    monkeypatch.setattr(celery, "send_task", lambda name, args, **kw: sent.append(args[0]))
    fresh_row = services.enqueue("test.record", n=1)
    stale = services.enqueue("test.record", n=2)
    stale.published_at = utcnow() - timedelta(hours=1)
    recent = services.enqueue("test.record", n=3)
    recent.published_at = utcnow()
    done = services.enqueue("test.record", n=4)
    done.done_at = utcnow()
    db.session.commit()
    assert services.relay_pending() == 2
    assert sorted(sent) == sorted([fresh_row.id, stale.id])

    def refuse(name, args, **kw):
        raise ConnectionError("broker down")

    later = services.enqueue("test.record", n=5)
    db.session.commit()
    monkeypatch.setattr(celery, "send_task", refuse)
    assert services.relay_pending() == 0
    db.session.expire_all()
    row = db.session.get(OutboxMessage, later.id)
    assert row.published_at is None and row.publish_attempts == 1
    assert "broker down" in row.last_error


# --- what a handler enqueues ---------------------------------------------------------------

@pytest.fixture
def sent(app, monkeypatch):
    ids = []
    monkeypatch.setattr(app.extensions["celery"], "send_task",
                        lambda name, args, **kw: ids.append(args[0]))
    return ids


def test_what_a_handler_enqueues_is_published_once_the_handler_has_committed(sent, handle):
    handle("test.fan_out", lambda message: services.enqueue("test.record", n=9))
    message = services.enqueue("test.fan_out")
    db.session.commit()

    assert services.run_message(message.id) == "done"
    db.session.expire_all()
    [child] = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "test.record")).all()
    assert sent == [child.id]
    assert child.published_at is not None


def test_what_a_failing_handler_enqueued_is_neither_kept_nor_published(sent, handle):
    def fan_out_then_fail(message):
        services.enqueue("test.record", n=9)
        raise services.TemporaryFailure("SMTP 451")

    handle("test.fan_out", fan_out_then_fail)
    message = services.enqueue("test.fan_out")
    db.session.commit()
    with pytest.raises(services.TemporaryFailure):
        services.run_message(message.id)
    db.session.expire_all()
    assert sent == []
    assert db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "test.record")).all() == []


# --- the dispatch task's options ---------------------------------------------------------

def test_dispatch_is_acknowledged_late_and_ends_before_its_claim_expires(app):
    """A run that outlives its claim's lease can be claimed and run again by another worker
    (a mail sent twice); the time limits end it first. The soft limit lands inside the
    handler, which releases the claim for a retry."""
    from alliance.outbox.tasks import dispatch

    lease = services.claim_lease().total_seconds()
    assert lease == app.config["OUTBOX_CLAIM_SECONDS"] == 600  # the production default
    assert dispatch.acks_late and dispatch.reject_on_worker_lost
    assert 0 < dispatch.soft_time_limit < dispatch.time_limit < lease
    task = app.extensions["celery"].tasks[services.DISPATCH_TASK]
    assert 0 < task.soft_time_limit < task.time_limit < lease


def test_a_soft_time_limit_inside_a_handler_releases_the_claim_for_a_retry(handle):
    from celery.exceptions import SoftTimeLimitExceeded

    def stuck(message):
        raise SoftTimeLimitExceeded()

    handle("test.stuck", stuck)
    message = services.enqueue("test.stuck")
    db.session.commit()
    with pytest.raises(services.TemporaryFailure):
        services.run_message(message.id)
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message.id)
    assert row.claimed_until is None and row.done_at is None and row.failed_at is None


def test_worker_settings_are_what_effectively_once_delivery_needs(app):
    """DESIGN.md: acks_late, reject on worker loss, prefetch 1; and config.py's invariant:
    task time limit < claim lease < Redis visibility timeout, all following the config."""
    from alliance import create_app

    base = {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": "redis://127.0.0.1:9/0", "RATELIMIT_STORAGE_URI": "memory://"}
    try:
        for overrides, limits, visibility in (
                ({}, (300, 450), 7200),  # the production defaults
                ({"OUTBOX_CLAIM_SECONDS": 20, "CELERY_VISIBILITY_TIMEOUT": 30,
                  "OUTBOX_RETRY_MAX_SECONDS": 2}, (10, 15), 30)):
            made = create_app({**base, **overrides})
            celery = made.extensions["celery"]
            conf, task = celery.conf, celery.tasks[services.DISPATCH_TASK]
            assert conf.task_acks_late and conf.task_reject_on_worker_lost
            assert conf.worker_prefetch_multiplier == 1
            assert task.acks_late and task.reject_on_worker_lost
            assert (task.soft_time_limit, task.time_limit) == limits
            assert conf.broker_transport_options["visibility_timeout"] == visibility
            assert task.time_limit < made.config["OUTBOX_CLAIM_SECONDS"] < visibility
        for bad in ({"OUTBOX_CLAIM_SECONDS": 60, "CELERY_VISIBILITY_TIMEOUT": 60},
                    {"OUTBOX_RETRY_MAX_SECONDS": 9000}):
            with pytest.raises(RuntimeError, match="CELERY_VISIBILITY_TIMEOUT"):
                create_app({**base, **bad})
    finally:
        app.extensions["celery"].set_default()


def test_retries_back_off_exponentially_with_a_floor(app):
    """Equal jitter: each delay is between half and all of min(cap, base * 2**n), so the
    default attempts cannot all be spent inside a short outage."""
    from alliance.outbox.services import max_attempts, retry_delay

    base, cap = app.config["OUTBOX_RETRY_BASE_SECONDS"], app.config["OUTBOX_RETRY_MAX_SECONDS"]
    for attempt in range(12):
        step = min(cap, base * 2 ** attempt)
        delays = [retry_delay(attempt) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
    floor = sum(min(cap, base * 2 ** n) / 2 for n in range(max_attempts() - 1))
    assert floor >= 600, f"the retries may all be spent within {floor:.0f} s"


def _other_messages(kind):
    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)).all()


def test_a_handlers_work_is_stored_with_the_done_mark(handle):
    """The handler writes without committing; run_message's unit stores it with done_at."""
    handle("test.writes", lambda message: db.session.add(
        OutboxMessage(kind="test.record", payload={"n": 7})))
    message = services.enqueue("test.writes")
    db.session.commit()
    assert services.run_message(message.id) == "done"
    assert [m.payload for m in _other_messages("test.record")] == [{"n": 7}]
    assert db.session.get(OutboxMessage, message.id).done_at is not None


@pytest.mark.parametrize("failure, permanent", [(services.PermanentFailure, True),
                                                (services.TemporaryFailure, False)])
def test_a_failed_run_rolls_back_the_handlers_work_and_stores_its_failure_record(
        handle, failure, permanent):
    """on_failure records the failure (a ledger row marked failed, say) in the unit of the
    outbox row's failure mark; what the handler wrote before failing is not stored."""
    recorded = []

    def run(message):
        db.session.add(OutboxMessage(kind="test.record", payload={"n": "half"}))
        db.session.flush()
        raise failure("SMTP said no")

    def on_failure(payload, error, is_permanent):
        recorded.append((payload, error, is_permanent))
        db.session.add(OutboxMessage(kind="test.record", payload={"n": "failure noted"}))

    handle("test.failing", run, on_failure=on_failure)
    message = services.enqueue("test.failing", k=1)
    db.session.commit()
    if permanent:
        assert services.run_message(message.id) == "failed"
    else:
        with pytest.raises(services.TemporaryFailure):
            services.run_message(message.id)
    assert recorded == [({"k": 1}, "SMTP said no", permanent)]
    assert [m.payload for m in _other_messages("test.record")] == [{"n": "failure noted"}]
    row = db.session.get(OutboxMessage, message.id)
    assert row.last_error == "SMTP said no" and row.claimed_until is None and row.done_at is None
    assert (row.failed_at is not None) is permanent
