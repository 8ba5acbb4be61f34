"""Checklist instances: made when a revision is submitted (answers carried over from the previous revision when
they still meet the rules), re-evaluated by the detectives when what they look at changes, and the level they
reach. Detectives run inside the service that holds the instance's row lock, so a person's answer and a detective
never race. Also the stored openness class, computed from the same facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record, audit_record_many
from apps.core.bulk import bulk_update_rows
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision

from ..choices import AnswerSource, ItemStatus, Kind
from ..detectives import DETECTIVES, Finding
from ..facts import LIST_FACTS, RevisionFacts
from ..hooks import checklist_changed_on_commit
from ..levels import level_report
from ..models import Checklist, ChecklistItem, ChecklistTemplate, RevisionOpenness
from ..openness import openness_for_facts
from .problems import answer_problems
from .templates import template_default

logger = logging.getLogger(__name__)

S = RevisionStatus


def _apply_finding(row: ChecklistItem, finding: Finding, now: Any) -> None:
    """The OpenSSF rule: a detective fills what no person answered, and overwrites a person's answer only
    when it is certain. The person's justification stays; the explanation is shown after it."""
    row.confidence = finding.confidence
    row.explanation = finding.explanation
    row.detective_status = finding.status
    row.evaluated_at = now
    if row.source == AnswerSource.HUMAN and not (finding.certain and finding.status != row.status):
        return
    if row.status != finding.status:
        row.status = finding.status
        row.answered_at = now
        row.verified_by = None
        row.verified_at = None
    if row.source == AnswerSource.HUMAN:
        row.answered_by = None
    row.source = AnswerSource.AUTO


def refresh_level(checklist: Checklist, rows: Iterable[ChecklistItem] | None = None) -> tuple[str, str]:
    rows = list(rows) if rows is not None else list(checklist.items.select_related("item"))
    return _refresh_levels([(checklist, rows)])[checklist.pk]


def _refresh_levels(checklists: list[tuple[Checklist, list[ChecklistItem]]]) -> dict[int, tuple[str, str]]:
    """Store each checklist's level and progress as its items say (one update for them all); returns
    {checklist id: (level before, level after)}."""
    now = timezone.now()
    levels: dict[int, tuple[str, str]] = {}
    for checklist, rows in checklists:
        report = level_report((row.item, row) for row in rows)
        before = checklist.level
        if report.level != checklist.level or report.progress != checklist.progress:
            checklist.level, checklist.progress = report.level, report.progress
        checklist.updated_at = now
        levels[checklist.pk] = (before, checklist.level)
    bulk_update_rows(Checklist, [checklist for checklist, _ in checklists], ["level", "progress", "updated_at"])
    return levels


def _evaluate(checklist: Checklist, facts: RevisionFacts, inputs: frozenset[str] | None) -> dict[str, Any]:
    """Run the detectives concerned by `inputs` (all when None) and store what they found."""
    return _evaluate_many([(checklist, facts)], inputs)[checklist.pk]


ITEM_FINDING_FIELDS = [
    "status",
    "source",
    "answered_by",
    "answered_at",
    "confidence",
    "explanation",
    "detective_status",
    "evaluated_at",
    "verified_by",
    "verified_at",
]


