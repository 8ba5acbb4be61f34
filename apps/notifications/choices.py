"""Notification kinds, webhook events and delivery states."""

from django.db import models


class NotificationKind(models.TextChoices):
    REVIEW_REQUESTED = "review_requested", "Review requested"
    REVIEW_DECIDED = "review_decided", "Review decided"
    JOB_FINISHED = "job_finished", "Benchmark job finished"
    FLAG_RESOLVED = "flag_resolved", "Flag resolved or needs your answer"
    VARIANT_PUBLISHED = "variant_published", "Variant published or unpublished"
    ORG_MEMBERSHIP = "org_membership", "Organization invitations and membership changes"


class WebhookEvent(models.TextChoices):
    VARIANT_SUBMITTED = "variant.submitted"
    REVIEW_DECIDED = "review.decided"
    JOB_FINISHED = "job.finished"
    VARIANT_PUBLISHED = "variant.published"
    VARIANT_UNPUBLISHED = "variant.unpublished"
    VARIANT_REJECTED = "variant.rejected"
    FLAG_RESOLVED = "flag.resolved"
    ORG_MEMBER_ADDED = "org.member_added"
    PING = "ping"


# A subscription may list "*" to receive every event except pings (which are sent on request only).
ALL_EVENTS = "*"


class WebhookScope(models.TextChoices):
    OWN = "own", "Events about my own variants and jobs"
    VISIBLE = "visible", "Events about everything I may see"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


OPEN_DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
