"""Model variants, their lineage, revisions and artifacts."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from apps.core.conditional import etag_for
from workers.runners.formats import is_safe

from .choices import TRANSITIONS, Precision, Relation, RevisionStatus
from .querysets import RevisionQuerySet, VariantQuerySet

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
HUB_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"


class Variant(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="variants")
    name = models.CharField(max_length=96, validators=[RegexValidator(NAME_RE)])
    relation = models.CharField(max_length=16, choices=Relation.choices)
    parents = models.ManyToManyField(
        "self", symmetrical=False, through="VariantParent", related_name="children", blank=True
    )
    license = models.CharField(max_length=64, blank=True, default="")
    license_compat = models.JSONField(default=dict, blank=True)
    parameters = models.BigIntegerField(null=True, blank=True)
    precision = models.CharField(max_length=8, choices=Precision.choices, blank=True, default="")
    architecture = models.CharField(max_length=100, blank=True, default="")
    task = models.CharField(max_length=64, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    summary = models.CharField(max_length=500, blank=True, default="")
    card = models.TextField(blank=True, default="")
    card_data = models.JSONField(
        default=dict,
        blank=True,
        help_text="Hub card metadata other than the fields above (datasets, language, "
        "library_name, self-reported model-index, ...).",
    )
    hub_id = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_index=True,
        validators=[RegexValidator(HUB_ID_RE)],
        help_text="The Hugging Face Hub repo this entry describes, e.g. meta-llama/Llama-3.1-8B.",
    )
    current_revision = models.ForeignKey("Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Denormalised from the current revision so lists and visibility filters need no join.
    status = models.CharField(
        max_length=20, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT, db_index=True
    )
    is_public = models.BooleanField(default=False, db_index=True)
    # The last published revision: what everyone but the variant's insiders sees (its `metadata` snapshot, files,
    # jobs and results). Written with `is_public` by the registry's revision_transition (publish, unpublish).
    published_revision = models.ForeignKey(
        "Revision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Downloads of its files, written in bulk by apps.transfers.downloads (never one write per download); an
    # update() that leaves `updated_at`, and so the variant's ETag, alone.
    downloads = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VariantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint("owner", Lower("name"), name="variant_owner_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def etag(self) -> str:
        """Changes whenever the row is written: every service saves `updated_at`."""
        stamp = f"variant:{self.pk}:{self.updated_at.isoformat() if self.updated_at else ''}"
        return etag_for(stamp)


class VariantParent(models.Model):
    child = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="parent_links")
    parent = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="child_links")
    # Keeps the order the parents were declared in (a card's base_model list round-trips unchanged).
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["child", "parent"], name="variant_parent_unique")]

    def __str__(self) -> str:
        return f"{self.child} ← {self.parent}"


class Revision(models.Model):
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.TextField(blank=True, default="")
    # What the variant said when this revision was submitted (metadata and card): reviewers judge this.
    metadata = models.JSONField(default=dict, blank=True)

    objects = RevisionQuerySet.as_manager()

    class Meta:
        ordering = ["variant_id", "number"]
        constraints = [models.UniqueConstraint(fields=["variant", "number"], name="revision_number_unique")]

    def __str__(self) -> str:
        return f"{self.variant_id}@{self.number}"

    def allowed_transitions(self) -> tuple[str, ...]:
        return TRANSITIONS.get(self.status, ())

    def can_transition_to(self, target: str) -> bool:
        return target in self.allowed_transitions()

    @property
    def is_mutable(self) -> bool:
        return self.status == RevisionStatus.DRAFT


def artifact_upload_to(instance: Artifact, filename: str) -> str:
    """The names of files stored before content addressing; uploads now name their blob (apps.registry.blobs)."""
    return f"artifacts/{instance.revision.variant_id}/{instance.revision.number}/{instance.sha256[:16]}/{filename}"


class Artifact(models.Model):
    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=500)
    uri = models.CharField(max_length=1000, blank=True, default="")
    file = models.FileField(upload_to=artifact_upload_to, max_length=500, blank=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    format = models.CharField(max_length=16)
    # Read from a stored safetensors or GGUF file's header (never its tensors): tensors, parameters, dtypes
    # {dtype: parameters} and precision (apps.registry.weights). Empty for other files and URI records.
    header = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["revision_id", "path"]
        constraints = [models.UniqueConstraint(fields=["revision", "path"], name="artifact_path_unique")]
        # Workers fetch stored bytes by their sha256 (apps.transfers.selectors.stored_blob).
        indexes = [models.Index(fields=["sha256"], name="artifact_sha256_idx")]

    def __str__(self) -> str:
        return self.path

    @property
    def safe(self) -> bool:
        return is_safe(self.path, self.format)

    def local_path(self) -> str | None:
        """A filesystem path a worker can open, for uploads on file storage and file:// URIs."""
        if self.file:
            try:
                return str(self.file.path)
            except NotImplementedError:
                return None
        if self.uri.startswith("file://"):
            return self.uri[len("file://") :]
        return None


class Collaborator(models.Model):
    """A user the owner lets write to one of their variants (SPEC §2, wave 2): edit its metadata and card, upload
    files, open and submit revisions. Managing it (transfer, delete, collaborators) stays with the owner."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["variant_id", "user__username"]
        constraints = [models.UniqueConstraint(fields=["variant", "user"], name="collaborator_variant_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} on {self.variant}"


class VariantRedirect(models.Model):
    """A full name a variant had before a transfer. It answers 308 to the variant's current name, for good, in the
    API, on the pages and on the Hub-compatible paths, unless a variant takes that name again."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="redirects")
    owner_name = models.CharField(max_length=150)
    name = models.CharField(max_length=96)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(Lower("owner_name"), Lower("name"), name="variant_redirect_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.owner_name}/{self.name} → {self.variant_id}"
