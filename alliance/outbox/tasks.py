"""Celery tasks of the outbox. They take ids, load inside the task and call the service."""
from celery import shared_task

from alliance.outbox import services
from config import Config

# A run must end before its claim's lease does (services.time_limits). These defaults follow
# OUTBOX_CLAIM_SECONDS as the process environment sets it; the application factory also sets
# them from the app's own config (task_annotations, alliance._celery_settings), which is what
# a worker process started with `celery -A workers.celery_app` uses.
SOFT_TIME_LIMIT, TIME_LIMIT = services.time_limits(Config.OUTBOX_CLAIM_SECONDS)


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
