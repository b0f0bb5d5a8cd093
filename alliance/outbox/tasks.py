"""Celery tasks of the outbox. They take ids, load inside the task and call the service."""
from celery import shared_task

from alliance.outbox import services

# A run must end before its claim's lease does: past the lease another worker may claim the
# same message and run it too (a mail sent twice). The soft limit raises inside the handler,
# which releases the claim and retries; the hard limit, a little later, ends a handler stuck
# where the soft one cannot reach (the worker process is replaced; reject_on_worker_lost puts
# the task back, and the unexpired claim keeps it from running until the lease ends).
SOFT_TIME_LIMIT = services.CLAIM_LEASE.total_seconds() / 2
TIME_LIMIT = services.CLAIM_LEASE.total_seconds() * 3 / 4


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None,
             soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT,
             name=services.DISPATCH_TASK)
def dispatch(self, message_id: int) -> str:
    try:
        return services.run_message(message_id)
    except services.TemporaryFailure as exc:
        if self.request.retries + 1 >= services.max_attempts():
            services.give_up(message_id, str(exc))
            return "failed"
        raise self.retry(exc=exc, countdown=services.retry_delay(self.request.retries))


@shared_task(name="alliance.outbox.relay")
def relay_outbox() -> int:
    return services.relay_pending()
