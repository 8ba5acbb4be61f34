from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.notifications.choices import ALL_EVENTS, WebhookEvent, WebhookScope
from apps.notifications.models import Notification, WebhookAttempt, WebhookDelivery, WebhookSubscription


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: DRF's BooleanField also takes 0, 1, "yes" and "off", which the schema does not say."""

    def to_internal_value(self, data: object) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # unreachable: fail() raises


class NotificationSerializer(serializers.ModelSerializer):
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "data", "read", "read_at", "created_at"]
        read_only_fields = fields

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
        help_text="Default: every unread notification.",
    )


class MarkedSerializer(serializers.Serializer):
    marked = serializers.IntegerField()


class ChannelsSerializer(serializers.Serializer):
    in_app = serializers.BooleanField()
    email = serializers.BooleanField()


class PreferencesSerializer(serializers.Serializer):
    review_requested = ChannelsSerializer()
    review_decided = ChannelsSerializer()
    job_finished = ChannelsSerializer()
    flag_resolved = ChannelsSerializer()
    variant_published = ChannelsSerializer()


class PartialChannelsSerializer(serializers.Serializer):
    in_app = StrictBooleanField(required=False)
    email = StrictBooleanField(required=False)


class PreferencesUpdateSerializer(serializers.Serializer):
    refuses_unknown_fields = True  # validate() below; the OpenAPI schema says additionalProperties: false
    review_requested = PartialChannelsSerializer(required=False)
    review_decided = PartialChannelsSerializer(required=False)
    job_finished = PartialChannelsSerializer(required=False)
    flag_resolved = PartialChannelsSerializer(required=False)
    variant_published = PartialChannelsSerializer(required=False)

    def validate(self, attrs: dict) -> dict:  # type: ignore[type-arg]
        unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
        if unknown:
            raise serializers.ValidationError({k: ["Unknown notification kind."] for k in sorted(unknown)})
        return attrs


EVENT_CHOICES = [ALL_EVENTS, *[e for e in WebhookEvent.values if e != WebhookEvent.PING]]


class WebhookSerializer(serializers.ModelSerializer):
    secret_hint = serializers.SerializerMethodField(
        help_text="The secret's last characters; it is shown in full only at creation and on rotation."
    )

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "scope", "description", "is_active", "secret_hint", "created_at", "updated_at"]
        read_only_fields = fields

    def get_secret_hint(self, obj: WebhookSubscription) -> str:
        return "whsec_…" + obj.secret[-4:]


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: keep it to verify signatures.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


# The scheme part of the URL check (notifications.transport.resolve_target), so the schema documents it.
HTTP_URL = RegexValidator(r"^[Hh][Tt][Tt][Pp][Ss]?://", "Only http and https URLs are allowed.")


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=1000, validators=[HTTP_URL])
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1, max_length=20)
    scope = serializers.ChoiceField(choices=WebhookScope.choices, default=WebhookScope.OWN)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    is_active = StrictBooleanField(default=True)


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=1000, required=False, validators=[HTTP_URL])
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1, max_length=20, required=False
    )
    scope = serializers.ChoiceField(choices=WebhookScope.choices, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = StrictBooleanField(required=False)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    redelivery_of: serializers.Field = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "message_id",
            "event",
            "status",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "redelivery_of",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_payload(self, obj: WebhookDelivery) -> dict:  # type: ignore[type-arg]
        return obj.payload
