"""In-app notifications, per-kind preferences, webhook subscriptions and their delivery log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.conditional import etag_for

from .choices import DeliveryStatus, NotificationKind, WebhookScope


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices, db_index=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    url = models.CharField(max_length=500, blank=True, default="", help_text="API path of the subject.")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "read_at", "id"])]

    def __str__(self) -> str:
        return f"{self.kind} → {self.user_id}: {self.title}"


class NotificationPreference(models.Model):
    """A missing row means 'on' for both channels: users only store what they turned off (or back on)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_pref_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.kind} in_app={self.in_app} email={self.email}"


class WebhookSubscription(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=1000)
    events = models.JSONField(default=list)
    secret = models.CharField(max_length=100, help_text="whsec_<base64 key>, Standard Webhooks format.")
    description = models.CharField(max_length=200, blank=True, default="")
    scope = models.CharField(max_length=8, choices=WebhookScope.choices, default=WebhookScope.OWN)
    is_active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"

    @property
    def etag(self) -> str:
        return etag_for(f"webhook:{self.pk}:{self.updated_at.isoformat() if self.updated_at else ''}")

    def wants(self, event: str) -> bool:
        from .choices import ALL_EVENTS, WebhookEvent

        if event == WebhookEvent.PING:
            return True
        return event in self.events or ALL_EVENTS in self.events


class WebhookDelivery(models.Model):
    """One event sent to one subscription. Retries reuse the same message id, so receivers can de-duplicate;
    a redelivery on request is a new row with the same message id."""

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=64, db_index=True)
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=6)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    redelivery_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="redeliveries"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"delivery {self.pk} {self.event} ({self.status})"


class WebhookAttempt(models.Model):
    """The delivery log: one row per HTTP attempt."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    response_excerpt = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.status_code or self.error[:40]}"


class JobAnnouncement(models.Model):
    """Marks a job's finish as announced: the engine's hooks may run more than once for a job (and again when
    its result's verification changes), but its submitter hears of each finish once."""

    job_id = models.BigIntegerField()
    finished_at = models.DateTimeField()
    status = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "finished_at"], name="job_announcement_unique")]

    def __str__(self) -> str:
        return f"job {self.job_id} {self.status} announced"
