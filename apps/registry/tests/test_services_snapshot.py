"""Issue 12, findings 1 and 2 at the selector and service level: who sees which revision, and the public snapshot
of a published variant whose owner edits a newer draft."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.core.errors import Conflict, NotFound
from apps.registry import selectors
from apps.registry.models import Revision, Variant
from apps.registry.querysets import revision_is_visible_to, sees_unpublished
from apps.registry.services import revision_create, revision_transition, variant_update
from tests.visibility_world import SECRET_CARD, SECRET_SUMMARY, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    return build_world()


def _viewers(world: dict[str, Any]) -> dict[str, Any]:
    return {"anonymous": AnonymousUser(), **world["users"]}


def test_a_newer_draft_of_a_published_variant_is_seen_by_its_insiders_only(world):
    pub = world["pub"]
    for who, user in _viewers(world).items():
        insider = who in ("alice", "rev", "maint")
        numbers = list(selectors.revisions_visible_to(user, pub).values_list("number", flat=True))
        assert numbers == ([1, 2] if insider else [1]), who
        assert revision_is_visible_to(user, world["rev2"]) is insider, who
        assert sees_unpublished(user, pub) is insider, who
        if insider:
            assert selectors.revision_for_user_or_404(user, owner="alice", name="vis-pub", number=2).number == 2
        else:
            with pytest.raises(NotFound):
                selectors.revision_for_user_or_404(user, owner="alice", name="vis-pub", number=2)
        assert selectors.revision_for_user_or_404(user, variant=pub, number=1).number == 1


def test_the_python_and_sql_forms_of_the_revision_rule_agree(world):
    revisions = list(Revision.objects.select_related("variant"))
    for who, user in _viewers(world).items():
        in_sql = set(Revision.objects.visible_to(user).values_list("pk", flat=True))
        in_python = {r.pk for r in revisions if revision_is_visible_to(user, r)}
        assert in_sql == in_python, who


def test_unroutable_revision_numbers_are_not_found(world):
    for number in (0, 2**31, 2**40):
        with pytest.raises(NotFound):
            selectors.revision_for_user_or_404(world["users"]["maint"], variant=world["pub"], number=number)


def test_the_public_sees_the_last_published_snapshot_and_insiders_the_draft(world):
    for who, user in _viewers(world).items():
        variant = selectors.variants_visible_to(user).get(pk=world["pub"].pk)
        shown = selectors.variant_as_seen_by(user, variant)
        parents = [link.parent.full_name for link in shown.parent_links.all()]
        if who in ("alice", "rev", "maint"):
            assert (shown.license, shown.card, shown.summary, shown.precision) == (
                "mit",
                SECRET_CARD,
                SECRET_SUMMARY,
                "int8",
            ), who
            assert parents == ["commons/vis-other-base"] and shown.current_revision.number == 2, who
            assert shown.status == "draft", who
        else:
            assert (shown.license, shown.summary, shown.precision) == ("apache-2.0", "public summary", "fp16"), who
            assert "UNREVIEWED" not in shown.card, who
            assert parents == ["commons/vis-base"], who
            assert shown.current_revision.number == 1 and shown.status == "published", who
        # The row itself (and its cached relations) is never changed by showing it.
        assert variant.license == "mit" and variant.current_revision.number == 2
        assert [link.parent.full_name for link in variant.parent_links.all()] == ["commons/vis-other-base"]


def test_the_snapshot_becomes_the_draft_once_that_draft_is_published(world):
    maint, carol = world["users"]["maint"], world["users"]["carol"]
    for target in ("submitted", "approved", "published"):
        revision_transition(revision=world["rev2"], target=target, actor=maint)
    pub = Variant.objects.get(pk=world["pub"].pk)
    assert pub.published_revision_id == world["rev2"].pk
    shown = selectors.variant_as_seen_by(carol, selectors.variants_visible_to(carol).get(pk=pub.pk))
    assert (shown.license, shown.card, shown.summary) == ("mit", SECRET_CARD, SECRET_SUMMARY)
    assert [link.parent.full_name for link in shown.parent_links.all()] == ["commons/vis-other-base"]


def test_publishing_is_audited_with_the_public_revision(world):
    from apps.audit.models import AuditEvent

    maint = world["users"]["maint"]
    for target in ("submitted", "approved", "published"):
        revision_transition(revision=world["rev2"], target=target, actor=maint)
    event = AuditEvent.objects.filter(verb="revision.published").order_by("-id").first()
    assert event is not None and event.after["public_revision"] == 2
    revision_transition(revision=world["rev2"], target="unpublished", actor=maint, reason="oops")
    event = AuditEvent.objects.filter(verb="revision.unpublished").order_by("-id").first()
    assert event.after["public_revision"] == 1
    assert Variant.objects.get(pk=world["pub"].pk).published_revision_id == world["rev1"].pk


def test_unpublishing_the_only_published_revision_hides_the_variant(world):
    maint, carol = world["users"]["maint"], world["users"]["carol"]
    revision_transition(revision=world["rev1"], target="unpublished", actor=maint, reason="licence problem")
    pub = Variant.objects.get(pk=world["pub"].pk)
    assert pub.published_revision_id is None and not pub.is_public
    assert not selectors.variants_visible_to(carol).filter(pk=pub.pk).exists()


def test_submission_snapshots_the_variant_into_the_revision(world):
    alice = world["users"]["alice"]
    rev2 = world["rev2"]
    revision_transition(revision=rev2, target="submitted", actor=alice)
    rev2.refresh_from_db()
    assert rev2.metadata["license"] == "mit" and rev2.metadata["card"] == SECRET_CARD
    assert rev2.metadata["parent_ids"] == [world["other_base"].pk]
    assert rev2.metadata["parents"] == ["commons/vis-other-base"]


def test_list_filters_use_what_the_reader_sees(world):
    qs = Variant.objects.visible_to
    for who, user in _viewers(world).items():
        insider = who in ("alice", "rev", "maint")
        by_licence = set(qs(user).filter_declared(user, "license", "iexact", "MIT").values_list("name", flat=True))
        assert ("vis-pub" in by_licence) is insider, who
        old = set(qs(user).filter_declared(user, "license", "iexact", "apache-2.0").values_list("name", flat=True))
        assert ("vis-pub" in old) is not insider, who
        by_status = set(qs(user).filter_declared(user, "status", "exact", "published").values_list("name", flat=True))
        assert ("vis-pub" in by_status) is not insider, who
        big = set(qs(user).filter_declared(user, "precision", "exact", "int8").values_list("name", flat=True))
        assert ("vis-pub" in big) is insider, who
        children = set(qs(user).filter_parent_declared(user, "commons/vis-other-base").values_list("name", flat=True))
        assert ("vis-pub" in children) is insider, who
        children = set(qs(user).filter_parent_declared(user, "COMMONS/vis-base").values_list("name", flat=True))
        assert "vis-pub" in children if not insider else "vis-pub" not in children, who


def test_lineage_shows_the_published_parents_to_the_public(world):
    carol, alice = world["users"]["carol"], world["users"]["alice"]
    pub = selectors.variant_for_user_or_404(carol, "alice", "vis-pub")
    public = selectors.variant_lineage(variant=pub, user=carol)
    assert public["parents"] == ["commons/vis-base"]
    assert [n["full_name"] for n in public["ancestors"]] == ["commons/vis-base"]
    other = selectors.variant_for_user_or_404(carol, "commons", "vis-other-base")
    assert selectors.variant_lineage(variant=other, user=carol)["descendants"] == []
    own = selectors.variant_lineage(variant=selectors.variant_for_user_or_404(alice, "alice", "vis-pub"), user=alice)
    assert own["parents"] == ["commons/vis-other-base"]
    assert [n["license"] for n in public["ancestors"]] == ["apache-2.0"]


def test_verified_results_for_the_card_come_from_visible_revisions_only(world):
    carol, alice = world["users"]["carol"], world["users"]["alice"]
    assert [r["revision"] for r in selectors.verified_results(world["pub"], carol)] == [1]
    assert [r["revision"] for r in selectors.verified_results(world["pub"], alice)] == [2]


def test_a_draft_edit_after_a_new_revision_stays_out_of_the_published_snapshot(world):
    """The snapshot is what was submitted: editing again changes the draft, never revision 1's metadata."""
    alice = world["users"]["alice"]
    variant_update(variant=world["pub"], actor=alice, summary="edited again")
    rev1 = Revision.objects.get(pk=world["rev1"].pk)
    assert rev1.metadata["summary"] == "public summary" and rev1.metadata["license"] == "apache-2.0"
    with pytest.raises(Conflict):  # a second draft cannot be opened while one is open
        revision_create(variant=world["pub"], actor=alice)
