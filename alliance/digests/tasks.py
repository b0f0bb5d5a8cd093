"""Celery task of the digests: the beat's scheduling cycle. Sending runs through the outbox
(alliance.digests.handlers: "digest", "watch-scan", "alert", "digest-test")."""
from celery import shared_task

from alliance.digests import scheduling


@shared_task(name="alliance.digests.find_due")
def find_due_digests() -> int:
    return len(scheduling.schedule_due())
