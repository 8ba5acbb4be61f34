"""Checklist templates (versioned), their instances per submitted revision, and MOF components per revision."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from .choices import (
    IN_PROGRESS,
    LEVEL_REACHED_CHOICES,
    AnswerSource,
    Evidence,
    ItemStatus,
    Kind,
    Level,
    MofClass,
    MofComponent,
)

ITEM_KEY_RE = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ChecklistTemplate(models.Model):
    """One version of a template. A version that instances use is never edited: a change makes the next one."""

    slug = models.SlugField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    is_default = models.BooleanField(
        default=False, db_index=True, help_text="New revisions get the latest version of the default template."
    )
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug", "-version"]
        constraints = [models.UniqueConstraint(fields=["slug", "version"], name="checklist_template_version_unique")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class TemplateItem(models.Model):
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField(default=0)
    key = models.CharField(max_length=64, validators=[RegexValidator(ITEM_KEY_RE)])
    title = models.CharField(max_length=200)
    guidance = models.TextField(blank=True, default="")
    required = models.BooleanField(default=True, help_text="Required to reach the item's level.")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.PASSING)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MANUAL)
    detective = models.CharField(
        max_length=64, blank=True, default="", help_text="For automatic items: the detective that answers it."
    )
    needs_evidence = models.CharField(max_length=16, choices=Evidence.choices, default=Evidence.NONE)
    na_allowed = models.BooleanField(default=False)
    reviewer_verifies = models.BooleanField(default=False)

    class Meta:
        ordering = ["template_id", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["template", "key"], name="template_item_key_unique")]

    def __str__(self) -> str:
        return self.key


class Checklist(models.Model):
    """The instance of a template for one submitted revision."""

    revision = models.OneToOneField("registry.Revision", on_delete=models.CASCADE, related_name="checklist")
    template = models.ForeignKey(ChecklistTemplate, on_delete=models.PROTECT, related_name="instances")
    # Denormalised from the items after every write, so lists and filters need no recomputation.
    level = models.CharField(max_length=16, choices=LEVEL_REACHED_CHOICES, default=IN_PROGRESS, db_index=True)
    progress = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checklist of revision {self.revision_id}"


class ChecklistItem(models.Model):
    """One answer. `justification` holds only the human's words; a detective's words live in `explanation`."""

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="items")
    item = models.ForeignKey(TemplateItem, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=ItemStatus.choices, default=ItemStatus.UNKNOWN)
    justification = models.TextField(blank=True, default="")
    evidence_url = models.URLField(max_length=1000, blank=True, default="")
    source = models.CharField(max_length=8, choices=AnswerSource.choices, blank=True, default=AnswerSource.NONE)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The detective's confidence, 1..5, at its last run."
    )
    explanation = models.TextField(blank=True, default="", help_text="The detective's explanation at its last run.")
    detective_status = models.CharField(max_length=8, choices=ItemStatus.choices, blank=True, default="")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["checklist_id", "item__position", "id"]
        constraints = [models.UniqueConstraint(fields=["checklist", "item"], name="checklist_item_unique")]

    def __str__(self) -> str:
        return f"{self.item.key}: {self.status}"


class RevisionComponent(models.Model):
    """A released MOF component of a revision: where it is and under which licence."""

    revision = models.ForeignKey("registry.Revision", on_delete=models.CASCADE, related_name="components")
    component = models.CharField(max_length=32, choices=MofComponent.choices)
    location = models.CharField(max_length=1000, help_text="A URL or a path in the revision's artifacts.")
    license = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Licence id (SPDX or Hub); empty means 'licence not specified'.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["revision_id", "component"]
        constraints = [models.UniqueConstraint(fields=["revision", "component"], name="revision_component_unique")]

    def __str__(self) -> str:
        return f"{self.component} ({self.license or 'no licence'})"


class RevisionOpenness(models.Model):
    """The computed MOF class of a revision, stored so leaderboards and variant lists can filter on it."""

    revision = models.OneToOneField(
        "registry.Revision", on_delete=models.CASCADE, primary_key=True, related_name="openness"
    )
    mof_class = models.CharField(max_length=4, choices=MofClass.choices, blank=True, default="")
    rank = models.PositiveSmallIntegerField(
        default=0, db_index=True, help_text="0 unclassified, 1 Class III, 2 Class II, 3 Class I."
    )
    conditional = models.BooleanField(default=False)
    report = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "revision openness"

    def __str__(self) -> str:
        return f"revision {self.revision_id}: {self.mof_class or 'unclassified'}"
