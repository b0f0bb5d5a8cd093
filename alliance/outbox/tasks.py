"""Celery tasks of the outbox. They take ids, load inside the task and call the service."""
from celery import shared_task

from alliance.outbox import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None,
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
