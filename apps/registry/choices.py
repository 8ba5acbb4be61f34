"""Registry vocabularies and the revision state machine."""

from django.db import models


class Relation(models.TextChoices):
    ORIGINAL = "original", "Original"
    FINETUNE = "finetune", "Fine-tune"
    ADAPTER = "adapter", "Adapter"
    QUANTIZED = "quantized", "Quantized"
    MERGE = "merge", "Merge"
    DISTILLED = "distilled", "Distilled"
    PRUNED = "pruned", "Pruned"


class Precision(models.TextChoices):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    MIXED = "mixed"


class RevisionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"
    UNPUBLISHED = "unpublished", "Unpublished"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


S = RevisionStatus
# The one table of legal moves; services ask Revision.can_transition_to() before writing.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.DRAFT: (S.SUBMITTED, S.WITHDRAWN),
    S.SUBMITTED: (S.CHANGES_REQUESTED, S.APPROVED, S.REJECTED, S.WITHDRAWN),
    S.CHANGES_REQUESTED: (S.SUBMITTED, S.WITHDRAWN, S.REJECTED),
    S.APPROVED: (S.PUBLISHED, S.CHANGES_REQUESTED, S.REJECTED),
    S.PUBLISHED: (S.UNPUBLISHED,),
    S.UNPUBLISHED: (S.PUBLISHED,),
    S.REJECTED: (),
    S.WITHDRAWN: (),
}

# Visible to everyone; every other state only to the owner, reviewers and maintainers.
PUBLIC_STATUSES = (S.PUBLISHED,)


class ArtifactFormat(models.TextChoices):
    SAFETENSORS = "safetensors"
    ONNX = "onnx"
    GGUF = "gguf"
    PICKLE = "pickle"
    BIN = "bin"
    PT = "pt"
    PTH = "pth"
    PKL = "pkl"
    CKPT = "ckpt"
    JSON = "json"
    TEXT = "txt"
    OTHER = "other"


SAFE_FORMATS = frozenset({"safetensors", "onnx", "gguf"})
UNSAFE_FORMATS = frozenset({"pickle", "bin", "pt", "pth", "pkl", "ckpt"})
