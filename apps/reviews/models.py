"""Reviews and assignments on revisions; comments and flags on variants."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.conditional import etag_for

from .choices import FLAG_TRANSITIONS, FlagAction, FlagKind, FlagStatus, ReviewDecision


class Review(models.Model):
    """One decision of one reviewer on one revision. The newest standing decision of each reviewer counts."""

    revision = models.ForeignKey("registry.Revision", on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews_given")
    decision = models.CharField(max_length=16, choices=ReviewDecision.choices)
    body = models.TextField(blank=True, default="")
    body_html = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["revision", "reviewer", "id"])]

    def __str__(self) -> str:
        return f"{self.decision} by {self.reviewer_id} on revision {self.revision_id}"


class ReviewAssignment(models.Model):
    revision = models.ForeignKey("registry.Revision", on_delete=models.CASCADE, related_name="review_assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_assignments")
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    auto = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["revision", "reviewer"], name="review_assignment_unique")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} reviews revision {self.revision_id}"


class Comment(models.Model):
    """Discussion on a variant, threaded one level deep (a reply's parent is always a top-level comment)."""

    variant = models.ForeignKey("registry.Variant", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comments")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    body = models.TextField()
    body_html = models.TextField(blank=True, default="", editable=False)
    is_hidden = models.BooleanField(default=False, db_index=True)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hidden_reason = models.CharField(max_length=500, blank=True, default="")
    hidden_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["variant", "parent", "id"])]

    def __str__(self) -> str:
        return f"comment {self.pk} by {self.author_id} on variant {self.variant_id}"

    @property
    def etag(self) -> str:
        """Changes with every edit, hide and unhide."""
        return etag_for(f"comment:{self.pk}:{self.edited_at}:{self.is_hidden}:{self.hidden_at}")


class Flag(models.Model):
    """A report against a published variant, with evidence; moderators resolve it, the author may answer."""

    variant = models.ForeignKey("registry.Variant", on_delete=models.CASCADE, related_name="flags")
    revision = models.ForeignKey(
        "registry.Revision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flags",
        help_text="The revision that was public when flagged.",
    )
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="flags_raised")
    kind = models.CharField(max_length=32, choices=FlagKind.choices, db_index=True)
    description = models.TextField(blank=True, default="")
    description_html = models.TextField(blank=True, default="", editable=False)
    evidence_url = models.URLField(max_length=1000, blank=True, default="")
    evidence_excerpt = models.TextField(
        blank=True, default="", help_text="E.g. benchmark samples that appear in the training data."
    )
    benchmark = models.ForeignKey(
        "benchmarks.Benchmark",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flags",
        help_text="For contamination: the affected benchmark.",
    )
    status = models.CharField(max_length=16, choices=FlagStatus.choices, default=FlagStatus.OPEN, db_index=True)
    resolution = models.CharField(max_length=16, choices=FlagAction.choices, blank=True, default="")
    resolution_reason = models.TextField(blank=True, default="")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    author_response = models.TextField(blank=True, default="")
    author_responded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "id"])]

    def __str__(self) -> str:
        return f"flag {self.pk} ({self.kind}, {self.status}) on variant {self.variant_id}"

    def allowed_transitions(self) -> tuple[str, ...]:
        return FLAG_TRANSITIONS.get(self.status, ())

    def can_transition_to(self, target: str) -> bool:
        return target in self.allowed_transitions()
