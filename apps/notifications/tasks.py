"""Celery tasks for webhooks: thin interfaces that take ids and call services.

They are registered by NotificationsConfig.ready(), so every worker that loads Django has them."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from .services import webhook_delivery_attempt
from .services import webhooks_recover as webhooks_recover_service


# Routed to the `webhooks` queue (CELERY_TASK_ROUTES), which only the webhooks worker consumes. The transport ends
# every attempt at MC_WEBHOOK_TIMEOUT_S; the hard time limit is a last resort should anything else hang (the pool
# process is replaced, and webhooks_recover sends the claimed delivery again once it is overdue).
@shared_task(
    bind=True,
    name="notifications.deliver_webhook",
    acks_late=True,
    max_retries=None,
    ignore_result=True,
    time_limit=settings.MC_WEBHOOK_TIMEOUT_S + 30,
)
def deliver_webhook(self: Any, delivery_id: int) -> str:
    """One HTTP attempt of a delivery; on failure Celery retries it with exponential backoff until the
    delivery's max_attempts is reached (the database row, not Celery, counts the attempts). A retry goes back
    to the queue the attempt came from."""
    outcome = webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="notifications.webhooks_recover", ignore_result=True)
def webhooks_recover() -> int:
    """Celery beat: re-dispatch overdue deliveries whose messages were lost."""
    return webhooks_recover_service()
