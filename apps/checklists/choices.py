"""Checklist vocabularies (after the OpenSSF Best Practices badge) and the Model Openness Framework's components."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class ItemStatus(models.TextChoices):
    MET = "met", "Met"
    UNMET = "unmet", "Unmet"
    NA = "n/a", "N/A"
    UNKNOWN = "unknown", "Unknown (?)"


class Level(models.TextChoices):
    PASSING = "passing", "Passing"
    SILVER = "silver", "Silver"
    GOLD = "gold", "Gold"


LEVEL_ORDER: tuple[str, ...] = (Level.PASSING, Level.SILVER, Level.GOLD)
# What `Checklist.level` says before the passing level is reached (the OpenSSF badge's wording).
IN_PROGRESS = "in_progress"
LEVEL_REACHED_CHOICES = [(IN_PROGRESS, "In progress"), *Level.choices]


class Kind(models.TextChoices):
    AUTO = "auto", "Automatic (a detective answers)"
    MANUAL = "manual", "Manual (the owner answers)"


class Evidence(models.TextChoices):
    URL = "url", "An evidence URL"
    JUSTIFICATION = "justification", "A written justification"
    NONE = "none", "Nothing"


class AnswerSource(models.TextChoices):
    NONE = "", "Not answered"
    AUTO = "auto", "Detective"
    HUMAN = "human", "Human"


# What the API shows as `source` (an unanswered item has none).
ANSWER_SOURCES = [(AnswerSource.AUTO.value, "Detective"), (AnswerSource.HUMAN.value, "Human")]

# Detectives rate themselves 1..5 as the OpenSSF badge's do; only a 5 may overwrite a human answer.
MAX_CONFIDENCE = 5


# --- Model Openness Framework (LF AI & Data, 2024) --------------------------------------------------------


class ContentType(models.TextChoices):
    CODE = "code", "Code (OSI-approved licence)"
    DATA = "data", "Data (open data licence)"
    DOCUMENT = "document", "Document (open content licence)"


class MofClass(models.TextChoices):
    CLASS_III = "III", "Class III - Open Model"
    CLASS_II = "II", "Class II - Open Tooling"
    CLASS_I = "I", "Class I - Open Science"


class MofClassStatus(models.TextChoices):
    """How far a revision is from a class, as the Model Openness Tool's badges say it."""

    QUALIFIED = "qualified"
    CONDITIONAL = "conditional"
    IN_PROGRESS = "in_progress"
    NOT_MET = "not_met"


# Class I is the most open; rank lets filters ask for "at least Class II".
MOF_CLASS_RANK: dict[str, int] = {MofClass.CLASS_III: 1, MofClass.CLASS_II: 2, MofClass.CLASS_I: 3}
MOF_CLASS_ORDER: tuple[str, ...] = (MofClass.CLASS_III, MofClass.CLASS_II, MofClass.CLASS_I)


class MofComponent(models.TextChoices):
    MODEL_ARCHITECTURE = "model-architecture", "Model architecture"
    MODEL_PARAMETERS = "model-parameters", "Model parameters (final)"
    EVALUATION_RESULTS = "evaluation-results", "Evaluation results"
    MODEL_CARD = "model-card", "Model card"
    DATA_CARD = "data-card", "Data card"
    TECHNICAL_REPORT = "technical-report", "Technical report"
    SAMPLE_OUTPUTS = "sample-outputs", "Sample model outputs"
    TRAINING_CODE = "training-code", "Training code"
    INFERENCE_CODE = "inference-code", "Inference code"
    EVALUATION_CODE = "evaluation-code", "Evaluation code"
    EVALUATION_DATA = "evaluation-data", "Evaluation data"
    SUPPORTING_LIBRARIES = "supporting-libraries", "Supporting libraries and tools"
    DATASETS = "datasets", "Datasets"
    DATA_PREPROCESSING_CODE = "data-preprocessing-code", "Data preprocessing code"
    INTERMEDIATE_PARAMETERS = "intermediate-parameters", "Model parameters (intermediate)"
    RESEARCH_PAPER = "research-paper", "Research paper"
    MODEL_METADATA = "model-metadata", "Model metadata (training configuration)"


@dataclass(frozen=True)
class ComponentSpec:
    key: str
    mof_class: str  # the lowest (least open) class that asks for it
    content_types: tuple[str, ...]  # a licence fit for any of these makes the component open
    required: bool  # False: optional in the MOF, shown but never counted


C, CT = MofComponent, ContentType
# The MOF's components with the class that first requires them and the content types whose licences fit,
# as the Model Openness Tool configures them (a technical report may be replaced by a research paper).
MOF_COMPONENTS: tuple[ComponentSpec, ...] = (
    ComponentSpec(C.MODEL_ARCHITECTURE, MofClass.CLASS_III, (CT.CODE,), True),
    ComponentSpec(C.MODEL_PARAMETERS, MofClass.CLASS_III, (CT.DATA, CT.CODE), True),
    ComponentSpec(C.EVALUATION_RESULTS, MofClass.CLASS_III, (CT.DOCUMENT, CT.CODE), True),
    ComponentSpec(C.MODEL_CARD, MofClass.CLASS_III, (CT.DOCUMENT, CT.CODE), True),
    ComponentSpec(C.DATA_CARD, MofClass.CLASS_III, (CT.DOCUMENT, CT.CODE), True),
    ComponentSpec(C.TECHNICAL_REPORT, MofClass.CLASS_III, (CT.DOCUMENT, CT.CODE), True),
    ComponentSpec(C.SAMPLE_OUTPUTS, MofClass.CLASS_III, (CT.DATA, CT.CODE, CT.DOCUMENT), False),
    ComponentSpec(C.TRAINING_CODE, MofClass.CLASS_II, (CT.CODE,), True),
    ComponentSpec(C.INFERENCE_CODE, MofClass.CLASS_II, (CT.CODE,), True),
    ComponentSpec(C.EVALUATION_CODE, MofClass.CLASS_II, (CT.CODE,), True),
    ComponentSpec(C.EVALUATION_DATA, MofClass.CLASS_II, (CT.DATA,), True),
    ComponentSpec(C.SUPPORTING_LIBRARIES, MofClass.CLASS_II, (CT.CODE,), False),
    ComponentSpec(C.DATASETS, MofClass.CLASS_I, (CT.DATA, CT.CODE, CT.DOCUMENT), True),
    ComponentSpec(C.DATA_PREPROCESSING_CODE, MofClass.CLASS_I, (CT.CODE,), True),
    ComponentSpec(C.INTERMEDIATE_PARAMETERS, MofClass.CLASS_I, (CT.DATA,), True),
    ComponentSpec(C.RESEARCH_PAPER, MofClass.CLASS_I, (CT.DOCUMENT,), True),
    ComponentSpec(C.MODEL_METADATA, MofClass.CLASS_I, (CT.DATA,), False),
)
MOF_COMPONENT_SPECS: dict[str, ComponentSpec] = {spec.key: spec for spec in MOF_COMPONENTS}
