"""Representations (SPEC §3: field names integrations rely on) and the shapes of incoming writes.

Input serializers only check types; the services own the rules and never get a serializer to save."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.registry.cards import card_metadata
from apps.registry.choices import ArtifactFormat, Precision, Relation
from apps.registry.licenses import license_lookup
from apps.registry.models import Artifact, Revision, Variant
from apps.registry.selectors import parent_visible
from apps.registry.weights import combine


class WeightsHeaderSerializer(serializers.Serializer):
    """What weights headers say (apps.registry.weights); every member is absent for a file without one."""

    tensors = serializers.IntegerField(required=False)
    parameters = serializers.IntegerField(required=False)
    dtypes = serializers.DictField(
        child=serializers.IntegerField(), required=False, help_text='Parameters per dtype, e.g. {"BF16": 8030261248}.'
    )
    precision = serializers.CharField(
        required=False, allow_null=True, help_text="fp32 fp16 bf16 fp8 int8 int4 or mixed; null when no class fits."
    )
    files = serializers.IntegerField(required=False, help_text="Weight files counted (revision totals).")


class ArtifactSerializer(serializers.ModelSerializer):
    safe = serializers.BooleanField(read_only=True)
    stored = serializers.SerializerMethodField(help_text="True when the file is in platform storage.")
    header = WeightsHeaderSerializer(
        read_only=True, help_text="Read from a stored safetensors or GGUF file's header; empty for other files."
    )

    class Meta:
        model = Artifact
        fields = ["id", "path", "format", "sha256", "size_bytes", "uri", "safe", "stored", "header", "created_at"]
        read_only_fields = fields

    def get_stored(self, obj: Artifact) -> bool:
        return bool(obj.file)


class RevisionSerializer(serializers.ModelSerializer):
    artifacts = ArtifactSerializer(many=True, read_only=True)
    allowed_transitions = serializers.SerializerMethodField()
    weights = serializers.SerializerMethodField(
        help_text="The weight files' headers summed: what the revision holds, whatever the variant declares."
    )

    class Meta:
        model = Revision
        fields = [
            "number",
            "status",
            "artifacts",
            "weights",
            "created_at",
            "submitted_at",
            "status_changed_at",
            "status_reason",
            "notes",
            "allowed_transitions",
        ]
        read_only_fields = fields

    def get_allowed_transitions(self, obj: Revision) -> list[str]:
        return list(obj.allowed_transitions())

    @extend_schema_field(WeightsHeaderSerializer(allow_null=True))
    def get_weights(self, obj: Revision) -> dict[str, Any] | None:
        return combine([a.header for a in obj.artifacts.all()])


class VariantSerializer(serializers.ModelSerializer):
    """List representation. Needs `with_list_relations()` (owner, current revision and parents loaded)."""

    full_name = serializers.CharField(read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    parents = serializers.SerializerMethodField()
    current_revision = serializers.SerializerMethodField()
    # A plain string in the schema: empty means "not declared", which an enum of precisions cannot say.
    precision = serializers.CharField(read_only=True, help_text="fp32 fp16 bf16 fp8 int8 int4 mixed, or empty.")

    class Meta:
        model = Variant
        fields = [
            "full_name",
            "owner",
            "name",
            "relation",
            "parents",
            "license",
            "parameters",
            "precision",
            "task",
            "architecture",
            "tags",
            "summary",
            "status",
            "current_revision",
            "created_at",
            "updated_at",
            "hub_id",
            "is_public",
            "downloads",
        ]
        read_only_fields = fields

    def _user(self) -> Any:
        request = self.context.get("request")
        return getattr(request, "user", None)

    def get_parents(self, obj: Variant) -> list[str]:
        user = self._user()
        return [link.parent.full_name for link in obj.parent_links.all() if parent_visible(user, link.parent)]

    def get_current_revision(self, obj: Variant) -> int | None:
        return obj.current_revision.number if obj.current_revision else None


class VariantDetailSerializer(VariantSerializer):
    card_data = serializers.SerializerMethodField(help_text="Hub model-card front matter (YAML keys).")
    license_info = serializers.SerializerMethodField()

    class Meta(VariantSerializer.Meta):
        fields = [*VariantSerializer.Meta.fields, "card", "card_data", "license_info", "license_compat"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_card_data(self, obj: Variant) -> dict[str, Any]:
        return card_metadata(obj)

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
    def get_license_info(self, obj: Variant) -> dict[str, Any] | None:
        lic = license_lookup(obj.license)
        return lic.as_dict() if lic else None


class _VariantFields(serializers.Serializer):
    relation = serializers.ChoiceField(choices=Relation.choices, required=False)
    parents = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=32,
        help_text="Full names owner/name (or Hub ids a variant records).",
    )
    license = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="SPDX or Hugging Face Hub licence id, any case."
    )
    parameters = serializers.IntegerField(min_value=1, max_value=10**14, required=False, allow_null=True)
    precision = serializers.ChoiceField(choices=[("", "unset"), *Precision.choices], required=False, allow_blank=True)
    architecture = serializers.CharField(max_length=100, required=False, allow_blank=True)
    task = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="Hub pipeline tag.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=50)
    summary = serializers.CharField(max_length=500, required=False, allow_blank=True)
    card = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Markdown body; Hub YAML front matter in it is read as card_data.",
    )
    card_data = serializers.DictField(
        required=False, allow_null=True, help_text="Hub card metadata (license, base_model, datasets, ...)."
    )
    hub_id = serializers.CharField(max_length=200, required=False, allow_blank=True)


class VariantCreateSerializer(_VariantFields):
    name = serializers.CharField(max_length=96)
    owner = serializers.CharField(
        max_length=150, required=False, help_text="Maintainers only: 'commons' to register an original there."
    )


class VariantUpdateSerializer(_VariantFields):
    """PATCH body. `owner`, `status`, `current_revision` and the other read-only fields are not accepted:
    they are ignored if sent."""

    name = serializers.CharField(max_length=96, required=False, help_text="Cannot change; only echoed.")


class CardImportSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=96, required=False)
    card = serializers.CharField(trim_whitespace=False, help_text="The README.md text, with YAML front matter.")
    owner = serializers.CharField(max_length=150, required=False)


class RevisionCreateSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    copy_artifacts = serializers.BooleanField(required=False, default=True)


class ArtifactRecordSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=500)
    uri = serializers.CharField(max_length=1000)
    sha256 = serializers.CharField(max_length=64, min_length=64)
    size_bytes = serializers.IntegerField(min_value=0)
    format = serializers.ChoiceField(choices=ArtifactFormat.choices, required=False)


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    path = serializers.CharField(max_length=500, required=False)
    format = serializers.ChoiceField(choices=ArtifactFormat.choices, required=False)
    sha256 = serializers.CharField(max_length=64, required=False, allow_blank=True)


class TransitionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class LineageNodeSerializer(serializers.Serializer):
    full_name = serializers.CharField()
    relation = serializers.CharField()
    depth = serializers.IntegerField()
    parents = serializers.ListField(child=serializers.CharField())
    license = serializers.CharField()
    status = serializers.CharField()
    parameters = serializers.IntegerField(allow_null=True)
    precision = serializers.CharField()


class LineageEdgeSerializer(serializers.Serializer):
    child = serializers.CharField()
    parent = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.parent
    relation = serializers.CharField()


class LineageSerializer(serializers.Serializer):
    variant = serializers.CharField()
    relation = serializers.CharField()
    parents = serializers.ListField(child=serializers.CharField())
    ancestors = LineageNodeSerializer(many=True)
    descendants = LineageNodeSerializer(many=True)
    edges = LineageEdgeSerializer(many=True)
