"""Detectives: small functions that answer automatic checklist items from what the platform knows.

As on the OpenSSF Best Practices badge, each returns a status, a confidence from 1 to 5 and an explanation.
Only a finding with the maximum confidence (5) may overwrite a human answer (services apply that rule).

A detective declares the inputs it reads, so a change re-runs only the detectives it concerns:
`variant` (licence, lineage), `card`, `artifacts`, `jobs` (results, verifications), `components` (MOF).
An `authoritative` detective reads facts only the platform has (artifacts, jobs): nobody answers its item by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from workers.runners.base import SHA256_RE
from workers.runners.formats import is_safe, is_unsafe

from .choices import MAX_CONFIDENCE, ItemStatus
from .facts import RevisionFacts

S = ItemStatus
INPUT_VARIANT, INPUT_CARD, INPUT_ARTIFACTS, INPUT_JOBS, INPUT_COMPONENTS = (
    "variant",
    "card",
    "artifacts",
    "jobs",
    "components",
)
ALL_INPUTS = frozenset({INPUT_VARIANT, INPUT_CARD, INPUT_ARTIFACTS, INPUT_JOBS, INPUT_COMPONENTS})


@dataclass(frozen=True)
class Finding:
    status: str
    confidence: int
    explanation: str

    @property
    def certain(self) -> bool:
        # An "I don't know" is never certain enough to replace what a person said.
        return self.confidence >= MAX_CONFIDENCE and self.status != S.UNKNOWN


@dataclass(frozen=True)
class Detective:
    key: str
    title: str
    inputs: frozenset[str]
    authoritative: bool
    run: Callable[[RevisionFacts], Finding]


DETECTIVES: dict[str, Detective] = {}


def detective(
    key: str, *, title: str, inputs: set[str], authoritative: bool = False
) -> Callable[[Callable[[RevisionFacts], Finding]], Callable[[RevisionFacts], Finding]]:
    def register(fn: Callable[[RevisionFacts], Finding]) -> Callable[[RevisionFacts], Finding]:
        DETECTIVES[key] = Detective(key=key, title=title, inputs=frozenset(inputs), authoritative=authoritative, run=fn)
        return fn

    return register


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- Licence ---------------------------------------------------------------------------------------------


@detective("license-valid", title="The licence id is in the platform's licence list", inputs={INPUT_VARIANT})
def license_valid(facts: RevisionFacts) -> Finding:
    from apps.registry.licenses import license_lookup

    declared = facts.license_id
    if not declared:
        return Finding(S.UNMET, 5, "No licence is declared.")
    licence = license_lookup(declared)
    if licence is None:
        return Finding(S.UNMET, 5, f"'{declared}' is not an SPDX or Hugging Face Hub licence id known to the platform.")
    if licence.family == "unknown":
        return Finding(S.UNMET, 4, f"The licence is declared as '{licence.id}', which says nothing about its terms.")
    if licence.family == "other":
        return Finding(
            S.MET,
            3,
            f"'{licence.id}' ({licence.name}) is declared, but it is a custom licence the "
            "platform cannot judge; a reviewer should read its terms.",
        )
    note = " (a deprecated SPDX id)" if licence.deprecated else ""
    return Finding(S.MET, 5, f"'{licence.id}' ({licence.name}){note} is a known licence.")


@detective(
    "license-compatible", title="The registry's compatibility check against every ancestor", inputs={INPUT_VARIANT}
)
def license_compatible(facts: RevisionFacts) -> Finding:
    compat = facts.license_compat
    if facts.relation == "original" or (not facts.parent_names and not compat.get("checked")):
        return Finding(S.NA, 5, "An original model has no parents whose licences could conflict.")
    if not compat or "status" not in compat:
        return Finding(S.UNKNOWN, 1, "The registry has not checked this licence against the parents yet.")
    if str(compat.get("license", "")).lower() != facts.license_id.lower() and facts.license_id:
        return Finding(S.UNKNOWN, 1, "The registry's check is about an earlier licence; it will be redone.")
    issues = compat.get("issues") or []
    errors = [str(i.get("message", "")) for i in issues if i.get("severity") == "error"]
    warnings = [str(i.get("message", "")) for i in issues if i.get("severity") != "error"]
    ancestors = [str(c.get("variant")) for c in compat.get("checked") or []]
    status = compat["status"]
    if status == "compatible":
        return Finding(
            S.MET, 5, f"{facts.license_id} is compatible with every ancestor's licence ({_listing(ancestors)})."
        )
    if status == "undeclared":
        return Finding(S.UNMET, 5, "No licence is declared, so compatibility cannot hold.")
    if status == "incompatible":
        # 4, not 5: a licensor's written permission can make it right, and a person may say so.
        return Finding(S.UNMET, 4, "Incompatible: " + " ".join(errors or warnings))
    return Finding(S.UNKNOWN, 2, "Needs a human check: " + " ".join(warnings or errors))


# --- Artifacts -------------------------------------------------------------------------------------------


@detective(
    "safe-serialization",
    title="Every artifact is in safetensors, onnx or gguf; no pickle",
    inputs={INPUT_ARTIFACTS},
    authoritative=True,
)
def safe_serialization(facts: RevisionFacts) -> Finding:
    artifacts = facts.artifacts
    if not artifacts:
        return Finding(S.UNMET, 5, "The revision has no artifacts.")
    unsafe = [f"{a.path} ({a.format})" for a in artifacts if is_unsafe(a.path, a.format)]
    if unsafe:
        return Finding(
            S.UNMET,
            5,
            f"Pickle-based artifacts can run code when loaded and are never loaded here: "
            f"{_listing(unsafe)}. Convert them to safetensors.",
        )
    safe = [f"{a.path} ({a.format})" for a in artifacts if is_safe(a.path, a.format)]
    if not safe:
        return Finding(S.UNMET, 4, "No artifact holds weights in safetensors, onnx or gguf.")
    other = [a.path for a in artifacts if not is_safe(a.path, a.format)]
    if other:
        return Finding(
            S.MET,
            5,
            f"Weights are in safe formats ({_listing(safe)}); the other files ({_listing(other)}) are not pickles.",
        )
    return Finding(S.MET, 5, f"All {len(artifacts)} artifact(s) are in safe formats: {_listing(safe)}.")


@detective("artifact-hashes", title="Every artifact records a sha256", inputs={INPUT_ARTIFACTS}, authoritative=True)
def artifact_hashes(facts: RevisionFacts) -> Finding:
    artifacts = facts.artifacts
    if not artifacts:
        return Finding(S.UNMET, 5, "The revision has no artifacts.")
    missing = [a.path for a in artifacts if not SHA256_RE.match((a.sha256 or "").lower())]
    if missing:
        return Finding(S.UNMET, 5, f"No valid sha256 for: {_listing(missing)}.")
    return Finding(
        S.MET,
        5,
        f"All {len(artifacts)} artifact(s) have a sha256 ("
        + _listing([f"{a.path} {a.sha256[:12]}…" for a in artifacts])
        + ").",
    )


# How far a declared parameter count may be from what the headers hold (rounding, e.g. "8B" for 8.03B).
PARAMETERS_TOLERANCE = 0.01


@detective(
    "weights-match-declaration",
    title="The declared parameter count and precision agree with the weights' headers",
    inputs={INPUT_VARIANT, INPUT_ARTIFACTS},
)
def weights_match_declaration(facts: RevisionFacts) -> Finding:
    from apps.registry.weights import combine

    held = combine([a.header for a in facts.artifacts if a.header])
    if held is None:
        return Finding(
            S.NA,
            5,
            "No stored safetensors or GGUF file whose header the platform could read (weights "
            "recorded by URI, or in another format).",
        )
    parameters, precision = int(held["parameters"]), held.get("precision")
    holds = (
        f"{parameters:,} parameters"
        + (f" in {precision}" if precision else "")
        + f" ({held['tensors']:,} tensors in {held['files']} file(s))"
    )
    declared_parameters, declared_precision = facts.declared_parameters, facts.declared_precision
    problems = []
    if declared_parameters and abs(parameters - declared_parameters) > PARAMETERS_TOLERANCE * declared_parameters:
        problems.append(f"{declared_parameters:,} parameters are declared")
    if declared_precision and precision and declared_precision != precision:
        problems.append(f"precision {declared_precision} is declared")
    if problems:
        # 4, not 5: a person may explain the difference (e.g. a count without the tied embeddings).
        return Finding(S.UNMET, 4, f"{' and '.join(problems).capitalize()}, but the weights' headers hold {holds}.")
    if not declared_parameters and not declared_precision:
        return Finding(S.MET, 4, f"Nothing is declared to compare; the weights' headers hold {holds}.")
    return Finding(S.MET, 5, f"What is declared agrees with the weights' headers: {holds}.")


# --- Model card ------------------------------------------------------------------------------------------

# Heading names that count for each section: ours, and those of the Hugging Face model-card template.
CARD_SECTIONS: dict[str, tuple[str, ...]] = {
    "intended use": ("intended use", "intended uses", "uses", "direct use", "use cases", "intended purpose"),
    "limitations": (
        "limitations",
        "bias risks and limitations",
        "risks and limitations",
        "known limitations",
        "out of scope use",
        "caveats",
    ),
    "training data": (
        "training data",
        "training dataset",
        "training datasets",
        "training details",
        "datasets",
        "dataset",
        "data",
    ),
    "evaluation": ("evaluation", "evaluations", "evaluation results", "results", "benchmarks", "performance"),
}
PLACEHOLDERS = re.compile(r"\[more information needed\]|\[needs more information\]|todo|tbd", re.IGNORECASE)
MIN_SECTION_CHARS = 15
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(\n|\Z)", re.DOTALL)


def _normalise(heading: str) -> str:
    text = re.sub(r"[`*_~\[\]()!:.,&/-]", " ", heading.lower())
    return " ".join(text.split())


def card_headings(card: str) -> list[tuple[int, str, str]]:
    """(level, normalised heading, section text) for every ATX or setext heading; the text runs to the next
    heading of the same or a higher level, so subsections count toward their parent."""
    lines = _FRONT_MATTER.sub("", card).splitlines()
    marks: list[tuple[int, int, str]] = []  # (line index, level, title)
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        atx = _ATX.match(line)
        if atx:
            marks.append((i, len(atx.group(1)), atx.group(2)))
        elif i > 0 and _SETEXT.match(line) and lines[i - 1].strip() and not _ATX.match(lines[i - 1]):
            marks.append((i - 1, 1 if line.strip().startswith("=") else 2, lines[i - 1].strip()))
    out = []
    for n, (start, level, title) in enumerate(marks):
        end = len(lines)
        for later_start, later_level, _ in marks[n + 1 :]:
            if later_level <= level:
                end = later_start
                break
        body_lines = [
            ln
            for j, ln in enumerate(lines[start + 1 : end], start + 1)
            if not any(j == m[0] for m in marks) and not _SETEXT.match(ln)
        ]
        out.append((level, _normalise(title), "\n".join(body_lines)))
    return out


def _has_words(text: str) -> bool:
    return len(PLACEHOLDERS.sub("", text).strip()) >= MIN_SECTION_CHARS


def _heading_matches(heading: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"(^| ){re.escape(name)}( |$)", heading) for name in names)


@detective(
    "card-sections",
    title="The card has intended use, limitations, training data and evaluation headings",
    inputs={INPUT_CARD},
)
def card_sections(facts: RevisionFacts) -> Finding:
    card = facts.card
    if not card.strip():
        return Finding(S.UNMET, 5, "The model card is empty.")
    headings = card_headings(card)
    found, empty, missing = [], [], []
    for section, names in CARD_SECTIONS.items():
        matches = [body for _, heading, body in headings if _heading_matches(heading, names)]
        if not matches:
            missing.append(section)
        elif not any(_has_words(body) for body in matches):
            empty.append(section)
        else:
            found.append(section)
    if not missing and not empty:
        # 4: headings are a good sign, not proof; a person may still answer otherwise.
        return Finding(S.MET, 4, f"The card has sections for {_listing(found)}.")
    parts = []
    if missing:
        parts.append(f"no heading for {_listing(missing)}")
    if empty:
        parts.append(f"empty or placeholder sections for {_listing(empty)}")
    return Finding(S.UNMET, 3, "The card has " + "; ".join(parts) + ".")


# --- Jobs and results ------------------------------------------------------------------------------------


@detective(
    "benchmark-succeeded", title="A benchmark job on this revision succeeded", inputs={INPUT_JOBS}, authoritative=True
)
def benchmark_succeeded(facts: RevisionFacts) -> Finding:
    primary = [j for j in facts.jobs if not j.is_verification]
    succeeded = [j for j in primary if j.status == "succeeded"]
    if succeeded:
        return Finding(S.MET, 5, "Succeeded: " + _listing([f"job {j.id} ({j.benchmark})" for j in succeeded]) + ".")
    active = [j for j in primary if j.status in ("queued", "running")]
    if active:
        return Finding(
            S.UNKNOWN, 2, "Not yet: " + _listing([f"job {j.id} ({j.benchmark}) is {j.status}" for j in active]) + "."
        )
    if primary:
        ended = [
            f"job {j.id} ({j.benchmark}) {j.status}" + (f": {j.failure_reason}" if j.failure_reason else "")
            for j in primary
        ]
        return Finding(S.UNMET, 5, f"No job succeeded: {_listing(ended)}.")
    return Finding(S.UNKNOWN, 5, "No benchmark job has run on this revision yet.")


@detective(
    "result-verified", title="An independent re-run agreed with a result", inputs={INPUT_JOBS}, authoritative=True
)
def result_verified(facts: RevisionFacts) -> Finding:
    primary = [j for j in facts.jobs if not j.is_verification and j.has_result]
    verified = [j for j in primary if j.verified]
    if verified:
        return Finding(
            S.MET, 5, "Verified by a re-run: " + _listing([f"job {j.id} ({j.benchmark})" for j in verified]) + "."
        )
    if not primary:
        return Finding(S.UNKNOWN, 5, "There is no result to verify yet.")
    disputed = [j for j in primary if j.verification_status == "disputed"]
    if disputed:
        return Finding(
            S.UNMET,
            5,
            "A re-run disagreed with "
            + _listing([f"job {j.id} ({j.benchmark})" for j in disputed])
            + "; maintainers look into it.",
        )
    running = [j for j in facts.jobs if j.is_verification and j.status in ("queued", "running")]
    if running:
        return Finding(S.UNKNOWN, 2, "A verification re-run is " + running[0].status + ".")
    return Finding(
        S.UNMET, 5, f"No result is verified yet; ask for a re-run with POST /api/v1/jobs/{primary[0].id}/verify/."
    )


# --- Openness --------------------------------------------------------------------------------------------


@detective(
    "openness-class",
    title="The released components reach MOF Class III or more",
    inputs={INPUT_COMPONENTS, INPUT_ARTIFACTS, INPUT_VARIANT},
    authoritative=True,
)
def openness_class(facts: RevisionFacts) -> Finding:
    from .openness import openness_for_facts

    report = openness_for_facts(facts)
    class_iii = report["classes"][0]
    if report["mof_class"] and not report["conditional"]:
        return Finding(S.MET, 5, f"{report['label']}.")
    detail = f"Class III in progress {class_iii['progress']}%"
    if class_iii["missing"]:
        detail += f"; not declared: {_listing(class_iii['missing'], 7)}"
    if class_iii["invalid"]:
        detail += f"; not openly licensed: {_listing(class_iii['invalid'], 7)}"
    return Finding(S.UNMET, 5, f"{report['label']}. {detail}.")
