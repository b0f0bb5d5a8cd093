"""Celery task of the digests: the beat's scheduling cycle. Sending runs through the outbox
(alliance.digests.services handlers "digest", "watch-scan" and "alert")."""
from celery import shared_task

from alliance.digests import services


@shared_task(name="alliance.digests.find_due")
def find_due_digests() -> int:
    return len(services.schedule_due())
