"""The transactional outbox: "do this after commit" rows written with the change that causes
them, relayed to Celery, and run at most once each by a claim on the row.

Why: a web request must never wait on Redis. enqueue() only writes a row; after the request
commits, publish_pending() tries the broker once with a short timeout, and the beat task
relay_outbox() keeps trying until the broker takes each row. Running is guarded by an atomic
claim (UPDATE ... WHERE done_at IS NULL AND lease expired), so a duplicated or redelivered
task does nothing the second time."""
import logging
import random
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, has_request_context
from sqlalchemy import or_, select, update

from alliance.core.models import utcnow
from alliance.core.unit import unit_of_work
from alliance.extensions import db
from alliance.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

DISPATCH_TASK = "alliance.outbox.dispatch"


class TemporaryFailure(Exception):
    """Try again later (broker, SMTP 4xx, timeouts)."""


class PermanentFailure(Exception):
    """Will never work (SMTP 5xx, the subject of the message is gone)."""


def claim_lease() -> timedelta:
    """How long a running message holds its row (OUTBOX_CLAIM_SECONDS, config.py)."""
    return timedelta(seconds=current_app.config["OUTBOX_CLAIM_SECONDS"])


def republish_after() -> timedelta:
    """When the relay publishes an unfinished, unclaimed message again (config.py)."""
    return timedelta(seconds=current_app.config["OUTBOX_REPUBLISH_SECONDS"])


def time_limits(claim_seconds: float) -> tuple[float, float]:
    """(soft, hard) time limit of the dispatch task for a claim lease: a run must end before
    its lease does, or another worker may claim the message and run it too (a mail sent
    twice). The soft limit raises inside the handler, which releases the claim and retries;
    the hard one, a little later, ends a handler stuck where the soft one cannot reach (the
    worker process is replaced; reject_on_worker_lost puts the task back, and the unexpired
    claim keeps it from running until the lease ends)."""
    return claim_seconds / 2, claim_seconds * 3 / 4


@dataclass(frozen=True)
class Handler:
    """What runs outbox messages of one kind: run(message); if given, on_give_up(payload,
    error) for when a message of this kind will not be retried, on_claim(message), which
    writes what must be committed before the handler runs (a ledger mark, say) in the
    claim's transaction instead of one of its own, and on_failure(payload, error, permanent),
    which records a failed run (TemporaryFailure, or PermanentFailure: permanent) in the
    transaction of the outbox row's failure mark, the handler's own work being rolled back."""
    run: Callable
    on_give_up: Callable | None = None
    on_claim: Callable | None = None
    on_failure: Callable | None = None


def register_handlers(app, *mappings: Mapping[str, Handler]) -> None:
    """Register the slices' handlers (each slice's HANDLERS: kind -> Handler) on the app.
    The application factory does, in one place (alliance.configure_outbox); nothing is
    registered by importing a module. Two slices claiming one kind is a mistake: it fails at
    start, not at the first message."""
    registry = app.extensions.setdefault("outbox_handlers", {})
    for mapping in mappings:
        for kind, spec in mapping.items():
            if not isinstance(spec, Handler):
                raise TypeError(f"outbox kind {kind!r}: register a Handler, not {spec!r}")
            if registry.get(kind, spec) is not spec:
                raise RuntimeError(f"outbox kind {kind!r} is registered twice")
            registry[kind] = spec


def registered_handlers() -> dict[str, Handler]:
    """kind -> Handler, as the current app registered them."""
    return current_app.extensions.setdefault("outbox_handlers", {})


class UnknownKind(LookupError):
    """A message of a kind no handler is registered for: it could never run."""


# Ids of the messages a running handler enqueues (a handler that queues a mail, say): run_message
# publishes them once the handler's transaction has committed, as publish_after_request does
# for a web request, instead of leaving them to the next relay.
_enqueued_by_handler: ContextVar[list | None] = ContextVar("outbox_enqueued_by_handler",
                                                           default=None)


