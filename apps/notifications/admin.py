"""Notifications and webhooks in the moderation console (read-only; the delivery log shows every attempt)."""

from __future__ import annotations

from django.contrib import admin

from apps.accounts.console import MaintainerConsoleMixin, ReadOnlyInline

from .models import Notification, NotificationPreference, WebhookAttempt, WebhookDelivery, WebhookSubscription


@admin.register(Notification)
class NotificationAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "user", "kind", "title", "created_at", "read_at"]
    list_filter = ["kind", ("read_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["user__username", "title", "body"]
    list_select_related = ["user"]


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["user", "kind", "in_app", "email"]
    list_filter = ["kind", "in_app", "email"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


class DeliveryInline(ReadOnlyInline):
    model = WebhookDelivery
    fields = ["message_id", "event", "status", "attempts", "last_status_code", "created_at", "delivered_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
    ordering = ["-id"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["id", "owner", "url", "events", "scope", "is_active", "created_at"]
    list_filter = ["is_active", "scope", "created_at"]
    search_fields = ["owner__username", "url", "description"]
    list_select_related = ["owner"]
    exclude = ["secret"]
    inlines = [DeliveryInline]


class AttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs widen `fields`
    show_change_link = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "subscription",
        "event",
        "message_id",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "created_at"]
    search_fields = ["message_id", "subscription__url", "subscription__owner__username", "last_error"]
    list_select_related = ["subscription"]
    inlines = [AttemptInline]


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(MaintainerConsoleMixin, admin.ModelAdmin):
    list_display = ["delivery", "number", "started_at", "duration_ms", "status_code", "error"]
    list_filter = ["status_code", "started_at"]
    search_fields = ["delivery__message_id", "error"]
    list_select_related = ["delivery"]