def _evaluate_many(
    pairs: list[tuple[Checklist, RevisionFacts]], inputs: frozenset[str] | None
) -> dict[int, dict[str, Any]]:
    """`_evaluate` for several checklists at once (each paired with its revision's facts), in a few queries
    whatever their number: the items of them all in one, each list-valued fact the detectives read (jobs,
    artifacts, components) in one, the findings in one update, the levels in one, and the audit events in one
    append. Per revision remain only the facts that are not lists, read lazily by the detectives that need
    them (a variant's parents when its revision has no snapshot), and the after-commit change hooks.

    Returns {checklist id: {item key: [status before, status after]}} for the items whose status changed."""
    if not pairs:
        return {}
    now = timezone.now()
    rows_of: dict[int, list[ChecklistItem]] = {checklist.pk: [] for checklist, _ in pairs}
    for row in ChecklistItem.objects.filter(checklist_id__in=list(rows_of)).select_related("item"):
        rows_of[row.checklist_id].append(row)
    runs: dict[int, list[tuple[ChecklistItem, Any]]] = {}
    wanted: dict[str, list[RevisionFacts]] = {}
    for checklist, facts in pairs:
        runs[checklist.pk] = []
        for row in rows_of[checklist.pk]:
            found = DETECTIVES.get(row.item.detective) if row.item.kind == Kind.AUTO else None
            if found is None or (inputs is not None and not found.inputs & inputs):
                continue
            runs[checklist.pk].append((row, found))
            for name in found.inputs & LIST_FACTS.keys():
                wanted.setdefault(name, []).append(facts)
    if len(pairs) > 1:  # one revision reads its facts lazily, only those its detectives really look at
        for name, of in wanted.items():
            RevisionFacts.prefetch(of, [name])
    dirty: list[ChecklistItem] = []
    changes: dict[int, dict[str, list[str]]] = {}
    for checklist, facts in pairs:
        changed = changes[checklist.pk] = {}
        for row, found in runs[checklist.pk]:
            try:
                finding = found.run(facts)
            except Exception:  # noqa: BLE001 - one broken detective must not block the others or the caller
                logger.exception("detective %s failed on revision %s", found.key, checklist.revision_id)
                finding = Finding(
                    ItemStatus.UNKNOWN, 1, "The automatic check failed; it runs again when its inputs change."
                )
            before = row.status
            _apply_finding(row, finding, now)
            dirty.append(row)
            if row.status != before:
                changed[row.item.key] = [before, row.status]
    if dirty:
        bulk_update_rows(ChecklistItem, dirty, ITEM_FINDING_FIELDS)
    levels = _refresh_levels([(checklist, rows_of[checklist.pk]) for checklist, _ in pairs])
    audited = []
    for checklist, _ in pairs:
        changed = changes[checklist.pk]
        level_before, level_after = levels[checklist.pk]
        if changed or level_before != level_after:
            audited.append(
                (
                    checklist,
                    {"level": level_before, "items": {k: v[0] for k, v in changed.items()}},
                    {"level": level_after, "items": {k: v[1] for k, v in changed.items()}},
                )
            )
    if audited:
        audit_record_many(actor=None, verb="checklist.evaluate", events=audited)
        for checklist, _, _ in audited:
            checklist_changed_on_commit(checklist.revision_id)
    return changes


def _previous_answers(revision: Revision) -> dict[str, ChecklistItem]:
    """Human answers on the latest earlier revision of the same variant, to carry into a new checklist."""
    previous = (
        Checklist.objects.filter(revision__variant_id=revision.variant_id, revision__number__lt=revision.number)
        .order_by("-revision__number")
        .first()
    )
    if previous is None:
        return {}
    return {row.item.key: row for row in previous.items.select_related("item").filter(source=AnswerSource.HUMAN)}


