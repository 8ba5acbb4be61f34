"""Checklist rules at the service level: templates and versions, detectives, the OpenSSF override rule,
evidence rules, verification, levels, the gate, and re-evaluation through the other apps' hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from apps.checklists import services
from apps.checklists.choices import MAX_CONFIDENCE, AnswerSource
from apps.checklists.detectives import DETECTIVES, Finding, card_headings
from apps.checklists.gate import checklist_gate_unmet
from apps.checklists.levels import level_report
from apps.checklists.models import Checklist, ChecklistItem, ChecklistTemplate
from apps.checklists.services import instances
from apps.core.errors import Conflict, NotFound, PermissionDenied, PreconditionFailed, ValidationFailed

from .factories import finished_job, job_finished

pytestmark = pytest.mark.django_db

DEFAULT_KEYS = [
    "license-valid",
    "license-compatible",
    "safe-serialization",
    "artifact-hashes",
    "weights-match-declaration",
    "card-sections",
    "benchmark-succeeded",
    "result-verified",
    "training-data-disclosed",
    "contamination-statement",
    "reproducibility-recipe",
    "safety-evaluation",
    "openness-class",
    "compute-energy",
]


def items_of(revision) -> dict[str, ChecklistItem]:  # type: ignore[no-untyped-def]
    checklist = Checklist.objects.get(revision=revision)
    return {row.item.key: row for row in checklist.items.select_related("item", "answered_by", "verified_by")}


def answer(revision, key, actor, **changes):  # type: ignore[no-untyped-def]
    return services.checklist_item_answer(revision=revision, key=key, actor=actor, changes=changes)


# --- Templates ------------------------------------------------------------------------------------------


def test_default_template_ships_every_spec_item_with_a_detective_for_each_automatic_one():
    template = services.template_default()
    assert (template.slug, template.version, template.is_default) == ("open-model-practices", 1, True)
    items = list(template.items.all())
    assert [i.key for i in items] == DEFAULT_KEYS
    for item in items:
        assert (item.kind == "auto") == bool(item.detective)
        if item.kind == "auto":
            assert item.detective in DETECTIVES
    shipped = json.loads((Path(settings.FIXTURES_DIR) / "checklists" / "open-model-practices-v1.json").read_text())
    assert [i["key"] for i in shipped["items"]] == DEFAULT_KEYS
    # Loading again is a no-op.
    assert services.template_default().pk == template.pk
    assert ChecklistTemplate.objects.count() == 1


def test_editing_a_template_in_use_makes_a_new_version_and_instances_keep_theirs(int8_submitted, maintainer):
    v1 = services.template_default()
    checklist = Checklist.objects.get(revision=int8_submitted)
    assert checklist.template == v1
    items = [{k: getattr(i, k) for k in services.ITEM_FIELDS} for i in v1.items.all()]
    items[0]["title"] = "Licence declared, valid and spelled right"
    v2, made_new = services.template_update(slug=v1.slug, actor=maintainer, items=items)
    assert made_new and v2.version == 2 and v2.based_on == v1 and v2.is_default
    v1.refresh_from_db()
    assert not v1.is_default and v1.items.get(key="license-valid").title == "Licence declared and valid"
    checklist.refresh_from_db()
    assert checklist.template_id == v1.pk
    assert services.template_default().pk == v2.pk
    # v2 is not in use yet: another edit changes it in place.
    v2b, made_new = services.template_update(slug=v1.slug, actor=maintainer, description="Second thoughts.")
    assert not made_new and v2b.pk == v2.pk and v2b.description == "Second thoughts."


def test_template_rules_are_enforced(maintainer):
    good = {"key": "a", "title": "A", "kind": "manual"}
    with pytest.raises(ValidationFailed) as err:
        services.template_create(
            actor=maintainer,
            slug="t",
            name="T",
            items=[
                good,
                {"key": "a", "title": "Again"},
                {"key": "b", "title": "B", "kind": "auto", "detective": "nope"},
                {"key": "Bad Key", "title": "C", "level": "platinum"},
                {"key": "d", "title": "D", "detective": "x"},
            ],
        )
    errors = err.value.errors
    assert "items.1.key" in errors and "items.2.detective" in errors and "items.3.key" in errors
    assert "items.3.level" in errors and "items.4.detective" in errors
    with pytest.raises(ValidationFailed):
        services.template_create(actor=maintainer, slug="t", name="T", items=[])
    template = services.template_create(actor=maintainer, slug="t", name="T", items=[good])
    assert template.version == 1 and not template.is_default
    with pytest.raises(Conflict):
        services.template_create(actor=maintainer, slug="t", name="T", items=[good])
    with pytest.raises(NotFound):
        services.template_update(slug="missing", actor=maintainer, name="x")


def test_a_new_default_template_is_used_by_the_next_submission(digits_world, submit, maintainer):
    services.template_default()
    custom = services.template_create(
        actor=maintainer,
        slug="tiny",
        name="Tiny",
        is_default=True,
        items=[{"key": "hashes", "title": "Hashes", "kind": "auto", "detective": "artifact-hashes"}],
    )
    revision = submit(digits_world["int8"])
    checklist = Checklist.objects.get(revision=revision)
    assert checklist.template == custom
    assert checklist.level == "gold" and checklist.progress == {"passing": 100, "silver": 100, "gold": 100}
    assert not ChecklistTemplate.objects.get(slug="open-model-practices").is_default


# --- Instances and detectives ---------------------------------------------------------------------------


def test_submission_creates_the_instance_with_the_automatic_items_answered(int8_submitted):
    rows = items_of(int8_submitted)
    assert list(rows) == DEFAULT_KEYS
    expected = {
        "license-valid": "met",
        "license-compatible": "met",
        "safe-serialization": "met",
        "artifact-hashes": "met",
        "card-sections": "met",
        "benchmark-succeeded": "unknown",
        "result-verified": "unknown",
        "openness-class": "unmet",
    }
    for key, status in expected.items():
        row = rows[key]
        assert (row.status, row.source) == (status, AnswerSource.AUTO), (key, row.explanation)
        assert row.explanation and row.confidence and row.answered_by is None
    assert "digits-mlp-int8.onnx (onnx)" in rows["safe-serialization"].explanation
    assert "apache-2.0" in rows["license-valid"].explanation
    for key in ("training-data-disclosed", "contamination-statement", "reproducibility-recipe"):
        assert (rows[key].status, rows[key].source) == ("unknown", "")
    checklist = Checklist.objects.get(revision=int8_submitted)
    assert checklist.level == "in_progress"
    # The openness item is answered; weights-match-declaration is n/a (ONNX weights have no header read here).
    assert checklist.progress == {"passing": 54, "silver": 50, "gold": 0}
    assert services.checklist_ensure(revision=int8_submitted).pk == checklist.pk


def test_a_draft_has_no_checklist(digits_world):
    revision = digits_world["int8"].current_revision
    assert services.checklist_ensure(revision=revision) is None
    assert checklist_gate_unmet(revision) == ["The checklist starts when the revision is submitted; submit it first."]
    assert not Checklist.objects.exists()
    from apps.registry.services import revision_withdraw

    revision_withdraw(revision=revision, actor=revision.variant.owner)
    revision.refresh_from_db()
    assert services.checklist_ensure(revision=revision) is None  # withdrawn before it was ever submitted


def test_pickle_artifacts_make_safe_serialization_unmet_and_the_gate_names_it(digits_world, submit, alice):
    from apps.registry.services import artifact_add, revision_create

    variant = digits_world["int8"]
    submit(variant)
    from apps.registry.services import revision_withdraw

    revision_withdraw(revision=variant.current_revision, actor=variant.owner)
    variant.refresh_from_db()
    second = revision_create(variant=variant, actor=variant.owner)
    artifact_add(
        revision=second,
        actor=variant.owner,
        path="pytorch_model.bin",
        fmt="bin",
        uri="https://example.org/pytorch_model.bin",
        sha256="ab" * 32,
        size_bytes=1234,
    )
    variant.refresh_from_db()
    revision = submit(variant)
    row = items_of(revision)["safe-serialization"]
    assert (row.status, row.confidence) == ("unmet", MAX_CONFIDENCE)
    assert "pytorch_model.bin (bin)" in row.explanation
    unmet = checklist_gate_unmet(revision)
    assert any("safe-serialization" in reason and "pytorch_model.bin" in reason for reason in unmet)


def test_card_headings_are_read_with_the_hub_template_names():
    card = (
        "---\nlicense: mit\n---\n# Model\n\nIntro.\n\n## Uses\n\n### Direct Use\n\nClassify 8x8 digits in class.\n"
        "## Bias, Risks, and Limitations\n\n[More Information Needed]\n\nTraining Details\n----------------\n"
        "### Training Data\n\nsklearn digits, 1,347 training images.\n\n```\n# Evaluation\n```\n"
    )
    headings = [(level, title) for level, title, _ in card_headings(card)]
    assert (2, "uses") in headings and (2, "training details") in headings and (1, "evaluation") not in headings
    from apps.checklists.detectives import card_sections

    class Facts:
        pass

    facts = Facts()
    facts.card = card  # type: ignore[attr-defined]
    finding = card_sections(facts)  # type: ignore[arg-type]
    assert finding.status == "unmet" and finding.confidence == 3
    assert (
        "no heading for evaluation" in finding.explanation
        and "placeholder sections for limitations" in finding.explanation
    )
    facts.card = ""  # type: ignore[attr-defined]
    assert card_sections(facts).confidence == MAX_CONFIDENCE  # type: ignore[arg-type]


def test_a_broken_detective_answers_unknown_and_the_others_still_run(int8_submitted, monkeypatch):
    from apps.checklists import detectives

    def boom(facts):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug")

    monkeypatch.setitem(
        detectives.DETECTIVES,
        "artifact-hashes",
        detectives.DETECTIVES["artifact-hashes"].__class__(
            key="artifact-hashes", title="t", inputs=frozenset({"artifacts"}), authoritative=True, run=boom
        ),
    )
    services.checklist_reevaluate(revision_id=int8_submitted.pk)
    rows = items_of(int8_submitted)
    assert rows["artifact-hashes"].status == "unknown" and rows["artifact-hashes"].confidence == 1
    assert rows["safe-serialization"].status == "met"


# --- The OpenSSF override rule --------------------------------------------------------------------------


def _row(source: str, status: str) -> ChecklistItem:
    return ChecklistItem(status=status, source=source, justification="mine")


@pytest.mark.parametrize(
    ("source", "status", "finding", "expected_status", "expected_source"),
    [
        ("", "unknown", Finding("met", 2, "x"), "met", "auto"),  # fills what nobody answered
        ("auto", "met", Finding("unmet", 1, "x"), "unmet", "auto"),  # follows itself at any confidence
        ("human", "met", Finding("unmet", 4, "x"), "met", "human"),  # unsure: the person's answer stands
        ("human", "met", Finding("unmet", 5, "x"), "unmet", "auto"),  # certain: it overrides
        ("human", "met", Finding("unknown", 5, "x"), "met", "human"),  # "don't know" never overrides
        ("human", "met", Finding("met", 5, "x"), "met", "human"),  # agreeing keeps the person's answer
    ],
)
def test_a_detective_overwrites_a_human_answer_only_when_certain(
    source, status, finding, expected_status, expected_source
):
    row = _row(source, status)
    instances._apply_finding(row, finding, now=None)
    assert (row.status, row.source) == (expected_status, expected_source)
    assert row.explanation == "x" and row.confidence == finding.confidence and row.justification == "mine"


def test_a_person_may_answer_an_unsure_automatic_item_and_it_survives_reevaluation(digits_world, submit):
    variant = digits_world["int8"]
    variant.card = variant.card.replace("## Limitations", "## Caveats worth knowing").replace(
        "## Intended use", "## What it is for"
    )
    variant.save()
    revision = submit(variant)
    row = items_of(revision)["card-sections"]
    assert (row.status, row.confidence) == ("unmet", 3)
    with pytest.raises(ValidationFailed) as err:
        answer(revision, "card-sections", variant.owner, status="met")
    assert err.value.extra["rules"] == ["met_needs_justification"]
    answer(
        revision,
        "card-sections",
        variant.owner,
        status="met",
        justification="Intended use is under 'What it is for'; limitations under 'Caveats worth knowing'.",
    )
    services.checklist_reevaluate(revision_id=revision.pk)
    row = items_of(revision)["card-sections"]
    assert (row.status, row.source, row.answered_by) == ("met", "human", variant.owner)
    assert row.explanation.startswith("The card has no heading for intended use")
    from apps.checklists.api.serializers import composed_justification

    text = composed_justification(row)
    assert text.startswith("Intended use is under") and "Automatic check (confidence 3/5): The card has" in text


def test_answers_contradicting_a_certain_detective_or_on_platform_facts_are_refused(int8_submitted):
    owner = int8_submitted.variant.owner
    with pytest.raises(ValidationFailed) as err:
        answer(int8_submitted, "license-valid", owner, status="unmet")
    assert err.value.extra["rules"] == ["detective_certain"]
    with pytest.raises(ValidationFailed) as err:
        answer(int8_submitted, "benchmark-succeeded", owner, status="met", justification="ran it at home " * 3)
    assert err.value.extra["rules"] == ["automatic_only"]


# --- Evidence rules, permissions, verification ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "changes", "rules"),
    [
        ("training-data-disclosed", {"status": "met"}, ["met_needs_url"]),
        ("training-data-disclosed", {"status": "n/a"}, ["na_needs_justification"]),
        ("contamination-statement", {"status": "n/a", "justification": "x" * 30}, ["na_not_allowed"]),
        ("contamination-statement", {"status": "met", "justification": "too short"}, ["met_needs_justification"]),
        ("reproducibility-recipe", {"status": "met", "evidence_url": "ftp://example.org/x"}, ["evidence_url_invalid"]),
        ("reproducibility-recipe", {"status": "met", "evidence_url": "javascript:alert(1)"}, ["evidence_url_invalid"]),
    ],
)
def test_evidence_rules_are_enforced_and_named(int8_submitted, key, changes, rules):
    with pytest.raises(ValidationFailed) as err:
        answer(int8_submitted, key, int8_submitted.variant.owner, **changes)
    assert err.value.extra["rules"] == rules
    assert all(msg.split(":")[0] in rules for msgs in err.value.errors.values() for msg in msgs)
    assert items_of(int8_submitted)[key].status == "unknown"


def test_only_the_owner_answers_and_only_another_reviewer_verifies(int8_submitted, bob, reviewer, maintainer):
    owner = int8_submitted.variant.owner
    with pytest.raises(PermissionDenied):
        answer(int8_submitted, "training-data-disclosed", bob, status="n/a", justification="x" * 30)
    with pytest.raises(PermissionDenied):
        answer(int8_submitted, "training-data-disclosed", maintainer, status="n/a", justification="x" * 30)
    row = answer(
        int8_submitted,
        "training-data-disclosed",
        owner,
        status="n/a",
        justification="A dynamic int8 quantization: no training data.",
    )
    assert (row.status, row.source, row.answered_by) == ("n/a", "human", owner)
    with pytest.raises(PermissionDenied):
        answer(int8_submitted, "training-data-disclosed", owner, verified=True)
    with pytest.raises(PermissionDenied):
        answer(int8_submitted, "training-data-disclosed", bob, verified=True)
    with pytest.raises(ValidationFailed) as err:
        answer(int8_submitted, "contamination-statement", reviewer, verified=True)
    assert err.value.extra["rules"] == ["nothing_to_verify"]
    with pytest.raises(ValidationFailed) as err:
        answer(int8_submitted, "license-valid", reviewer, verified=True)
    assert err.value.extra["rules"] == ["not_verifiable"]
    row = answer(int8_submitted, "training-data-disclosed", reviewer, verified=True)
    assert row.verified_by == reviewer and row.verified_at
    # Changing the answer drops the verification; repeating it unchanged keeps it.
    row = answer(
        int8_submitted,
        "training-data-disclosed",
        owner,
        status="n/a",
        justification="A dynamic int8 quantization: no training data.",
    )
    assert row.verified_by == reviewer
    row = answer(
        int8_submitted,
        "training-data-disclosed",
        owner,
        status="met",
        evidence_url="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
    )
    assert row.verified_by is None
    with pytest.raises(ValidationFailed):
        answer(int8_submitted, "training-data-disclosed", owner)
    for bad in ({"status": ""}, {"status": "maybe"}, {"justification": 3}, {"verified": "yes"}):
        with pytest.raises(ValidationFailed):
            answer(int8_submitted, "training-data-disclosed", owner if "verified" not in bad else reviewer, **bad)
    with pytest.raises(NotFound):
        answer(int8_submitted, "no-such-item", owner, status="met")


def test_withdrawing_an_answer_hands_an_automatic_item_back_to_its_detective(digits_world, submit):
    variant = digits_world["int8"]
    variant.card = variant.card.replace("## Limitations", "## Things to watch")
    variant.save()
    revision = submit(variant)
    owner = variant.owner
    answer(revision, "card-sections", owner, status="met", justification="Limitations: 'Things to watch'.")
    row = answer(revision, "card-sections", owner, status="unknown")
    assert (row.status, row.source, row.answered_by) == ("unmet", "auto", None)
    answer(revision, "contamination-statement", owner, status="met", justification="No overlap: fixed split.")
    row = answer(revision, "contamination-statement", owner, status="unknown")
    assert (row.status, row.source) == ("unknown", "")


def test_if_match_guards_an_answer(int8_submitted):
    owner = int8_submitted.variant.owner
    with pytest.raises(PreconditionFailed):
        services.checklist_item_answer(
            revision=int8_submitted,
            key="contamination-statement",
            actor=owner,
            changes={"status": "unmet"},
            if_match='"stale"',
        )
    row = items_of(int8_submitted)["contamination-statement"]
    services.checklist_item_answer(
        revision=int8_submitted,
        key="contamination-statement",
        actor=owner,
        changes={"status": "unmet"},
        if_match=services.item_etag(row),
    )


def test_a_closed_revision_takes_no_more_answers(int8_submitted):
    from apps.registry.services import revision_withdraw

    owner = int8_submitted.variant.owner
    revision_withdraw(revision=int8_submitted, actor=owner)
    with pytest.raises(Conflict):
        answer(int8_submitted, "contamination-statement", owner, status="unmet")


# --- Levels, progress and the gate ----------------------------------------------------------------------


def _answer_manual_items(revision, reviewer):  # type: ignore[no-untyped-def]
    owner = revision.variant.owner
    answer(
        revision,
        "training-data-disclosed",
        owner,
        status="n/a",
        justification="A dynamic int8 quantization of commons/digits-mlp: no new training data.",
    )
    answer(
        revision,
        "contamination-statement",
        owner,
        status="met",
        justification="The digits benchmark uses the held-out 25% split; the parent never saw it.",
    )
    answer(
        revision,
        "reproducibility-recipe",
        owner,
        status="met",
        evidence_url="https://github.com/example/digits/blob/main/fixtures/digits/build.py",
    )
    answer(revision, "training-data-disclosed", reviewer, verified=True)
    answer(revision, "contamination-statement", reviewer, verified=True)


def test_levels_progress_and_the_gate_follow_answers_jobs_and_verification(int8_submitted, digits_world, reviewer):
    revision = int8_submitted
    unmet = checklist_gate_unmet(revision)
    assert len(unmet) == 4
    assert any("benchmark-succeeded" in u and "not answered yet" in u for u in unmet)
    _answer_manual_items(revision, reviewer)
    assert checklist_gate_unmet(revision) == [
        "'At least one benchmark job succeeded on this revision' (benchmark-succeeded) is not answered yet."
    ]
    job = finished_job(revision, digits_world["benchmark"], revision.variant.owner)
    job_finished(job.pk)
    rows = items_of(revision)
    assert (
        rows["benchmark-succeeded"].status == "met"
        and f"job {job.pk} (digits)" in rows["benchmark-succeeded"].explanation
    )
    assert rows["result-verified"].status == "unmet"  # suggested: answered, so it counts toward progress
    assert checklist_gate_unmet(revision) == []
    checklist = Checklist.objects.get(revision=revision)
    assert checklist.level == "passing"
    assert checklist.progress == {"passing": 100, "silver": 50, "gold": 0}
    # Silver: a safety evaluation (verified) and the suggested openness item (answered unmet by its detective).
    owner = revision.variant.owner
    answer(
        revision,
        "safety-evaluation",
        owner,
        status="n/a",
        justification="An 8x8 digit classifier outputs one of ten digits; it cannot produce harmful content.",
    )
    checklist.refresh_from_db()
    assert (checklist.level, checklist.progress["silver"]) == ("passing", 50)
    answer(revision, "safety-evaluation", reviewer, verified=True)
    checklist.refresh_from_db()
    assert (checklist.level, checklist.progress["silver"]) == ("silver", 100)
    answer(
        revision,
        "compute-energy",
        owner,
        status="met",
        justification="Quantization took 2 CPU-seconds on a laptop: about 0.00002 kWh.",
    )
    checklist.refresh_from_db()
    assert checklist.level == "gold" and checklist.progress == {"passing": 100, "silver": 100, "gold": 100}


def test_jobs_and_verifications_flip_the_automatic_items(int8_submitted, digits_world):
    revision, benchmark, owner = int8_submitted, digits_world["benchmark"], int8_submitted.variant.owner
    queued = finished_job(revision, benchmark, owner, status="queued")
    job_finished(queued.pk)
    assert items_of(revision)["benchmark-succeeded"].status == "unknown"
    assert "is queued" in items_of(revision)["benchmark-succeeded"].explanation
    queued.status, queued.failure_reason = "failed", "runner_error"
    queued.save()
    job_finished(queued.pk)
    row = items_of(revision)["benchmark-succeeded"]
    assert row.status == "unmet" and "runner_error" in row.explanation
    ok = finished_job(revision, benchmark, owner)
    job_finished(ok.pk)
    assert items_of(revision)["benchmark-succeeded"].status == "met"
    assert items_of(revision)["result-verified"].status == "unmet"
    ok.result.verified = True
    ok.result.save()
    job_finished(ok.pk)
    assert items_of(revision)["result-verified"].status == "met"


def test_level_report_counts_suggested_items_once_answered():
    class I:  # noqa: E742
        def __init__(self, level, required=True, na=False, verify=False):  # type: ignore[no-untyped-def]
            self.key = self.title = "k"
            self.level, self.required, self.na_allowed, self.reviewer_verifies = level, required, na, verify

    class A:
        def __init__(self, status, verified=False):  # type: ignore[no-untyped-def]
            self.status, self.verified_by_id = status, 1 if verified else None

    report = level_report(
        [
            (I("passing"), A("met")),
            (I("passing", required=False), A("unknown")),
            (I("silver", verify=True), A("met")),
            (I("gold"), A("met")),
        ]
    )
    assert report.level == "passing" and report.progress == {"passing": 50, "silver": 0, "gold": 100}
    report = level_report(
        [
            (I("passing", na=True), A("n/a")),
            (I("passing", required=False), A("unmet")),
            (I("silver", verify=True), A("met", verified=True)),
        ]
    )
    assert report.level == "gold" and report.progress == {"passing": 100, "silver": 100, "gold": 100}
    assert level_report([(I("passing"), A("n/a"))]).level == "in_progress"


def test_answers_carry_over_to_the_next_revision_unverified(int8_submitted, reviewer):
    from apps.registry.services import revision_create, revision_transition

    revision = int8_submitted
    _answer_manual_items(revision, reviewer)
    revision_transition(revision=revision, target="changes_requested", actor=reviewer)
    variant = revision.variant
    variant.refresh_from_db()
    revision_create(variant=variant, actor=variant.owner)
    variant.refresh_from_db()
    from apps.registry.services import revision_submit

    revision_submit(revision=variant.current_revision, actor=variant.owner)
    second = services.checklist_ensure(revision=variant.current_revision)
    assert second is not None
    rows = items_of(second.revision)
    assert rows["contamination-statement"].status == "met" and rows["contamination-statement"].verified_by is None
    assert rows["training-data-disclosed"].status == "n/a" and rows["reproducibility-recipe"].status == "met"
    assert rows["safety-evaluation"].status == "unknown"


def test_checklist_changes_are_announced_after_commit(digits_world, submit, django_capture_on_commit_callbacks):
    from apps.checklists.hooks import CHECKLIST_CHANGED_HOOKS

    seen: list[int] = []

    def hook(*, revision_id: int) -> None:
        seen.append(revision_id)

    CHECKLIST_CHANGED_HOOKS.append(hook)
    try:
        revision = submit(digits_world["int8"])
        assert seen == [revision.pk]  # the detectives' first findings
        with django_capture_on_commit_callbacks(execute=True):
            answer(revision, "contamination-statement", revision.variant.owner, status="unmet")
        assert seen == [revision.pk, revision.pk]
    finally:
        CHECKLIST_CHANGED_HOOKS.remove(hook)


# --- Hooks from the registry ----------------------------------------------------------------------------


def test_a_variant_change_reevaluates_revisions_that_read_the_live_variant(digits_world):
    from apps.checklists.subscribers import on_variant_updated
    from apps.registry.services import revision_transition

    variant = digits_world["int8"]
    revision = variant.current_revision
    # Submitted without the registry's snapshot (as revisions from before snapshots were): reads the variant.
    revision_transition(revision=revision, target="submitted", actor=variant.owner)
    type(revision).objects.filter(pk=revision.pk).update(metadata={})  # submission snapshots now; undo it
    revision.refresh_from_db()
    services.checklist_ensure(revision=revision)
    assert items_of(revision)["card-sections"].status == "met"
    variant.card = "# digits-mlp-int8\n\nJust weights."
    variant.save()
    on_variant_updated(variant_id=variant.pk, fields=["card"])
    assert items_of(revision)["card-sections"].status == "unmet"
    assert items_of(revision)["license-valid"].status == "met"


# --- MOF components and the openness class -------------------------------------------------------------


def test_openness_class_from_declared_and_derived_components(digits_world, django_capture_on_commit_callbacks):
    from apps.checklists.openness import openness_class_for, openness_classes_for
    from apps.registry.models import Revision

    variant = digits_world["int8"]
    revision = variant.current_revision
    owner = variant.owner
    report = openness_class_for(revision)
    params = next(c for c in report["components"] if c["component"] == "model-parameters")
    assert params["derived"] and params["open"] and params["license"] == "apache-2.0"
    assert (report["mof_class"], report["conditional"]) == ("III", True)
    assert report["label"] == "Class III - Open Model (conditional)"
    assert report["classes"][0]["status"] == "conditional" and report["classes"][0]["progress"] == 16
    class_iii = {
        "model-architecture": ("https://github.com/example/digits/blob/main/build.py", "MIT"),
        "model-card": ("https://example.org/card", "cc-by-4.0"),
        "data-card": ("https://scikit-learn.org/stable/datasets/toy_dataset.html", "CC-BY-4.0"),
        "research-paper": ("https://arxiv.org/abs/0000.00000", "cc-by-4.0"),  # stands in for a technical report
        "evaluation-results": ("https://example.org/results", "cc-by-4.0"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        for key, (location, licence) in class_iii.items():
            services.component_set(revision=revision, component=key, location=location, license=licence, actor=owner)
    report = openness_class_for(Revision.objects.get(pk=revision.pk))
    assert (report["mof_class"], report["conditional"], report["rank"]) == ("III", False, 1)
    assert report["classes"][1]["status"] == "in_progress" and report["classes"][1]["missing"] == [
        "training-code",
        "inference-code",
        "evaluation-code",
        "evaluation-data",
    ]
    assert openness_classes_for([revision.pk])[revision.pk]["mof_class"] == "III"
    # A licence that is not open for the content type: the class drops and the component says why.
    with django_capture_on_commit_callbacks(execute=True):
        services.component_set(
            revision=revision,
            component="model-card",
            location="https://example.org/card",
            license="cc-by-nc-4.0",
            actor=owner,
        )
    report = openness_class_for(revision)
    card = next(c for c in report["components"] if c["component"] == "model-card")
    assert not card["open"] and "open content licence" in card["problem"]
    assert report["conditional"] and report["classes"][0]["invalid"] == ["model-card"]
    from apps.checklists.models import RevisionOpenness
    from apps.checklists.openness import openness_at_least

    assert RevisionOpenness.objects.get(revision=revision).conditional
    assert Revision.objects.filter(openness_at_least("III")).filter(pk=revision.pk).exists()
    assert not Revision.objects.filter(openness_at_least("II")).filter(pk=revision.pk).exists()


def test_component_rules(digits_world, bob):
    revision = digits_world["int8"].current_revision
    owner = digits_world["int8"].owner
    with pytest.raises(PermissionDenied):
        services.component_set(
            revision=revision, component="training-code", location="https://x.org/a", license="mit", actor=bob
        )
    with pytest.raises(ValidationFailed) as err:
        services.component_set(
            revision=revision, component="training-code", location="ftp://x.org/a", license="apache2", actor=owner
        )
    assert "location" in err.value.errors and "apache-2.0" in err.value.errors["license"][0]
    with pytest.raises(NotFound):
        services.component_set(revision=revision, component="nope", location="a", license="", actor=owner)
    row = services.component_set(
        revision=revision, component="training-code", location="train.py", license="Apache-2.0", actor=owner
    )
    assert row.license == "apache-2.0"
    services.component_delete(revision=revision, component="training-code", actor=owner)
    with pytest.raises(NotFound):
        services.component_delete(revision=revision, component="training-code", actor=owner)
