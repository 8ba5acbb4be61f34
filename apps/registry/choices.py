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


# A new revision may be opened from these states of the current one: a draft is edited in place, and a
# submitted revision is under review (withdraw it first).
NEW_REVISION_FROM: tuple[str, ...] = (
    S.CHANGES_REQUESTED,
    S.APPROVED,
    S.PUBLISHED,
    S.UNPUBLISHED,
    S.REJECTED,
    S.WITHDRAWN,
)


class LicenseFamily(models.TextChoices):
    PERMISSIVE = "permissive"
    PUBLIC_DOMAIN = "public-domain"
    WEAK_COPYLEFT = "weak-copyleft"
    COPYLEFT = "copyleft"
    NON_COMMERCIAL = "non-commercial"
    NO_DERIVATIVES = "no-derivatives"
    RAIL = "rail"
    LLAMA = "llama"
    GEMMA = "gemma"
    OTHER = "other"
    UNKNOWN = "unknown"


class CompatStatus(models.TextChoices):
    COMPATIBLE = "compatible"
    REVIEW = "review", "Needs a human check"
    INCOMPATIBLE = "incompatible"
    UNDECLARED = "undeclared", "Licence not declared"


# Hugging Face Hub pipeline tags (the `task` of a variant and `pipeline_tag` of a card).
PIPELINE_TAGS: tuple[str, ...] = (
    "text-classification",
    "token-classification",
    "table-question-answering",
    "question-answering",
    "zero-shot-classification",
    "translation",
    "summarization",
    "feature-extraction",
    "text-generation",
    "text2text-generation",
    "fill-mask",
    "sentence-similarity",
    "text-ranking",
    "text-retrieval",
    "text-to-speech",
    "text-to-audio",
    "automatic-speech-recognition",
    "audio-to-audio",
    "audio-classification",
    "audio-text-to-text",
    "voice-activity-detection",
    "depth-estimation",
    "image-classification",
    "object-detection",
    "image-segmentation",
    "text-to-image",
    "image-to-text",
    "image-to-image",
    "image-to-video",
    "unconditional-image-generation",
    "video-classification",
    "reinforcement-learning",
    "robotics",
    "tabular-classification",
    "tabular-regression",
    "tabular-to-text",
    "table-to-text",
    "multiple-choice",
    "time-series-forecasting",
    "text-to-video",
    "image-text-to-text",
    "visual-question-answering",
    "document-question-answering",
    "zero-shot-image-classification",
    "graph-ml",
    "mask-generation",
    "zero-shot-object-detection",
    "text-to-3d",
    "image-to-3d",
    "image-feature-extraction",
    "video-text-to-text",
    "keypoint-detection",
    "visual-document-retrieval",
    "any-to-any",
    "video-to-video",
    "other",
)

# The Hub's base_model_relation values; the others of ours are exported as `finetune` plus our own key.
HUB_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
