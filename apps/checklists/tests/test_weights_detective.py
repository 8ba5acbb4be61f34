"""The weights-match-declaration detective: what a variant declares (parameters, precision) against what its
stored safetensors or GGUF files' headers hold."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.checklists.choices import ItemStatus
from apps.checklists.detectives import weights_match_declaration
from apps.checklists.facts import RevisionFacts
from apps.checklists.models import ChecklistItem
from apps.registry.services import artifact_add
from apps.registry.tests.factories import make_original, make_variant, record
from apps.registry.tests.test_weights import safetensors

pytestmark = pytest.mark.django_db
KEY = "weights-match-declaration"


@pytest.fixture
def declared(alice, maintainer):  # type: ignore[no-untyped-def]
    """A variant of alice's with a 4096-parameter BF16 safetensors file, declaring what the caller says."""

    def make(**fields):  # type: ignore[no-untyped-def]
        base = make_original(maintainer, name=f"base-{len(fields)}-{fields.get('parameters')}")
        variant = make_variant(alice, f"v-{fields.get('parameters')}-{fields.get('precision')}", [base], **fields)
        artifact_add(
            revision=variant.current_revision,
            actor=alice,
            path="model.safetensors",
            upload=SimpleUploadedFile("m.safetensors", safetensors({"w": ("BF16", [64, 64])})),
        )
        return variant

    return make


def _finding(variant):  # type: ignore[no-untyped-def]
    return weights_match_declaration(RevisionFacts.load(variant.current_revision_id))


def test_agreement_is_met_with_certainty(declared):
    finding = _finding(declared(parameters=4096, precision="bf16"))
    assert (finding.status, finding.confidence) == (ItemStatus.MET, 5)
    assert "4,096 parameters in bf16" in finding.explanation
    assert _finding(declared(parameters=4100, precision="")).status == ItemStatus.MET  # within 1%


def test_a_different_declaration_is_unmet_and_says_both(declared):
    finding = _finding(declared(parameters=7_000_000_000, precision="fp16"))
    assert (finding.status, finding.confidence) == (ItemStatus.UNMET, 4)
    assert "7,000,000,000 parameters are declared and precision fp16 is declared" in finding.explanation
    assert "hold 4,096 parameters in bf16" in finding.explanation


def test_nothing_declared_is_met_without_certainty(declared):
    finding = _finding(declared(parameters=None, precision=""))
    assert (finding.status, finding.confidence) == (ItemStatus.MET, 4)


def test_no_readable_weights_is_not_applicable(alice, maintainer):
    base = make_original(maintainer)
    variant = make_variant(alice, "records-only", [base], parameters=10, precision="fp16")
    record(variant, alice)  # recorded by URI: no header here
    finding = _finding(variant)
    assert (finding.status, finding.confidence) == (ItemStatus.NA, 5)


def test_the_checklist_of_a_submitted_revision_shows_the_mismatch(declared, submit, client_for, alice):
    variant = declared(parameters=1_000_000, precision="bf16")
    revision = submit(variant)
    item = ChecklistItem.objects.get(checklist__revision=revision, item__key=KEY)
    assert item.status == ItemStatus.UNMET and "1,000,000 parameters are declared" in item.explanation
    body = client_for(alice).get(f"/api/v1/variants/{variant.full_name}/revisions/1/checklist/").json()
    shown = next(i for i in body["items"] if i["key"] == KEY)
    assert shown["status"] == "unmet" and shown["required"] is False
