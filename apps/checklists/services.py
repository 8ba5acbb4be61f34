"""Checklist writes: templates (versioned), instances, answers, verification, detective runs, MOF components.

Every service locks what it changes, records an audit event in the same transaction, and leaves side effects
to `transaction.on_commit`. Detectives run inside the service that owns the instance's row lock, so a human
answer and a detective never race."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.roles import is_reviewer
from apps.audit.services import audit_record, audit_record_many
from apps.core.bulk import bulk_update_rows
from apps.core.conditional import check_if_match, etag_for
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision

from .choices import (
    MAX_CONFIDENCE,
    MOF_COMPONENT_SPECS,
    AnswerSource,
    Evidence,
    ItemStatus,
    Kind,
    Level,
)
from .detectives import DETECTIVES, Finding
from .facts import LIST_FACTS, RevisionFacts
from .hooks import checklist_changed_on_commit
from .levels import level_report
from .models import (
    ITEM_KEY_RE,
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    RevisionComponent,
    RevisionOpenness,
    TemplateItem,
)
from .openness import openness_for_facts

logger = logging.getLogger(__name__)
S = RevisionStatus

# The checklist stays open until the revision is published: reviewers may approve before the owner has finished
# it, and closing it at approval would leave a revision that can neither be completed nor published (only a new
# revision, losing the approvals, would get out). Answers do not touch the reviews, so approvals stand; an answer
# that changes what a reviewer verified still drops that verification.
ANSWERABLE_STATUSES = (S.SUBMITTED, S.CHANGES_REQUESTED, S.APPROVED)
VERIFIABLE_STATUSES = (S.SUBMITTED, S.CHANGES_REQUESTED, S.APPROVED)
# Components describe what is released; they may change until the revision is approved.
COMPONENT_EDITABLE_STATUSES = (S.DRAFT, S.SUBMITTED, S.CHANGES_REQUESTED)
ITEM_FIELDS = (
    "key",
    "title",
    "guidance",
    "required",
    "level",
    "kind",
    "detective",
    "needs_evidence",
    "na_allowed",
    "reviewer_verifies",
)
ITEM_DEFAULTS: dict[str, Any] = {
    "guidance": "",
    "required": True,
    "level": Level.PASSING,
    "kind": Kind.MANUAL,
    "detective": "",
    "needs_evidence": Evidence.NONE,
    "na_allowed": False,
    "reviewer_verifies": False,
}
MAX_ITEMS = 200


def _add(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


# --- Templates ------------------------------------------------------------------------------------------


def template_items_clean(items: Any) -> list[dict[str, Any]]:
    """Check a template's items (types, choices, unique keys, a known detective for each automatic item).
    Raises ValidationFailed with errors keyed `items.<n>.<field>`."""
    errors: dict[str, list[str]] = {}
    if not isinstance(items, list) or not items:
        raise ValidationFailed("A template needs items.", errors={"items": ["Give a non-empty list of items."]})
    if len(items) > MAX_ITEMS:
        raise ValidationFailed("Too many items.", errors={"items": [f"At most {MAX_ITEMS} items."]})
    seen: set[str] = set()
    clean: list[dict[str, Any]] = []
    text_limits = {"key": 64, "title": 200, "guidance": 5000, "detective": 64}
    for n, raw in enumerate(items):
        at = f"items.{n}"
        if not isinstance(raw, dict):
            _add(errors, at, "Each item is an object.")
            continue
        unknown = sorted(set(raw) - set(ITEM_FIELDS))
        for field in unknown:
            _add(errors, f"{at}.{field}", "Not an item field.")
        item = {**ITEM_DEFAULTS, **{k: v for k, v in raw.items() if k in ITEM_FIELDS}}
        for field, limit in text_limits.items():
            value = item.get(field)
            if field in ("key", "title") and field not in raw:
                _add(errors, f"{at}.{field}", "This field is required.")
            elif not isinstance(value, str):
                _add(errors, f"{at}.{field}", "Must be a string.")
            elif len(value) > limit:
                _add(errors, f"{at}.{field}", f"At most {limit} characters.")
        for field in ("required", "na_allowed", "reviewer_verifies"):
            if not isinstance(item[field], bool):
                _add(errors, f"{at}.{field}", "Must be true or false.")
        for field, choices in (("level", Level), ("kind", Kind), ("needs_evidence", Evidence)):
            if item[field] not in choices.values:
                _add(errors, f"{at}.{field}", f"Must be one of: {', '.join(choices.values)}.")
        key = item.get("key")
        if isinstance(key, str) and "key" in raw:
            if not re.match(ITEM_KEY_RE, key):
                _add(errors, f"{at}.key", "Lower-case letters, digits, '-' and '_', starting with a letter or digit.")
            elif key in seen:
                _add(errors, f"{at}.key", f"'{key}' is used by an earlier item.")
            seen.add(key)
        if isinstance(item.get("title"), str) and "title" in raw and not item["title"].strip():
            _add(errors, f"{at}.title", "A title is required.")
        detective = item.get("detective")
        if item["kind"] == Kind.AUTO and isinstance(detective, str):
            if not detective and isinstance(key, str) and key in DETECTIVES:
                item["detective"] = detective = key
            if detective not in DETECTIVES:
                _add(
                    errors,
                    f"{at}.detective",
                    f"An automatic item names its detective, one of: {', '.join(sorted(DETECTIVES))}.",
                )
        elif item["kind"] == Kind.MANUAL and detective:
            _add(errors, f"{at}.detective", "Only automatic items have a detective.")
        clean.append({k: item[k] for k in ITEM_FIELDS})
    if errors:
        raise ValidationFailed("The template's items are not valid: see errors.", errors=errors)
    return clean


def _template_snapshot(template: ChecklistTemplate) -> dict[str, Any]:
    return {
        "slug": template.slug,
        "version": template.version,
        "name": template.name,
        "is_default": template.is_default,
        "items": list(template.items.values_list("key", flat=True)),
    }


def template_make_default(template: ChecklistTemplate) -> None:
    ChecklistTemplate.objects.filter(is_default=True).exclude(pk=template.pk).update(is_default=False)
    if not template.is_default:
        template.is_default = True
        template.save(update_fields=["is_default"])


def _create_version(
    *,
    slug: str,
    version: int,
    name: str,
    description: str,
    items: list[dict[str, Any]],
    is_default: bool,
    actor: Any,
    based_on: ChecklistTemplate | None,
) -> ChecklistTemplate:
    template = ChecklistTemplate.objects.create(
        slug=slug,
        version=version,
        name=name,
        description=description,
        is_default=False,
        based_on=based_on,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    TemplateItem.objects.bulk_create(
        [TemplateItem(template=template, position=n, **item) for n, item in enumerate(items)]
    )
    if is_default:
        template_make_default(template)
    return template


def _clean_header(slug: Any, name: Any, description: Any) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(slug, str) or not re.match(r"^[-a-zA-Z0-9_]{1,64}$", slug):
        _add(errors, "slug", "Letters, digits, '-' and '_' only, at most 64.")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        _add(errors, "name", "A name of 1 to 200 characters is required.")
    if not isinstance(description, str) or len(description) > 10_000:
        _add(errors, "description", "A string of at most 10000 characters.")
    if errors:
        raise ValidationFailed("The template is not valid: see errors.", errors=errors)


@transaction.atomic
def template_create(
    *, actor: Any, slug: str, name: str, items: Any, description: str = "", is_default: bool = False
) -> ChecklistTemplate:
    """A new template, version 1. Editing it later goes through `template_update`."""
    _clean_header(slug, name, description)
    clean = template_items_clean(items)
    if ChecklistTemplate.objects.filter(slug__iexact=slug).exists():
        raise Conflict(
            f"A template '{slug}' exists; change it with PATCH, which makes a new version when it is in use."
        )
    try:
        with transaction.atomic():
            template = _create_version(
                slug=slug,
                version=1,
                name=name.strip(),
                description=description,
                items=clean,
                is_default=is_default,
                actor=actor,
                based_on=None,
            )
    except IntegrityError:
        raise Conflict(f"A template '{slug}' was just created by someone else.")
    audit_record(actor=actor, verb="checklist_template.create", target=template, after=_template_snapshot(template))
    return template


@transaction.atomic
def template_update(
    *,
    slug: str,
    actor: Any,
    name: Any = None,
    description: Any = None,
    items: Any = None,
    is_default: bool | None = None,
) -> tuple[ChecklistTemplate, bool]:
    """Change a template. If its latest version is used by an instance, the change becomes the next version
    and existing instances keep theirs; otherwise the latest version is edited in place.

    Returns (the template version now current, whether a new version was made)."""
    latest = ChecklistTemplate.objects.select_for_update().filter(slug=slug).order_by("-version").first()
    if latest is None:
        raise NotFound(f"No checklist template '{slug}'.")
    new_name = latest.name if name is None else name
    new_description = latest.description if description is None else description
    _clean_header(latest.slug, new_name, new_description)
    current_items = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in latest.items.all()]
    new_items = current_items if items is None else template_items_clean(items)
    content_changed = (
        new_name.strip() != latest.name or new_description != latest.description or new_items != current_items
    )
    before = _template_snapshot(latest)
    made_new = False
    template = latest
    if content_changed and latest.instances.exists():
        template = _create_version(
            slug=latest.slug,
            version=latest.version + 1,
            name=new_name.strip(),
            description=new_description,
            items=new_items,
            is_default=latest.is_default,
            actor=actor,
            based_on=latest,
        )
        made_new = True
    elif content_changed:
        latest.name, latest.description = new_name.strip(), new_description
        latest.save(update_fields=["name", "description"])
        if new_items != current_items:
            latest.items.all().delete()
            TemplateItem.objects.bulk_create(
                [TemplateItem(template=latest, position=n, **item) for n, item in enumerate(new_items)]
            )
    if is_default is True:
        template_make_default(template)
    elif is_default is False and template.is_default:
        template.is_default = False
        template.save(update_fields=["is_default"])
    audit_record(
        actor=actor,
        verb="checklist_template.version" if made_new else "checklist_template.update",
        target=template,
        before=before,
        after=_template_snapshot(template),
    )
    return template, made_new


@transaction.atomic
def template_new_version(*, template: ChecklistTemplate, actor: Any) -> ChecklistTemplate:
    """Copy a template version into the next one, unchanged, so it can be edited (the admin's way in)."""
    latest = ChecklistTemplate.objects.select_for_update().filter(slug=template.slug).order_by("-version").first()
    assert latest is not None
    items = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in template.items.all()]
    new = _create_version(
        slug=latest.slug,
        version=latest.version + 1,
        name=template.name,
        description=template.description,
        items=items,
        is_default=latest.is_default,
        actor=actor,
        based_on=template,
    )
    audit_record(
        actor=actor,
        verb="checklist_template.version",
        target=new,
        before=_template_snapshot(template),
        after=_template_snapshot(new),
    )
    return new


