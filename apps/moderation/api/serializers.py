from rest_framework import serializers

from apps.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "seq",
            "created_at",
            "actor",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "before",
            "after",
            "request_id",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields
