"""The Model Openness Framework class of a revision, computed from its released components and their licences.

After the MOF (White et al., LF AI & Data, 2024) and its Model Openness Tool:
- Class III (open model): architecture, final parameters, model card, data card, technical report and
  evaluation results, each under an open licence for its content type;
- Class II (open tooling): Class III plus training, inference and evaluation code and evaluation data;
- Class I (open science): Class II plus datasets, data preprocessing code, intermediate parameters and a
  research paper.
Code needs an OSI-approved licence, data an open data licence, documents an open content licence. Class III is
"conditional" when the final parameters are openly licensed but other Class III components are still missing,
as the Model Openness Tool shows it; every class not reached shows "in progress N%".

Other apps read `openness_class_for(revision)` (one revision, computed live), `openness_classes_for(ids)`
(many revisions, from the stored rows, one query) and filter with `openness_at_least(min_class)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q

from apps.registry.models import Revision
from workers.runners.formats import SAFE_FORMATS, UNSAFE_FORMATS

from .choices import (
    MOF_CLASS_ORDER,
    MOF_CLASS_RANK,
    MOF_COMPONENTS,
    ComponentSpec,
    ContentType,
    MofClass,
    MofClassStatus,
    MofComponent,
)
from .facts import RevisionFacts

WEIGHT_FORMATS = SAFE_FORMATS | UNSAFE_FORMATS
UNCLASSIFIED_LABEL = "Unclassified"


@lru_cache(maxsize=1)
def _open_licence_lists() -> dict[str, frozenset[str]]:
    path = Path(settings.FIXTURES_DIR) / "checklists" / "mof-licences.json"
    raw = json.loads(path.read_text())
    return {key: frozenset(v.lower() for v in raw.get(key, [])) for key in ("data", "document", "any")}


def licence_open_for(license_id: str, content_types: Iterable[str]) -> tuple[bool, str]:
    """Whether a licence is open for any of the content types, and why not when it is not."""
    from apps.registry.licenses import license_lookup

    types = tuple(content_types)
    if not license_id:
        return False, "licence not specified"
    licence = license_lookup(license_id)
    if licence is None:
        return False, f"'{license_id}' is not in the licence list"
    lists = _open_licence_lists()
    ids = {licence.id.lower(), license_id.strip().lower()}
    if ids & lists["any"]:
        return True, ""
    for content_type in types:
        if content_type == ContentType.CODE and licence.osi_approved:
            return True, ""
        if content_type == ContentType.DATA and ids & lists["data"]:
            return True, ""
        if content_type == ContentType.DOCUMENT and ids & lists["document"]:
            return True, ""
    wanted: dict[str, str] = {
        ContentType.CODE: "an OSI-approved licence",
        ContentType.DATA: "an open data licence",
        ContentType.DOCUMENT: "an open content licence",
    }
    return False, f"{licence.id} is not open for this component (it needs {' or '.join(wanted[t] for t in types)})"


@dataclass(frozen=True)
class ComponentState:
    spec: ComponentSpec
    location: str | None
    license: str | None
    derived: bool
    is_open: bool
    problem: str

    @property
    def released(self) -> bool:
        return self.location is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.spec.key,
            "label": MofComponent(self.spec.key).label,
            "mof_class": self.spec.mof_class,
            "content_types": list(self.spec.content_types),
            "required": self.spec.required,
            "location": self.location,
            "license": self.license,
            "derived": self.derived,
            "open": self.is_open,
            "problem": self.problem,
        }


def _derived_parameters(facts: RevisionFacts) -> tuple[str, str] | None:
    """Weights uploaded as artifacts are the final parameters, under the variant's own licence."""
    weights = [a.path for a in facts.artifacts if a.format in WEIGHT_FORMATS]
    if not weights:
        return None
    shown = ", ".join(weights[:3]) + (f" (+{len(weights) - 3} more)" if len(weights) > 3 else "")
    return f"artifacts: {shown}", facts.license_id