def enqueue(kind: str, **payload) -> OutboxMessage:
    """Add a message to the current transaction. It is relayed once the transaction commits.
    Raises UnknownKind, in the caller's transaction, for a kind the app registered no
    handler for (a typo, or a slice left out of create_app): it would only fail later, in
    a worker."""
    if kind not in registered_handlers():
        raise UnknownKind(f"no handler is registered for outbox kind {kind!r}: add it to "
                          "its slice's HANDLERS, registered in alliance.configure_outbox")
    message = OutboxMessage(kind=kind, payload=payload)
    db.session.add(message)
    db.session.flush()
    collected = _enqueued_by_handler.get()
    if collected is not None:
        collected.append(message.id)
    elif has_request_context():
        g.setdefault("outbox_ids", []).append(message.id)
    return message


def _publish(message_ids: list[int], batch: int = 100) -> int:
    """Hand the messages to the broker, marking them published a batch at a time (one UPDATE
    per batch, not per message). Stops at the first broker error (the broker is down; the
    relay will come back). A crash between sending and marking only means a message is
    published again later, which the claim makes harmless. Returns how many were published."""
    celery = current_app.extensions["celery"]
    published = 0
    for start in range(0, len(message_ids), batch):
        sent, failure = [], None
        for message_id in message_ids[start:start + batch]:
            try:
                # One try, no reconnect loop: with retry=False kombu still reconnects (and
                # the request waits); max_retries=0 fails at once and leaves the row to the
                # relay.
                celery.send_task(DISPATCH_TASK, args=[message_id], retry=True,
                                 retry_policy={"max_retries": 0})
            except Exception as exc:  # the broker's errors vary by transport: all mean "later"
                log.warning("outbox: broker refused message %s: %s", message_id, exc)
                failure = (message_id, exc)
                break
            sent.append(message_id)
        _mark_published(sent, failure)
        published += len(sent)
        if failure is not None:
            break
    return published


@unit_of_work()
def _mark_published(sent: list[int], failure: tuple[int, Exception] | None) -> None:
    if sent:
        db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(sent)).values(
                published_at=utcnow(), publish_attempts=OutboxMessage.publish_attempts + 1))
    if failure is not None:
        db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == failure[0]).values(
                publish_attempts=OutboxMessage.publish_attempts + 1,
                last_error=f"publish: {failure[1]}"[:2000]))


def publish_after_request() -> None:
    """Called after a request: publish what it enqueued, if the request committed it."""
    ids = g.pop("outbox_ids", None)
    if not ids:
        return
    db.session.rollback()  # never publish (or commit) what the request left uncommitted
    committed = db.session.scalars(
        select(OutboxMessage.id).where(OutboxMessage.id.in_(ids),
                                       OutboxMessage.published_at.is_(None))).all()
    if committed:
        _publish(sorted(committed))


def relay_pending(limit: int = 500) -> int:
    """Publish every message the broker has not taken yet, and republish ones that were taken
    long ago but never ran (a lost broker message); the claim makes republishing safe."""
    now = utcnow()
    ids = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.done_at.is_(None), OutboxMessage.failed_at.is_(None),
            OutboxMessage.available_at <= now,
            or_(OutboxMessage.published_at.is_(None),
                (OutboxMessage.published_at < now - republish_after())
                & or_(OutboxMessage.claimed_until.is_(None),
                      OutboxMessage.claimed_until < now)))
        .order_by(OutboxMessage.id).limit(limit)).all()
    db.session.rollback()
    return _publish(list(ids))


@dataclass(frozen=True)
class ClaimedMessage:
    """What a handler gets of its outbox row: read by the claim itself (UPDATE ... RETURNING),
    not by a query of its own after it."""
    id: int
    kind: str
    payload: dict


