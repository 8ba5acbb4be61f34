from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from apps.accounts.roles import is_maintainer
from apps.registry.models import Revision
from apps.reviews.choices import FlagAction, FlagKind, ReviewDecision
from apps.reviews.models import Comment, Flag, Review


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    revision = serializers.IntegerField(source="revision.number", read_only=True)
    stale = serializers.SerializerMethodField(help_text="On a revision that is no longer the current one.")
    superseded = serializers.BooleanField(
        read_only=True, default=False, help_text="The same reviewer decided again later."
    )

    class Meta:
        model = Review
        fields = ["id", "reviewer", "decision", "body", "body_html", "stale", "superseded", "revision", "created_at"]
        read_only_fields = fields

    def get_stale(self, obj: Review) -> bool:
        return obj.revision.variant.current_revision_id != obj.revision_id


class ReviewCreateSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=ReviewDecision.choices)
    body = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)


class AssignSerializer(serializers.Serializer):
    reviewer = serializers.CharField(
        required=False, max_length=150, help_text="Maintainers only: assign someone else. Default: yourself."
    )


class GateSerializer(serializers.Serializer):
    met = serializers.BooleanField()
    unmet = serializers.ListField(child=serializers.CharField())
    approvals = serializers.ListField(child=serializers.CharField())
    objections = serializers.ListField(child=serializers.CharField())
    required_approvals = serializers.IntegerField()


class QueueEntrySerializer(serializers.ModelSerializer):
    variant = serializers.CharField(source="variant.full_name", read_only=True)
    revision = serializers.IntegerField(source="number", read_only=True)
    author = serializers.SerializerMethodField()
    assignees = serializers.SerializerMethodField()
    approvals = serializers.IntegerField(read_only=True)
    objections = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = [
            "variant",
            "revision",
            "status",
            "author",
            "submitted_at",
            "assignees",
            "approvals",
            "objections",
            "url",
        ]
        read_only_fields = fields

    def get_author(self, obj: Revision) -> str:
        return obj.created_by.username if obj.created_by else obj.variant.owner.username

    def get_assignees(self, obj: Revision) -> list[str]:
        return [a.reviewer.username for a in obj.review_assignments.all()]

    def get_url(self, obj: Revision) -> str:
        return f"/api/v1/variants/{obj.variant.full_name}/revisions/{obj.number}/"


class ReplySerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)
    hidden = serializers.BooleanField(source="is_hidden", read_only=True)
    body = serializers.SerializerMethodField()
    body_html = serializers.SerializerMethodField()
    hidden_reason = serializers.SerializerMethodField()
    editable_until = serializers.SerializerMethodField()

    class Meta:
        model = Comment
        fields = [
            "id",
            "author",
            "parent",
            "body",
            "body_html",
            "hidden",
            "hidden_reason",
            "created_at",
            "edited_at",
            "editable_until",
        ]
        read_only_fields = fields

    def _show(self, obj: Comment) -> bool:
        request = self.context.get("request")
        return not obj.is_hidden or (request is not None and is_maintainer(request.user))

    def get_body(self, obj: Comment) -> str:
        return obj.body if self._show(obj) else ""

    def get_body_html(self, obj: Comment) -> str:
        return obj.body_html if self._show(obj) else ""

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_hidden_reason(self, obj: Comment) -> str | None:
        return obj.hidden_reason if obj.is_hidden else None

    @extend_schema_field(serializers.DateTimeField())
    def get_editable_until(self, obj: Comment) -> Any:
        from datetime import timedelta

        from django.conf import settings

        return obj.created_at + timedelta(seconds=settings.MC_COMMENT_EDIT_WINDOW_S)


class CommentSerializer(ReplySerializer):
    replies = ReplySerializer(many=True, read_only=True)

    class Meta(ReplySerializer.Meta):
        fields = [*ReplySerializer.Meta.fields, "replies"]
        read_only_fields = fields


class CommentCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=20_000)
    parent = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,  # type: ignore[assignment]
        help_text="Id of a top-level comment to reply to.",
    )


class CommentEditSerializer(serializers.Serializer):
    """The PATCH body of a comment edit: the new body is required (the view validates it whole, not partially)."""

    patch_validated_whole = True  # the OpenAPI schema keeps `body` required for PATCH (apps.core.schema)
    body = serializers.CharField(max_length=20_000)


@extend_schema_serializer(component_name="VariantFlag")  # "Flag" is the leaderboard row's flag summary
class FlagSerializer(serializers.ModelSerializer):
    variant = serializers.CharField(source="variant.full_name", read_only=True)
    revision = serializers.SerializerMethodField()
    reporter = serializers.SerializerMethodField(help_text="Shown to moderators and to the reporter.")
    benchmark = serializers.SerializerMethodField()
    resolved_by = serializers.SerializerMethodField()

    class Meta:
        model = Flag
        fields = [
            "id",
            "variant",
            "revision",
            "kind",
            "description",
            "description_html",
            "evidence_url",
            "evidence_excerpt",
            "benchmark",
            "status",
            "resolution",
            "resolution_reason",
            "resolved_by",
            "resolved_at",
            "author_response",
            "author_responded_at",
            "reporter",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_revision(self, obj: Flag) -> int | None:
        return obj.revision.number if obj.revision else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reporter(self, obj: Flag) -> str | None:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is not None and (is_maintainer(user) or user.pk == obj.reporter_id):
            return obj.reporter.username
        return None  # the author answers the evidence, not the person

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_benchmark(self, obj: Flag) -> str | None:
        return obj.benchmark.slug if obj.benchmark else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_resolved_by(self, obj: Flag) -> str | None:
        return obj.resolved_by.username if obj.resolved_by else None


class FlagCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=FlagKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    evidence_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=1000)
    evidence_excerpt = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
    benchmark = serializers.SlugField(
        required=False, max_length=64, help_text="Contamination flags: the affected benchmark's slug."
    )


class FlagResolveSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=FlagAction.choices)
    reason = serializers.CharField(max_length=20_000)


class FlagRespondSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=20_000)
