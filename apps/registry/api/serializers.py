from __future__ import annotations

from rest_framework import serializers

from apps.registry.models import Artifact, Revision, Variant


class ArtifactSerializer(serializers.ModelSerializer):
    safe = serializers.BooleanField(read_only=True)

    class Meta:
        model = Artifact
        fields = ["id", "path", "format", "sha256", "size_bytes", "uri", "safe", "created_at"]
        read_only_fields = fields


class RevisionSerializer(serializers.ModelSerializer):
    artifacts = ArtifactSerializer(many=True, read_only=True)

    class Meta:
        model = Revision
        fields = ["number", "status", "artifacts", "created_at", "submitted_at"]
        read_only_fields = fields


class VariantSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    parents = serializers.SerializerMethodField()
    current_revision = serializers.SerializerMethodField()

    class Meta:
        model = Variant
        fields = ["full_name", "owner", "name", "relation", "parents", "license", "parameters", "precision",
                  "task", "architecture", "tags", "summary", "status", "current_revision", "created_at",
                  "updated_at"]
        read_only_fields = fields

    def get_parents(self, obj: Variant) -> list[str]:
        return [link.parent.full_name for link in obj.parent_links.all()]

    def get_current_revision(self, obj: Variant) -> int | None:
        return obj.current_revision.number if obj.current_revision else None