def default_template_file() -> Path:
    return Path(settings.FIXTURES_DIR) / "checklists" / settings.MC_CHECKLIST_DEFAULT_TEMPLATE_FILE


@transaction.atomic
def template_load_file(*, path: Path, actor: Any = None) -> tuple[ChecklistTemplate, bool]:
    """Load a template shipped as JSON (fixtures/checklists/) unless that slug and version exist already."""
    data = json.loads(Path(path).read_text())
    slug, version = data["slug"], int(data.get("version", 1))
    existing = ChecklistTemplate.objects.filter(slug=slug, version=version).first()
    if existing is not None:
        return existing, False
    _clean_header(slug, data.get("name", slug), data.get("description", ""))
    items = template_items_clean(data["items"])
    try:
        with transaction.atomic():
            template = _create_version(
                slug=slug,
                version=version,
                name=data.get("name", slug),
                description=data.get("description", ""),
                items=items,
                is_default=bool(data.get("is_default")),
                actor=actor,
                based_on=None,
            )
    except IntegrityError:  # another process loaded it at the same moment
        return ChecklistTemplate.objects.get(slug=slug, version=version), False
    audit_record(
        actor=actor,
        verb="checklist_template.load",
        target=template,
        after={**_template_snapshot(template), "file": Path(path).name},
    )
    return template, True


