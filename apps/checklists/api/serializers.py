"""Checklist representations (SPEC §3 names: template, version, level, progress, items[...]) and request bodies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.checklists.choices import (
    ANSWER_SOURCES,
    LEVEL_REACHED_CHOICES,
    ContentType,
    Evidence,
    ItemStatus,
    Kind,
    Level,
    MofClass,
    MofClassStatus,
    MofComponent,
)
from apps.checklists.levels import item_satisfied
from apps.checklists.models import ChecklistItem, ChecklistTemplate, TemplateItem


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: 3 or true is a 400, not silently "3" or "True"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false and nothing else ("perhaps", 1 and "yes" are 400s)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


# --- Checklist -------------------------------------------------------------------------------------------


def composed_justification(row: ChecklistItem) -> str:
    """The person's words, then the detective's (OpenSSF appends the explanation to the justification)."""
    parts = [row.justification.strip()] if row.justification.strip() else []
    if row.explanation:
        parts.append(f"Automatic check (confidence {row.confidence}/5): {row.explanation}")
    return "\n\n".join(parts)


class ChecklistItemSerializer(serializers.Serializer):
    key = serializers.CharField(source="item.key")
    title = serializers.CharField(source="item.title")
    guidance = serializers.CharField(source="item.guidance")
    required = serializers.BooleanField(source="item.required")  # type: ignore[assignment]
    level = serializers.ChoiceField(source="item.level", choices=Level.choices)
    kind = serializers.ChoiceField(source="item.kind", choices=Kind.choices)
    detective = serializers.SerializerMethodField()
    needs_evidence = serializers.ChoiceField(source="item.needs_evidence", choices=Evidence.choices)
    na_allowed = serializers.BooleanField(source="item.na_allowed")
    reviewer_verifies = serializers.BooleanField(source="item.reviewer_verifies")
    status = serializers.ChoiceField(choices=ItemStatus.choices)
    justification = serializers.SerializerMethodField(
        help_text="The owner's justification followed by the detective's explanation."
    )
    human_justification = serializers.CharField(
        source="justification", help_text="The owner's words only (what a form edits)."
    )
    evidence_url = serializers.SerializerMethodField()
    source = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="Who gave the current status: auto, human or null."
    )
    answered_by = serializers.SerializerMethodField(help_text="Username, or null for the detective.")
    answered_at = serializers.DateTimeField(allow_null=True)
    confidence = serializers.IntegerField(allow_null=True, help_text="The detective's confidence, 1..5.")
    explanation = serializers.SerializerMethodField()
    evaluated_at = serializers.DateTimeField(allow_null=True)
    verified = serializers.SerializerMethodField()
    verified_by = serializers.SerializerMethodField()
    verified_at = serializers.DateTimeField(allow_null=True)
    satisfied = serializers.SerializerMethodField(
        help_text="Counts toward its level: met or valid N/A, and verified where required."
    )

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_detective(self, row: ChecklistItem) -> str | None:
        return row.item.detective or None

    def get_justification(self, row: ChecklistItem) -> str:
        return composed_justification(row)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_evidence_url(self, row: ChecklistItem) -> str | None:
        return row.evidence_url or None

    @extend_schema_field(serializers.ChoiceField(choices=ANSWER_SOURCES, allow_null=True))
    def get_source(self, row: ChecklistItem) -> str | None:
        return row.source or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_answered_by(self, row: ChecklistItem) -> str | None:
        return row.answered_by.username if row.answered_by_id and row.answered_by else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_explanation(self, row: ChecklistItem) -> str | None:
        return row.explanation or None

    def get_verified(self, row: ChecklistItem) -> bool:
        return row.verified_by_id is not None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_verified_by(self, row: ChecklistItem) -> str | None:
        return row.verified_by.username if row.verified_by_id and row.verified_by else None

    def get_satisfied(self, row: ChecklistItem) -> bool:
        return item_satisfied(row.item, row)


class ChecklistProgressSerializer(serializers.Serializer):
    passing = serializers.IntegerField(min_value=0, max_value=100)
    silver = serializers.IntegerField(min_value=0, max_value=100)
    gold = serializers.IntegerField(min_value=0, max_value=100)


class ChecklistGateSerializer(serializers.Serializer):
    holds = serializers.BooleanField(help_text="The checklist's part of the publication gate holds.")
    unmet = serializers.ListField(child=serializers.CharField())


class MofClassStatusSerializer(serializers.Serializer):
    mof_class = serializers.ChoiceField(choices=MofClass.choices)
    label = serializers.CharField()  # type: ignore[assignment]
    status = serializers.ChoiceField(choices=MofClassStatus.choices)
    progress = serializers.IntegerField(min_value=0, max_value=100)
    missing = serializers.ListField(child=serializers.CharField())
    invalid = serializers.ListField(child=serializers.CharField())


class ComponentStateSerializer(serializers.Serializer):
    component = serializers.ChoiceField(choices=MofComponent.choices)
    label = serializers.CharField()  # type: ignore[assignment]
    mof_class = serializers.ChoiceField(choices=MofClass.choices)
    content_types = serializers.ListField(child=serializers.ChoiceField(choices=ContentType.choices))
    required = serializers.BooleanField()  # type: ignore[assignment]
    location = serializers.CharField(allow_null=True)
    license = serializers.CharField(allow_null=True, allow_blank=True)
    derived = serializers.BooleanField(help_text="Inferred from the revision's artifacts and licence.")
    open = serializers.BooleanField(help_text="Released under an open licence for its content type.")
    problem = serializers.CharField(allow_blank=True)


class OpennessSerializer(serializers.Serializer):
    mof_class = serializers.ChoiceField(choices=MofClass.choices, allow_null=True)
    label = serializers.CharField()  # type: ignore[assignment]
    conditional = serializers.BooleanField()
    rank = serializers.IntegerField(min_value=0, max_value=3)
    classes = MofClassStatusSerializer(many=True)
    components = ComponentStateSerializer(many=True)


class ChecklistSerializer(serializers.Serializer):
    variant = serializers.CharField()
    revision = serializers.IntegerField()
    template = serializers.CharField()
    template_name = serializers.CharField()
    version = serializers.IntegerField()
    level = serializers.ChoiceField(choices=LEVEL_REACHED_CHOICES)
    progress = ChecklistProgressSerializer()
    gate = ChecklistGateSerializer()
    openness = OpennessSerializer()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    items = ChecklistItemSerializer(many=True)


class ChecklistAnswerSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ItemStatus.choices, required=False)
    justification = StrictCharField(required=False, allow_blank=True, max_length=10_000, trim_whitespace=False)
    evidence_url = StrictCharField(required=False, allow_blank=True, max_length=1000)
    verified = StrictBooleanField(required=False, help_text="Reviewers: verify (true) or withdraw (false).")


# --- Components ------------------------------------------------------------------------------------------


class ComponentInputSerializer(serializers.Serializer):
    location = StrictCharField(max_length=1000, help_text="A URL or an artifact path.")
    license = StrictCharField(
        max_length=64, allow_blank=True, required=False, help_text="SPDX or Hub licence id; empty for 'not specified'."
    )


class ComponentsSerializer(serializers.Serializer):
    variant = serializers.CharField()
    revision = serializers.IntegerField()
    openness = OpennessSerializer()


# --- Templates -------------------------------------------------------------------------------------------


class TemplateItemSerializer(serializers.ModelSerializer):
    detective = serializers.CharField(allow_blank=True, required=False, max_length=64)

    class Meta:
        model = TemplateItem
        fields = [
            "key",
            "title",
            "guidance",
            "required",
            "level",
            "kind",
            "detective",
            "needs_evidence",
            "na_allowed",
            "reviewer_verifies",
        ]
        extra_kwargs: dict[str, dict[str, object]] = {"key": {"validators": []}}


class TemplateSerializer(serializers.ModelSerializer):
    items = TemplateItemSerializer(many=True)
    in_use = serializers.SerializerMethodField()
    instances = serializers.SerializerMethodField()
    based_on = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = ChecklistTemplate
        fields = [
            "slug",
            "name",
            "version",
            "description",
            "is_default",
            "in_use",
            "instances",
            "based_on",
            "created_by",
            "created_at",
            "items",
        ]
        read_only_fields = fields

    def get_instances(self, obj: ChecklistTemplate) -> int:
        count = getattr(obj, "instance_count", None)
        return int(count) if count is not None else obj.instances.count()

    def get_in_use(self, obj: ChecklistTemplate) -> bool:
        return self.get_instances(obj) > 0

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_based_on(self, obj: ChecklistTemplate) -> int | None:
        return obj.based_on.version if obj.based_on_id and obj.based_on else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_created_by(self, obj: ChecklistTemplate) -> str | None:
        return obj.created_by.username if obj.created_by_id and obj.created_by else None


class TemplateItemInputSerializer(serializers.Serializer):
    key = StrictCharField(max_length=64)
    title = StrictCharField(max_length=200)
    guidance = StrictCharField(max_length=5000, allow_blank=True, required=False)
    required = StrictBooleanField(required=False)  # type: ignore[assignment]
    level = serializers.ChoiceField(choices=Level.choices, required=False)
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)
    detective = StrictCharField(max_length=64, allow_blank=True, required=False)
    needs_evidence = serializers.ChoiceField(choices=Evidence.choices, required=False)
    na_allowed = StrictBooleanField(required=False)
    reviewer_verifies = StrictBooleanField(required=False)


class TemplateCreateSerializer(serializers.Serializer):
    slug = StrictRegexField(r"^[-a-zA-Z0-9_]{1,64}$", max_length=64)
    name = StrictCharField(max_length=200)
    description = StrictCharField(max_length=10_000, allow_blank=True, required=False)
    is_default = StrictBooleanField(required=False)
    items = TemplateItemInputSerializer(many=True, allow_empty=False, max_length=200)  # type: ignore[call-arg]


class TemplateUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    description = StrictCharField(max_length=10_000, allow_blank=True, required=False)
    is_default = StrictBooleanField(required=False)
    items = TemplateItemInputSerializer(  # type: ignore[call-arg]
        many=True,
        allow_empty=False,
        max_length=200,
        required=False,
        help_text="The full list of items; replaces the current one.",
    )