def run_message(message_id: int) -> str:
    """Run one message's handler unless it already ran or another worker holds it: the
    task's boundary. Two units of work: the claim (with the handler's on_claim mark), then
    the handler's work with the done mark. A failure rolls the handler's work back and
    stores the failure mark with the handler's on_failure record instead.
    Returns "done", "skipped" or "failed"; raises TemporaryFailure to ask for a retry."""
    with unit_of_work():
        now = utcnow()
        claimed = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.done_at.is_(None),
                   OutboxMessage.failed_at.is_(None),
                   or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .values(claimed_until=now + claim_lease(),
                    run_attempts=OutboxMessage.run_attempts + 1)
            .returning(OutboxMessage.kind, OutboxMessage.payload)
        ).first()
        if claimed is None:
            return "skipped"
        message = ClaimedMessage(message_id, claimed.kind, claimed.payload)
        spec = registered_handlers().get(message.kind)
        if spec is not None and spec.on_claim is not None:
            spec.on_claim(message)  # an error rolls back the claim and the mark together
    enqueued: list[int] = []
    collecting = _enqueued_by_handler.set(enqueued)
    try:
        with unit_of_work():  # the handler's work and the done mark: one commit, atomic
            if spec is None:  # a kind this app no longer registers (a row of an older release)
                raise PermanentFailure(f"no handler for outbox kind {message.kind!r}")
            spec.run(message)
            _finish(message_id, done_at=utcnow(), claimed_until=None, last_error=None)
    except TemporaryFailure as exc:
        _failed(spec, message, str(exc), permanent=False, claimed_until=None)
        raise
    except PermanentFailure as exc:
        _failed(spec, message, str(exc), permanent=True, failed_at=utcnow(),
                claimed_until=None)
        return "failed"
    except Exception as exc:
        # A bug in a handler: release the claim so a retry (or the relay) can run it again.
        _finish(message_id, claimed_until=None, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        raise TemporaryFailure(str(exc)) from exc
    finally:
        _enqueued_by_handler.reset(collecting)
    if enqueued:
        try:
            _publish(sorted(enqueued))
        except Exception:  # the relay will pick them up; the handler's work is done
            log.exception("outbox: publishing what message %s enqueued failed", message_id)
    return "done"


@unit_of_work()
def _finish(message_id: int, **values) -> None:
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values))


@unit_of_work()
def _failed(spec: "Handler | None", message: ClaimedMessage, error: str, *, permanent: bool,
            **values) -> None:
    """A failed run's mark, with what the handler records of it (on_failure): one unit."""
    _finish(message.id, last_error=error[:2000], **values)
    if spec is not None and spec.on_failure is not None:
        spec.on_failure(message.payload, error, permanent)


def retry_delay(attempt: int) -> float:
    """Exponential backoff with "equal" jitter: half of min(max, base * 2**attempt) plus a
    random part up to the other half (OUTBOX_RETRY_BASE_SECONDS 5, OUTBOX_RETRY_MAX_SECONDS
    600 by default). The fixed half gives the retries a floor: the default 10 attempts span at
    least ten minutes, so an SMTP relay down for a few minutes never loses a mail (full jitter
    could spend them all within a minute)."""
    base = current_app.config["OUTBOX_RETRY_BASE_SECONDS"]
    cap = current_app.config["OUTBOX_RETRY_MAX_SECONDS"]
    step = min(cap, base * (2 ** attempt))
    return step / 2 + random.uniform(0, step / 2)


def max_attempts() -> int:
    return current_app.config["OUTBOX_MAX_ATTEMPTS"]


@unit_of_work()
def give_up(message_id: int, error: str) -> None:
    """Stop retrying a message: it stays visible with its last error. Its give-up hook (a
    delivery marked failed) is stored in the same transaction: a message never ends failed
    while what it was for still looks pending."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
        failed_at=utcnow(), claimed_until=None, last_error=error[:2000]))
    message = db.session.get(OutboxMessage, message_id)
    spec = registered_handlers().get(message.kind) if message is not None else None
    if message is not None and spec is not None and spec.on_give_up is not None:
        spec.on_give_up(message.payload, error)