def template_default() -> ChecklistTemplate:
    """The template new instances use: the latest version of the default template, loaded from fixtures the
    first time it is needed."""
    template = ChecklistTemplate.objects.filter(is_default=True).order_by("-version").first()
    if template is not None:
        latest = ChecklistTemplate.objects.filter(slug=template.slug).order_by("-version").first()
        return latest or template
    shipped = json.loads(default_template_file().read_text())
    latest = ChecklistTemplate.objects.filter(slug=shipped["slug"]).order_by("-version").first()
    if latest is not None:
        return latest
    return template_load_file(path=default_template_file())[0]


# --- Instances and detectives ---------------------------------------------------------------------------


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


def _refresh_level(checklist: Checklist, rows: Iterable[ChecklistItem] | None = None) -> tuple[str, str]:
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
    locked = Revision.objects.select_for_update().select_related("variant__owner").get(pk=revision_id)
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
        if old is not None and not _answer_problems(item, old.status, old.justification, old.evidence_url):
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


# --- Answers --------------------------------------------------------------------------------------------


def _answer_problems(item: TemplateItem, status: str, justification: str, evidence_url: str) -> dict[str, list[str]]:
    """The evidence rules of an item, OpenSSF-style; each message starts with the rule's name."""
    errors: dict[str, list[str]] = {}
    minimum = settings.MC_CHECKLIST_MIN_JUSTIFICATION_CHARS
    if status == ItemStatus.NA:
        if not item.na_allowed:
            _add(errors, "status", "na_not_allowed: this item cannot be answered N/A.")
        if len(justification.strip()) < minimum:
            _add(
                errors,
                "justification",
                f"na_needs_justification: say why the item does not apply (at least {minimum} characters).",
            )
    if status == ItemStatus.MET:
        if item.needs_evidence == Evidence.URL and not evidence_url:
            _add(errors, "evidence_url", "met_needs_url: give the URL of the evidence (evidence_url).")
        if item.needs_evidence == Evidence.JUSTIFICATION and len(justification.strip()) < minimum:
            _add(
                errors,
                "justification",
                f"met_needs_justification: explain how the item is met (at least {minimum} characters).",
            )
    if evidence_url:
        parsed = urlparse(evidence_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            _add(errors, "evidence_url", "evidence_url_invalid: an http(s) URL is required.")
    return errors


def _rules_of(errors: dict[str, list[str]]) -> list[str]:
    return sorted({msg.split(":", 1)[0] for msgs in errors.values() for msg in msgs})


def _lock_item(revision: Revision, key: str) -> tuple[Checklist, ChecklistItem]:
    checklist = checklist_ensure(revision=revision)
    if checklist is None:
        raise NotFound(
            f"Revision {revision.number} has no checklist yet: it is created when the revision is submitted."
        )
    checklist = Checklist.objects.select_for_update().get(pk=checklist.pk)
    row = (
        ChecklistItem.objects.select_related("item", "answered_by", "verified_by")
        .filter(checklist=checklist, item__key=key)
        .first()
    )
    if row is None:
        raise NotFound(f"The checklist has no item '{key}'.")
    return checklist, row


def _check_types(fields: dict[str, Any], verified: Any) -> None:
    errors: dict[str, list[str]] = {}
    if "status" in fields and fields["status"] not in ItemStatus.values:
        _add(errors, "status", f"Must be one of: {', '.join(ItemStatus.values)}.")
    for field, limit in (("justification", 10_000), ("evidence_url", 1000)):
        value = fields.get(field, "")
        if value is not None and not isinstance(value, str):
            _add(errors, field, "Must be a string.")
        elif value and len(value) > limit:
            _add(errors, field, f"At most {limit} characters.")
    if verified is not None and not isinstance(verified, bool):
        _add(errors, "verified", "Must be true or false.")
    if errors:
        raise ValidationFailed("The answer is not valid: see errors.", errors=errors)


def _can_answer(actor: Any, revision: Revision) -> bool:
    from apps.registry.permissions import can_edit_variant

    return can_edit_variant(actor, revision.variant)


@transaction.atomic
def checklist_item_answer(
    *, revision: Revision, key: str, actor: Any, changes: dict[str, Any], if_match: str | None = None
) -> ChecklistItem:
    """Answer an item (`status`, `justification`, `evidence_url`: the owner) or verify it (`verified`: a
    reviewer who is not the author). The item's evidence rules are enforced; a 400 names each rule broken.

    An answer that changes what was verified drops the verification. On an automatic item a person may answer
    where the detective is unsure; where it is certain, a contradicting answer is refused."""
    revision = Revision.objects.select_related("variant__owner").get(pk=revision.pk)
    answer_fields: dict[str, Any] = {k: changes[k] for k in ("status", "justification", "evidence_url") if k in changes}
    verified = changes.get("verified")
    if not answer_fields and verified is None:
        raise ValidationFailed(
            "Nothing to change: give status, justification, evidence_url or verified.",
            errors={"__all__": ["Give status, justification, evidence_url or verified."]},
        )
    _check_types(answer_fields, verified)
    if answer_fields and not _can_answer(actor, revision):
        raise PermissionDenied(f"Only the owner of {revision.variant.full_name} answers its checklist.")
    if verified is not None and not is_reviewer(actor):
        raise PermissionDenied("Only reviewers verify checklist items.")
    checklist, row = _lock_item(revision, key)
    check_if_match(if_match, item_etag(row), what=f"Item '{key}'")
    item = row.item
    now = timezone.now()
    before = {"status": row.status, "source": row.source, "verified_by": getattr(row.verified_by, "username", None)}
    if answer_fields:
        if revision.status not in ANSWERABLE_STATUSES:
            raise Conflict(
                f"Revision {revision.number} is {revision.status}: its checklist can no longer be "
                "answered. Open a new revision to change it.",
                current_status=revision.status,
            )
        _answer(row, item, answer_fields, actor, now)
    if verified is not None:
        _verify(row, item, revision, bool(verified), actor, now)
    row.save()
    _refresh_level(checklist)
    audit_record(
        actor=actor,
        verb="checklist.item.verify" if verified is not None and not answer_fields else "checklist.item.answer",
        target=row,
        before=before,
        after={
            "status": row.status,
            "source": row.source,
            "verified_by": getattr(row.verified_by, "username", None),
            "evidence_url": row.evidence_url or None,
            "key": key,
        },
    )
    checklist_changed_on_commit(revision.pk)
    return row


def _answer(row: ChecklistItem, item: TemplateItem, fields: dict[str, Any], actor: Any, now: Any) -> None:
    status = fields.get("status", row.status if row.source == AnswerSource.HUMAN else ItemStatus.UNKNOWN)
    justification = fields.get("justification", row.justification) or ""
    evidence_url = fields.get("evidence_url", row.evidence_url) or ""
    found = DETECTIVES.get(item.detective) if item.kind == Kind.AUTO else None
    errors: dict[str, list[str]] = {}
    if found is not None and found.authoritative:
        _add(
            errors,
            "status",
            f"automatic_only: the platform answers this item from its own records "
            f"({found.title.lower()}); it cannot be answered by hand.",
        )
    elif (
        found is not None
        and "status" in fields
        and status != ItemStatus.UNKNOWN
        and row.confidence is not None
        and row.confidence >= MAX_CONFIDENCE
        and row.detective_status not in ("", ItemStatus.UNKNOWN)
        and status != row.detective_status
    ):
        _add(
            errors,
            "status",
            f"detective_certain: the automatic check is certain the item is {row.detective_status} ({row.explanation})",
        )
    if status != ItemStatus.UNKNOWN:
        for field, msgs in _answer_problems(item, status, justification, evidence_url).items():
            errors.setdefault(field, []).extend(msgs)
    elif evidence_url:
        for field, msgs in _answer_problems(item, status, "", evidence_url).items():
            errors.setdefault(field, []).extend(msgs)
    if errors:
        raise ValidationFailed(
            "The answer breaks the item's rules: " + ", ".join(_rules_of(errors)) + ".",
            errors=errors,
            rules=_rules_of(errors),
        )
    changed = (status, justification, evidence_url) != (row.status, row.justification, row.evidence_url)
    if status == ItemStatus.UNKNOWN:
        # Withdrawing an answer hands an automatic item back to its detective.
        auto = found is not None and row.detective_status
        row.status = row.detective_status if auto else ItemStatus.UNKNOWN
        row.source = AnswerSource.AUTO if auto else AnswerSource.NONE
        row.answered_by = None
    else:
        row.status = status
        row.source = AnswerSource.HUMAN
        row.answered_by = actor
    row.justification, row.evidence_url = justification, evidence_url
    row.answered_at = now
    if changed:
        row.verified_by, row.verified_at = None, None


def _verify(row: ChecklistItem, item: TemplateItem, revision: Revision, verified: bool, actor: Any, now: Any) -> None:
    if revision.status not in VERIFIABLE_STATUSES:
        raise Conflict(
            f"Revision {revision.number} is {revision.status}: its checklist is closed.", current_status=revision.status
        )
    authors = {revision.variant.owner_id, revision.created_by_id, row.answered_by_id}
    if actor.pk in authors or _can_answer(actor, revision):
        raise PermissionDenied("Nobody verifies their own work: another reviewer verifies this item.")
    errors: dict[str, list[str]] = {}
    if verified and not item.reviewer_verifies:
        _add(errors, "verified", "not_verifiable: this item does not ask for a reviewer's verification.")
    elif verified and row.status not in (ItemStatus.MET, ItemStatus.NA):
        _add(errors, "verified", f"nothing_to_verify: the item is {row.status}; only a met or N/A answer is verified.")
    if errors:
        raise ValidationFailed(
            "The item cannot be verified: " + ", ".join(_rules_of(errors)) + ".", errors=errors, rules=_rules_of(errors)
        )
    if verified:
        row.verified_by, row.verified_at = actor, now
    else:
        row.verified_by, row.verified_at = None, None


def item_etag(row: ChecklistItem) -> str:
    stamp = "|".join(
        str(v)
        for v in (
            row.pk,
            row.status,
            row.justification,
            row.evidence_url,
            row.source,
            row.answered_by_id,
            row.answered_at,
            row.confidence,
            row.explanation,
            row.verified_by_id,
            row.verified_at,
        )
    )
    return etag_for(stamp)


# --- MOF components and the openness class --------------------------------------------------------------


def openness_store(facts: RevisionFacts) -> RevisionOpenness:
    """Store the revision's openness class for filters (leaderboards, variant lists)."""
    report = openness_for_facts(facts)
    stored, _ = RevisionOpenness.objects.update_or_create(
        revision_id=facts.revision.pk,
        defaults={
            "mof_class": report["mof_class"] or "",
            "rank": report["rank"],
            "conditional": report["conditional"],
            "report": {"label": report["label"], "classes": report["classes"]},
        },
    )
    return stored


def _lock_revision_for_components(revision: Revision, actor: Any) -> Revision:
    revision = Revision.objects.select_for_update().select_related("variant__owner").get(pk=revision.pk)
    if not _can_answer(actor, revision):
        raise PermissionDenied(f"Only the owner of {revision.variant.full_name} declares its components.")
    if revision.status not in COMPONENT_EDITABLE_STATUSES:
        raise Conflict(
            f"Revision {revision.number} is {revision.status}: its components can no longer change.",
            current_status=revision.status,
        )
    return revision


def _after_components_change(revision: Revision) -> None:
    revision_id = revision.pk
    transaction.on_commit(lambda: checklist_reevaluate(revision_id=revision_id, inputs={"components"}), robust=True)


@transaction.atomic
def component_set(*, revision: Revision, component: str, location: Any, license: Any, actor: Any) -> RevisionComponent:
    """Declare where a MOF component of the revision is released and under which licence (create or replace)."""
    from apps.registry.licenses import license_lookup, license_suggestions

    if component not in MOF_COMPONENT_SPECS:
        raise NotFound(f"No MOF component '{component}'.")
    revision = _lock_revision_for_components(revision, actor)
    errors: dict[str, list[str]] = {}
    if not isinstance(location, str) or not location.strip() or len(location) > 1000:
        _add(errors, "location", "Give a URL or an artifact path, at most 1000 characters.")
    elif "://" in location:
        parsed = urlparse(location.strip())
        if parsed.scheme not in ("http", "https", "hf", "s3", "gs") or not parsed.netloc:
            _add(errors, "location", "A URL must be http(s), hf://, s3:// or gs:// with a host.")
    if license is None:
        license = ""
    if not isinstance(license, str) or len(license) > 64:
        _add(errors, "license", "A licence id (SPDX or Hub), or empty for 'not specified'.")
    elif license.strip() and license_lookup(license) is None:
        hints = license_suggestions(license)
        _add(
            errors,
            "license",
            f"Unknown licence id '{license}'." + (f" Did you mean: {', '.join(hints)}?" if hints else ""),
        )
    if errors:
        raise ValidationFailed("The component is not valid: see errors.", errors=errors)
    canonical = license_lookup(license).id if license.strip() else ""  # type: ignore[union-attr]
    existing = RevisionComponent.objects.filter(revision=revision, component=component).first()
    before = {"location": existing.location, "license": existing.license} if existing else None
    row, _ = RevisionComponent.objects.update_or_create(
        revision=revision,
        component=component,
        defaults={"location": location.strip(), "license": canonical, "updated_by": actor},
    )
    audit_record(
        actor=actor,
        verb="revision_component.set",
        target=row,
        before=before,
        after={"revision": revision.pk, "component": component, "location": row.location, "license": row.license},
    )
    _after_components_change(revision)
    return row


@transaction.atomic
def component_delete(*, revision: Revision, component: str, actor: Any) -> None:
    if component not in MOF_COMPONENT_SPECS:
        raise NotFound(f"No MOF component '{component}'.")
    revision = _lock_revision_for_components(revision, actor)
    row = RevisionComponent.objects.filter(revision=revision, component=component).first()
    if row is None:
        raise NotFound(f"Component '{component}' is not declared on revision {revision.number}.")
    audit_record(
        actor=actor,
        verb="revision_component.delete",
        target=row,
        before={"revision": revision.pk, "component": component, "location": row.location, "license": row.license},
    )
    row.delete()
    _after_components_change(revision)