@transaction.atomic
def checklist_ensure(*, revision: Revision | int) -> Checklist | None:
    """The checklist of a submitted revision, created (with the default template's latest version) the first
    time it is needed; None for a draft, which has none yet. Idempotent.

    On creation every detective runs, and the owner's answers on the previous revision's checklist are
    carried over (unverified) where the item still exists and the answer still satisfies its rules."""
    revision_id = revision if isinstance(revision, int) else revision.pk
    existing = Checklist.objects.filter(revision_id=revision_id).first()
    if existing is not None:
        return existing
    locked = Revision.objects.select_for_update(no_key=True).select_related("variant__owner").get(pk=revision_id)
    if locked.status == S.DRAFT or (locked.status == S.WITHDRAWN and locked.submitted_at is None):
        return None  # never submitted: no checklist
    existing = Checklist.objects.filter(revision_id=revision_id).first()
    if existing is not None:
        return existing
    template = ChecklistTemplate.objects.select_for_update().get(pk=template_default().pk)
    checklist = Checklist.objects.create(revision=locked, template=template)
    carried = _previous_answers(locked)
    rows = []
    kept: list[str] = []
    for item in template.items.all():
        row = ChecklistItem(checklist=checklist, item=item)
        old = carried.get(item.key)
        if old is not None and not answer_problems(item, old.status, old.justification, old.evidence_url):
            row.status, row.justification, row.evidence_url = old.status, old.justification, old.evidence_url
            row.source, row.answered_by_id, row.answered_at = AnswerSource.HUMAN, old.answered_by_id, old.answered_at
            kept.append(item.key)
        rows.append(row)
    ChecklistItem.objects.bulk_create(rows)
    audit_record(
        actor=None,
        verb="checklist.create",
        target=checklist,
        after={"revision": revision_id, "template": template.slug, "version": template.version, "carried_over": kept},
    )
    facts = RevisionFacts(locked)
    openness_store(facts)
    _evaluate(checklist, facts, None)
    return checklist


def checklist_reevaluate(*, revision_id: int, inputs: Iterable[str] | None = None) -> Checklist | None:
    """Run again the detectives whose inputs changed (all when `inputs` is None), and the stored openness class.
    Called after commit by the registry's and the engine's hooks; safe to call any number of times."""
    return checklists_reevaluate(revision_ids=[revision_id], inputs=inputs).get(revision_id)


OPENNESS_INPUTS = frozenset({"artifacts", "variant", "components"})


@transaction.atomic
def checklists_reevaluate(*, revision_ids: Iterable[int], inputs: Iterable[str] | None = None) -> dict[int, Checklist]:
    """`checklist_reevaluate` for several revisions in one transaction: their checklists are locked (in id
    order) and read with their revisions in one query, and evaluated together (`_evaluate_many`), so re-running
    the job detectives of a worker's batch costs a few queries, not a few per revision. The openness class, when
    its inputs changed, is still stored per revision. Returns {revision id: checklist} for those that have one."""
    wanted = frozenset(inputs) if inputs is not None else None
    ids = sorted({int(pk) for pk in revision_ids})
    if not ids:
        return {}
    checklists = {
        checklist.revision_id: checklist
        for checklist in Checklist.objects.select_for_update(of=("self",))
        .select_related("revision__variant__owner")
        .filter(revision_id__in=ids)
        .order_by("pk")
    }
    facts = {revision_id: RevisionFacts(checklist.revision) for revision_id, checklist in checklists.items()}
    if wanted is None or wanted & OPENNESS_INPUTS:
        missing = [pk for pk in ids if pk not in facts]
        if missing:
            facts.update(
                (revision.pk, RevisionFacts(revision))
                for revision in Revision.objects.select_related("variant__owner").filter(pk__in=missing)
            )
        if len(facts) > 1:
            RevisionFacts.prefetch(facts.values(), ["artifacts", "components"])
        for pk in ids:
            if pk in facts:
                openness_store(facts[pk])
    _evaluate_many([(checklists[pk], facts[pk]) for pk in ids if pk in checklists], wanted)
    return checklists


def openness_store(facts: RevisionFacts) -> RevisionOpenness:
    """Store the revision's openness class for filters (leaderboards, variant lists)."""
    report = openness_for_facts(facts)
    row = RevisionOpenness(
        revision_id=facts.revision.pk,
        mof_class=report["mof_class"] or "",
        rank=report["rank"],
        conditional=report["conditional"],
        report={"label": report["label"], "classes": report["classes"]},
    )
    # One upsert (INSERT ... ON CONFLICT DO UPDATE), not update_or_create's savepoint, locking read and insert.
    RevisionOpenness.objects.bulk_create(
        [row],
        update_conflicts=True,
        unique_fields=["revision"],
        update_fields=["mof_class", "rank", "conditional", "report", "computed_at"],
    )
    return row