def component_states(facts: RevisionFacts) -> list[ComponentState]:
    declared = {c.component: c for c in facts.components}
    states = []
    for spec in MOF_COMPONENTS:
        row = declared.get(spec.key)
        derived = False
        if row is not None:
            location, licence = row.location, row.license
        elif spec.key == MofComponent.MODEL_PARAMETERS and (found := _derived_parameters(facts)):
            (location, licence), derived = found, True
        else:
            states.append(ComponentState(spec, None, None, False, False, "not released"))
            continue
        is_open, problem = licence_open_for(licence, spec.content_types)
        states.append(ComponentState(spec, location, licence, derived, is_open, problem))
    return states


def openness_report(states: list[ComponentState]) -> dict[str, Any]:
    """Classify like the Model Openness Tool: each class needs its own components and those of the classes
    below it; the first class fully met is the class."""
    by_key = {s.spec.key: s for s in states}
    paper = by_key.get(MofComponent.RESEARCH_PAPER)
    classes: list[dict[str, Any]] = []
    qualified: dict[str, bool] = {}
    params = by_key.get(MofComponent.MODEL_PARAMETERS)
    conditional_possible = bool(params and params.is_open)
    for index, mof_class in enumerate(MOF_CLASS_ORDER):
        wanted = [s for s in states if s.spec.required and s.spec.mof_class in MOF_CLASS_ORDER[: index + 1]]
        missing, invalid, included = [], [], []
        for state in wanted:
            if state.spec.key == MofComponent.TECHNICAL_REPORT and not state.is_open and paper and paper.is_open:
                included.append(state.spec.key)  # the MOF accepts a research paper in place of a report
            elif not state.released:
                missing.append(state.spec.key)
            elif not state.is_open:
                invalid.append(state.spec.key)
            else:
                included.append(state.spec.key)
        progress = int(100 * len(included) / len(wanted)) if wanted else 100
        qualified[mof_class] = not missing and not invalid
        if qualified[mof_class]:
            status = MofClassStatus.QUALIFIED
        elif mof_class == MofClass.CLASS_III and conditional_possible:
            status = MofClassStatus.CONDITIONAL
        elif invalid:
            status = MofClassStatus.NOT_MET
        else:
            status = MofClassStatus.IN_PROGRESS
        classes.append(
            {
                "mof_class": mof_class,
                "label": MofClass(mof_class).label,
                "status": status.value,
                "progress": progress,
                "missing": missing,
                "invalid": invalid,
            }
        )
    reached = next((c for c in reversed(MOF_CLASS_ORDER) if qualified[c]), None)
    conditional = False
    if reached is None and conditional_possible:
        reached, conditional = MofClass.CLASS_III, True
    label = MofClass(reached).label + (" (conditional)" if conditional else "") if reached else UNCLASSIFIED_LABEL
    return {
        "mof_class": reached,
        "label": label,
        "conditional": conditional,
        "rank": MOF_CLASS_RANK[reached] if reached else 0,
        "classes": classes,
        "components": [s.as_dict() for s in states],
    }


def openness_for_facts(facts: RevisionFacts) -> dict[str, Any]:
    return openness_report(component_states(facts))


def openness_class_for(revision: Revision) -> dict[str, Any]:
    """The openness class of one revision, computed now: {mof_class, label, conditional, rank, classes,
    components}.

    The caller decides visibility; this reads whatever revision it is given."""
    return openness_for_facts(RevisionFacts(revision))


def openness_classes_for(revision_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Stored classes of many revisions in one query, for lists: {revision_id: {mof_class, label, conditional}}.
    A revision whose class was never computed is missing from the result (treat it as unclassified)."""
    from .models import RevisionOpenness

    rows = RevisionOpenness.objects.filter(revision_id__in=list(revision_ids)).values(
        "revision_id", "mof_class", "conditional", "report"
    )
    return {
        row["revision_id"]: {
            "mof_class": row["mof_class"] or None,
            "label": (row["report"] or {}).get("label", UNCLASSIFIED_LABEL),
            "conditional": row["conditional"],
        }
        for row in rows
    }


def openness_at_least(min_class: str, revision_field: str = "") -> Q:
    """A filter for querysets: revisions (or rows whose `revision_field` points at one, e.g.
    "current_revision" on variants, "job__revision" on results) whose class is `min_class` or more open."""
    prefix = f"{revision_field}__" if revision_field else ""
    return Q(**{f"{prefix}openness__rank__gte": MOF_CLASS_RANK[MofClass(min_class)]})
