"""The review workflow's rules, at the service layer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.core.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from apps.notifications.models import Notification, NotificationPreference
from apps.registry.models import Revision
from apps.registry.services import revision_create
from apps.reviews import services
from apps.reviews.gate import publication_gate_unmet, review_standing
from apps.reviews.models import Comment, Flag, ReviewAssignment
from apps.reviews.selectors import review_queue

from .conftest import approve, submit, succeed_job

pytestmark = pytest.mark.django_db


def users(world):  # type: ignore[no-untyped-def]
    return world["users"]


# --- who may review -------------------------------------------------------------------------------------------


def test_only_reviewers_review(world, submitted):
    with pytest.raises(PermissionDenied, match="Only reviewers"):
        services.review_submit(revision=submitted, reviewer=users(world)["bob"], decision="approve")


def test_nobody_reviews_their_own_work(world, submitted, make_user):
    from apps.accounts.services import user_set_roles

    alice = users(world)["alice"]
    user_set_roles(user=alice, roles=["reviewer"], actor=None)
    alice.refresh_from_db()
    with pytest.raises(PermissionDenied, match="your own work"):
        services.review_submit(revision=submitted, reviewer=alice, decision="approve")
    with pytest.raises(PermissionDenied, match="your own work"):
        services.review_assign(revision=submitted, reviewer=alice, actor=alice)
    # Maintainers are reviewers too, and the same rule binds them.
    maintainer = users(world)["maintainer"]
    own = world["base"].current_revision
    with pytest.raises(PermissionDenied):
        # commons/digits-mlp is published; even if it were reviewable, the maintainer created it.
        services.review_submit(revision=own, reviewer=maintainer, decision="approve")


def test_drafts_are_not_reviewed(world, checklist_met):
    draft = world["pruned"].current_revision
    with pytest.raises(Conflict, match="draft"):
        services.review_submit(revision=draft, reviewer=users(world)["reviewer1"], decision="approve")


def test_request_changes_needs_a_body_and_sends_the_revision_back(world, submitted):
    r1 = users(world)["reviewer1"]
    with pytest.raises(ValidationFailed) as err:
        services.review_submit(revision=submitted, reviewer=r1, decision="request_changes", body="  ")
    assert "body" in err.value.errors
    services.review_submit(revision=submitted, reviewer=r1, decision="request_changes", body="Add a *card* section")
    submitted.refresh_from_db()
    assert submitted.status == "changes_requested"
    assert AuditEvent.objects.filter(verb="revision.changes_requested").count() == 1
    assert AuditEvent.objects.filter(verb="review.request_changes", actor=r1).count() == 1


def test_two_distinct_approvals_approve(world, submitted):
    r1, r2 = users(world)["reviewer1"], users(world)["reviewer2"]
    approve(submitted, r1)
    assert submitted.status == "submitted"
    approve(submitted, r1)  # the same reviewer twice is still one approval
    assert submitted.status == "submitted"
    assert review_standing(submitted).approvals == ["reviewer1"]
    approve(submitted, r2)
    assert submitted.status == "approved"
    assert review_standing(submitted).approvals == ["reviewer1", "reviewer2"]


def test_latest_decision_per_reviewer_counts_and_comments_do_not_change_it(world, submitted):
    r1, r2 = users(world)["reviewer1"], users(world)["reviewer2"]
    approve(submitted, r1, r2)
    assert submitted.status == "approved"
    services.review_submit(revision=submitted, reviewer=r1, decision="request_changes", body="wait, a bug")
    submitted.refresh_from_db()
    assert submitted.status == "changes_requested"
    assert review_standing(submitted).objections == ["reviewer1"]
    services.review_submit(revision=submitted, reviewer=r1, decision="comment", body="thinking")
    assert review_standing(submitted).objections == ["reviewer1"]
    services.review_submit(revision=submitted, reviewer=r1, decision="approve")
    standing = review_standing(submitted)
    assert standing.objections == [] and standing.approvals == ["reviewer1", "reviewer2"]


def test_a_new_revision_makes_earlier_decisions_stale(world, submitted):
    alice, r1, r2 = users(world)["alice"], users(world)["reviewer1"], users(world)["reviewer2"]
    services.review_submit(revision=submitted, reviewer=r1, decision="request_changes", body="fix the card")
    services.review_submit(revision=submitted, reviewer=r2, decision="approve")
    rev2 = revision_create(variant=world["int8"], actor=alice)
    submitted.refresh_from_db()
    assert review_standing(submitted).approvals == [] and review_standing(submitted).objections == []
    with pytest.raises(Conflict, match="superseded"):
        services.review_submit(revision=submitted, reviewer=r2, decision="approve")
    rev2 = submit(rev2, alice)
    assert review_standing(rev2).objections == []  # reviewer1's stale request no longer blocks
    approve(rev2, r1, r2)
    assert rev2.status == "approved"


# --- the publication gate -------------------------------------------------------------------------------------


def test_gate_refusal_names_approvals_objections_checklist_and_jobs(world, submitted, checklist_met):
    checklist_met.append("Training data disclosed: unmet")
    maintainer = users(world)["maintainer"]
    approve(submitted, users(world)["reviewer1"])
    with pytest.raises(services.PublicationGateUnmet) as err:
        services.revision_publish(revision=submitted, actor=maintainer)
    gate = err.value.errors["gate"]
    assert len(gate) == 3
    assert "Needs 2 approvals" in gate[0] and "has 1 (reviewer1)" in gate[0]
    assert gate[1] == "Checklist: Training data disclosed: unmet"
    assert "No benchmark job has succeeded on revision 1" in gate[2]
    submitted.refresh_from_db()
    assert submitted.status == "submitted"
    assert not AuditEvent.objects.filter(verb="revision.published", target_id=str(submitted.pk)).exists()


def test_publish_succeeds_once_the_gate_holds(world, submitted, checklist_met):
    maintainer, alice = users(world)["maintainer"], users(world)["alice"]
    checklist_met.append("Evaluation contamination statement: unmet")
    approve(submitted, users(world)["reviewer1"], users(world)["reviewer2"])
    succeed_job(submitted, world["benchmark"], alice)
    assert publication_gate_unmet(submitted) == ["Checklist: Evaluation contamination statement: unmet"]
    with pytest.raises(services.PublicationGateUnmet):
        services.revision_publish(revision=submitted, actor=maintainer)
    checklist_met.clear()
    published = services.revision_publish(revision=submitted, actor=maintainer, reason="ship it")
    assert published.status == "published"
    world["int8"].refresh_from_db()
    assert world["int8"].is_public and world["int8"].status == "published"
    assert (
        AuditEvent.objects.filter(verb="revision.published", actor=maintainer, target_id=str(submitted.pk)).count() == 1
    )
    assert audit_chain_verify().ok
    with pytest.raises(InvalidTransition) as again:
        services.revision_publish(revision=submitted, actor=maintainer)
    assert again.value.extra["allowed"] == ["unpublished"]


def test_only_maintainers_publish_unpublish_reject(world, submitted):
    r1 = users(world)["reviewer1"]
    for call in (services.revision_publish, services.revision_unpublish, services.revision_reject):
        with pytest.raises(PermissionDenied, match="Only maintainers"):
            call(revision=submitted, actor=r1, reason="x")


def test_unpublish_needs_a_reason_and_can_be_republished(world, submitted):
    maintainer = users(world)["maintainer"]
    approve(submitted, users(world)["reviewer1"], users(world)["reviewer2"])
    succeed_job(submitted, world["benchmark"], users(world)["alice"])
    services.revision_publish(revision=submitted, actor=maintainer)
    with pytest.raises(ValidationFailed) as err:
        services.revision_unpublish(revision=submitted, actor=maintainer, reason="")
    assert "reason" in err.value.errors
    services.revision_unpublish(revision=submitted, actor=maintainer, reason="licence question")
    submitted.refresh_from_db()
    world["int8"].refresh_from_db()
    assert submitted.status == "unpublished" and submitted.status_reason == "licence question"
    assert not world["int8"].is_public
    services.revision_publish(revision=submitted, actor=maintainer, reason="resolved")
    submitted.refresh_from_db()
    assert submitted.status == "published"


def test_reject_is_final(world, submitted):
    maintainer = users(world)["maintainer"]
    services.revision_reject(revision=submitted, actor=maintainer, reason="not a real quantization")
    submitted.refresh_from_db()
    assert submitted.status == "rejected"
    with pytest.raises(InvalidTransition) as err:
        services.revision_reject(revision=submitted, actor=maintainer, reason="again")
    assert err.value.extra["allowed"] == []
    with pytest.raises(Conflict):
        services.review_submit(revision=submitted, reviewer=users(world)["reviewer1"], decision="approve")


def test_auto_publish_when_the_last_condition_is_met(world, submitted, settings, django_capture_on_commit_callbacks):
    settings.MC_AUTO_PUBLISH = True
    approve(submitted, users(world)["reviewer1"], users(world)["reviewer2"])
    assert submitted.status == "approved"  # no job yet
    with django_capture_on_commit_callbacks(execute=True):
        succeed_job(submitted, world["benchmark"], users(world)["alice"])
    submitted.refresh_from_db()
    assert submitted.status == "published"
    event = AuditEvent.objects.get(verb="revision.published", target_id=str(submitted.pk))
    assert event.actor is None and "automatic" in event.after["reason"]


def test_auto_publish_on_the_approval_that_completes_the_gate(world, submitted, settings):
    settings.MC_AUTO_PUBLISH = True
    succeed_job(submitted, world["benchmark"], users(world)["alice"])
    approve(submitted, users(world)["reviewer1"], users(world)["reviewer2"])
    assert submitted.status == "published"


def test_without_auto_publish_nothing_publishes_itself(world, submitted):
    succeed_job(submitted, world["benchmark"], users(world)["alice"])
    approve(submitted, users(world)["reviewer1"], users(world)["reviewer2"])
    assert submitted.status == "approved"
    assert services.revision_try_auto_publish(revision_id=submitted.pk) is False


# --- queue and assignment --------------------------------------------------------------------------------------


def test_queue_is_oldest_first_without_own_work(world, submitted, make_user):
    bob, r1 = users(world)["bob"], users(world)["reviewer1"]
    later = submit(world["pruned"].current_revision, bob)
    Revision.objects.filter(pk=submitted.pk).update(submitted_at=timezone.now() - timedelta(hours=2))
    mine = {submitted.pk, later.pk}  # the demo world may hold other submissions
    queue = [r.pk for r in review_queue(r1)]
    assert [pk for pk in queue if pk in mine] == [submitted.pk, later.pk]
    assert queue == [r.pk for r in sorted(review_queue(r1), key=lambda r: (r.submitted_at, r.pk))]
    assert [r.pk for r in review_queue(bob) if r.pk in mine] == [submitted.pk]  # not his own
    assert not review_queue(bob).filter(variant__owner=bob).exists()
    approve(submitted, r1)
    entry = review_queue(r1).get(pk=submitted.pk)
    assert entry.approvals == 1 and entry.objections == 0


def test_self_assignment_and_maintainer_assignment(world, submitted):
    r1, r2, maintainer = users(world)["reviewer1"], users(world)["reviewer2"], users(world)["maintainer"]
    services.review_assign(revision=submitted, reviewer=r1, actor=r1)
    services.review_assign(revision=submitted, reviewer=r1, actor=r1)  # idempotent
    assert ReviewAssignment.objects.filter(revision=submitted).count() == 1
    with pytest.raises(PermissionDenied, match="only maintainers assign others"):
        services.review_assign(revision=submitted, reviewer=r2, actor=r1)
    services.review_assign(revision=submitted, reviewer=r2, actor=maintainer)
    assert Notification.objects.filter(user=r2, kind="review_requested").count() == 1
    assert not Notification.objects.filter(user=r1, kind="review_requested").exists()  # self-assignment
    with pytest.raises(PermissionDenied, match="Only reviewers"):
        services.review_assign(revision=submitted, reviewer=users(world)["bob"], actor=users(world)["bob"])
    services.review_unassign(revision=submitted, reviewer=r1, actor=r1)
    assert list(ReviewAssignment.objects.filter(revision=submitted).values_list("reviewer__username", flat=True)) == [
        "reviewer2"
    ]


def test_auto_assignment_picks_the_least_loaded_reviewers(
    world, settings, checklist_met, django_capture_on_commit_callbacks
):
    settings.MC_REVIEW_AUTO_ASSIGN = 2
    alice, bob = users(world)["alice"], users(world)["bob"]
    with django_capture_on_commit_callbacks(execute=True):
        first = submit(world["int8"].current_revision, alice)
    assert sorted(ReviewAssignment.objects.filter(revision=first).values_list("reviewer__username", flat=True)) == [
        "reviewer1",
        "reviewer2",
    ]  # all idle: ties broken by name
    with django_capture_on_commit_callbacks(execute=True):
        second = submit(world["pruned"].current_revision, bob)
    assert sorted(ReviewAssignment.objects.filter(revision=second).values_list("reviewer__username", flat=True)) == [
        "reviewer1",
        "reviewer3",
    ]  # reviewer3 was idle; reviewer1 ties reviewer2 on load and wins on name
    loads = {
        name: ReviewAssignment.objects.filter(reviewer__username=name).count()
        for name in ("reviewer1", "reviewer2", "reviewer3")
    }
    assert loads == {"reviewer1": 2, "reviewer2": 1, "reviewer3": 1}
    # Those assigned hear of it; nobody else does.
    assert Notification.objects.filter(kind="review_requested", user__username="reviewer3").count() == 1


def test_submission_notifies_reviewers_and_emails_them(world, checklist_met, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submit(world["int8"].current_revision, users(world)["alice"])
    notified = set(Notification.objects.filter(kind="review_requested").values_list("user__username", flat=True))
    assert notified == {"reviewer1", "reviewer2", "reviewer3"}
    assert sorted(m.to[0] for m in mail.outbox) == [
        "reviewer1@example.org",
        "reviewer2@example.org",
        "reviewer3@example.org",
    ]
    assert "alice/digits-mlp-int8" in mail.outbox[0].subject


def test_review_decided_notifies_the_author_unless_turned_off(world, submitted, django_capture_on_commit_callbacks):
    alice = users(world)["alice"]
    with django_capture_on_commit_callbacks(execute=True):
        services.review_submit(
            revision=submitted,
            reviewer=users(world)["reviewer1"],
            decision="request_changes",
            body="Please add **limitations**",
        )
    note = Notification.objects.get(user=alice, kind="review_decided")
    assert "requested changes" in note.title and note.data["decision"] == "request_changes"
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]
    NotificationPreference.objects.create(user=alice, kind="review_decided", in_app=False, email=False)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.review_submit(revision=submitted, reviewer=users(world)["reviewer2"], decision="comment", body="hm")
    assert Notification.objects.filter(user=alice, kind="review_decided").count() == 1
    assert mail.outbox == []


# --- comments --------------------------------------------------------------------------------------------------


def test_comments_thread_one_level_and_render_safely(world):
    alice, bob = users(world)["alice"], users(world)["bob"]
    variant = world["base"]
    top = services.comment_create(
        variant=variant, author=alice, body="Nice **model** <script>alert(1)</script> [x](javascript:alert(1))"
    )
    assert "<strong>model</strong>" in top.body_html
    assert "<script" not in top.body_html and "javascript:" not in top.body_html
    reply = services.comment_create(variant=variant, author=bob, body="thanks", parent=top)
    with pytest.raises(ValidationFailed) as err:
        services.comment_create(variant=variant, author=alice, body="deeper", parent=reply)
    assert "one level deep" in err.value.errors["parent"][0]
    with pytest.raises(ValidationFailed):
        services.comment_create(variant=world["int8"], author=alice, body="elsewhere", parent=top)


def test_comment_edit_window_and_author_only(world, settings):
    alice, bob = users(world)["alice"], users(world)["bob"]
    comment = services.comment_create(variant=world["base"], author=alice, body="first")
    with pytest.raises(PermissionDenied):
        services.comment_edit(comment=comment, actor=bob, body="mine now")
    edited = services.comment_edit(comment=comment, actor=alice, body="first, *edited*")
    assert edited.edited_at is not None and "<em>edited</em>" in edited.body_html
    Comment.objects.filter(pk=comment.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.MC_COMMENT_EDIT_WINDOW_S + 1)
    )
    with pytest.raises(Conflict, match="can be edited for"):
        services.comment_edit(comment=comment, actor=alice, body="too late")


def test_moderators_hide_comments(world):
    alice, maintainer = users(world)["alice"], users(world)["maintainer"]
    comment = services.comment_create(variant=world["base"], author=users(world)["bob"], body="spam spam")
    with pytest.raises(PermissionDenied):
        services.comment_hide(comment=comment, actor=alice, reason="x")
    with pytest.raises(ValidationFailed):
        services.comment_hide(comment=comment, actor=maintainer, reason="")
    hidden = services.comment_hide(comment=comment, actor=maintainer, reason="spam")
    assert hidden.is_hidden and hidden.hidden_by == maintainer
    with pytest.raises(Conflict):
        services.comment_edit(comment=comment, actor=users(world)["bob"], body="sneaky")
    services.comment_unhide(comment=comment, actor=maintainer)
    assert AuditEvent.objects.filter(verb__in=["comment.hide", "comment.unhide"]).count() == 2


# --- flags -----------------------------------------------------------------------------------------------------


def _contamination(world):  # type: ignore[no-untyped-def]
    return services.flag_create(
        variant=world["base"],
        reporter=users(world)["bob"],
        kind="benchmark_contamination",
        description="The digits test split is in the training data",
        evidence_excerpt="sample 17: 0,0,5,13,9,1 ...",
        benchmark=world["benchmark"],
    )


def test_flags_need_evidence_and_a_published_variant(world):
    bob = users(world)["bob"]
    with pytest.raises(ValidationFailed) as err:
        services.flag_create(variant=world["base"], reporter=bob, kind="spam")
    assert "evidence" in err.value.errors
    with pytest.raises(ValidationFailed):
        services.flag_create(variant=world["base"], reporter=bob, kind="spam", evidence_url="ftp://x")
    with pytest.raises(Conflict, match="published"):
        services.flag_create(variant=world["int8"], reporter=bob, kind="spam", evidence_url="https://x.example")
    flag = services.flag_create(
        variant=world["base"], reporter=bob, kind="misleading_card", evidence_url="https://example.org/issue"
    )
    assert flag.status == "open" and flag.revision == world["base"].current_revision
    with pytest.raises(Conflict, match="already have an open flag"):
        services.flag_create(variant=world["base"], reporter=bob, kind="misleading_card", evidence_excerpt="again")


def test_contamination_workflow_marks_and_clears_leaderboards(world, monkeypatch, django_capture_on_commit_callbacks):
    calls: list[tuple[str, dict]] = []
    import apps.leaderboards.services as lb

    monkeypatch.setattr(lb, "leaderboard_mark_contaminated", lambda **kw: calls.append(("mark", kw)))
    monkeypatch.setattr(lb, "leaderboard_clear_contamination", lambda **kw: calls.append(("clear", kw)))
    maintainer, commons = users(world)["maintainer"], users(world)["commons"]
    flag = _contamination(world)
    with django_capture_on_commit_callbacks(execute=True):
        flag = services.flag_resolve(flag=flag, actor=maintainer, action="ask_author", reason="Please explain")
    assert flag.status == "awaiting_author"
    # commons is an organization: its people (the maintainers, its admins) hear of it, not its account.
    assert Notification.objects.filter(user=maintainer, kind="flag_resolved", title__contains="asks you").exists()
    assert not Notification.objects.filter(user=commons).exists()
    with pytest.raises(PermissionDenied):
        services.flag_respond(flag=flag, actor=users(world)["bob"], body="not mine")
    flag = services.flag_respond(flag=flag, actor=maintainer, body="We trained on the train split only.")
    assert flag.status == "open" and flag.author_response.startswith("We trained")
    assert Notification.objects.filter(user=maintainer, kind="flag_resolved").exists()
    flag = services.flag_resolve(flag=flag, actor=maintainer, action="confirm", reason="overlap verified")
    assert flag.status == "upheld"
    assert calls == [
        ("mark", {"variant_id": world["base"].pk, "flag_id": flag.pk, "benchmark_slug": "digits", "actor": maintainer})
    ]
    flag = services.flag_resolve(flag=flag, actor=maintainer, action="dismiss", reason="we were wrong")
    assert calls[-1] == ("clear", {"flag_id": flag.pk, "actor": maintainer})
    with pytest.raises(InvalidTransition):
        services.flag_resolve(flag=flag, actor=maintainer, action="dismiss", reason="twice")
    with pytest.raises(Conflict):
        services.flag_respond(flag=flag, actor=commons, body="late")


def test_resolving_with_unpublish_takes_the_variant_down(world):
    maintainer = users(world)["maintainer"]
    flag = services.flag_create(
        variant=world["base"],
        reporter=users(world)["bob"],
        kind="license_violation",
        evidence_url="https://example.org/licence",
    )
    with pytest.raises(PermissionDenied):
        services.flag_resolve(flag=flag, actor=users(world)["reviewer1"], action="dismiss", reason="x")
    with pytest.raises(ValidationFailed):
        services.flag_resolve(flag=flag, actor=maintainer, action="unpublish", reason="")
    services.flag_resolve(flag=flag, actor=maintainer, action="unpublish", reason="licence is wrong")
    world["base"].refresh_from_db()
    assert not world["base"].is_public
    revision = world["base"].current_revision
    revision.refresh_from_db()
    assert revision.status == "unpublished" and "licence is wrong" in revision.status_reason
    assert Flag.objects.get(pk=flag.pk).resolution == "unpublish"


def test_confirmed_contamination_reaches_the_real_leaderboard_service(world):
    """Against h5's real leaderboard functions (no stubs): confirming and dismissing must not fail."""
    lb = pytest.importorskip("apps.leaderboards.services")
    if not hasattr(lb, "leaderboard_mark_contaminated"):
        pytest.skip("leaderboard_mark_contaminated not there yet")
    maintainer = users(world)["maintainer"]
    flag = _contamination(world)
    services.flag_resolve(flag=flag, actor=maintainer, action="confirm", reason="overlap verified")
    from apps.leaderboards.models import ContaminationMark

    assert ContaminationMark.objects.filter(variant=world["base"]).exists()
    services.flag_resolve(flag=flag, actor=maintainer, action="dismiss", reason="reversed")


# --- the checklist after approval (issue 12, finding 12) ---------------------------------------------------

MANUAL_ANSWERS = {
    "training-data-disclosed": {
        "status": "n/a",
        "justification": "A dynamic int8 quantization of commons/digits-mlp: no new training data.",
    },
    "contamination-statement": {
        "status": "met",
        "justification": "The digits benchmark scores the held-out 25% split the parent never saw.",
    },
    "reproducibility-recipe": {"status": "met", "evidence_url": "https://example.org/digits/build.py"},
}


def _answer(revision, key, actor, **changes):  # type: ignore[no-untyped-def]
    from apps.checklists.services import checklist_item_answer

    return checklist_item_answer(revision=revision, key=key, actor=actor, changes=changes)


def test_the_gate_reads_the_real_checklist(world):
    """No fallback: an unanswered checklist blocks publication, whatever else holds."""
    revision = submit(world["int8"].current_revision, users(world)["alice"])
    unmet = publication_gate_unmet(revision)
    assert [u for u in unmet if u.startswith("Checklist: ")] and any("training-data-disclosed" in u for u in unmet), (
        unmet
    )


def test_approved_before_the_checklist_is_finished_then_finished_and_published(world):
    alice, maintainer = users(world)["alice"], users(world)["maintainer"]
    revision = submit(world["int8"].current_revision, alice)
    succeed_job(revision, world["benchmark"], alice)
    approve(revision, users(world)["reviewer1"], users(world)["reviewer2"])
    assert revision.status == "approved"
    with pytest.raises(services.PublicationGateUnmet) as refused:
        services.revision_publish(revision=revision, actor=maintainer)
    assert all(u.startswith("Checklist: ") for u in refused.value.errors["gate"])

    # The author finishes the checklist on the approved revision: answers are taken, the approvals stand.
    for key, changes in MANUAL_ANSWERS.items():
        row = _answer(revision, key, alice, **changes)
        assert row.answered_by == alice
    revision.refresh_from_db()
    assert revision.status == "approved" and revision.number == 1
    assert review_standing(revision).approvals == ["reviewer1", "reviewer2"]
    # Items that need a reviewer's verification still need it.
    unmet = publication_gate_unmet(revision)
    assert len(unmet) == 2 and all("verif" in u for u in unmet), unmet
    with pytest.raises(services.PublicationGateUnmet):
        services.revision_publish(revision=revision, actor=maintainer)
    for key in ("training-data-disclosed", "contamination-statement"):
        _answer(revision, key, users(world)["reviewer3"], verified=True)
    # An answer that changes a verified item drops its verification, even now.
    _answer(
        revision,
        "contamination-statement",
        alice,
        status="met",
        justification="Trained on the 75% train split only; the 450 test digits were never seen.",
    )
    assert any("contamination-statement" in u for u in publication_gate_unmet(revision))
    _answer(revision, "contamination-statement", users(world)["reviewer3"], verified=True)
    assert publication_gate_unmet(revision) == []

    published = services.revision_publish(revision=revision, actor=maintainer, reason="gate holds")
    assert published.status == "published" and published.number == 1
    # Published, the checklist is closed.
    with pytest.raises(Conflict, match="published"):
        _answer(
            revision,
            "compute-energy",
            alice,
            status="met",
            justification="Quantization took 2 CPU-seconds on a laptop: about 0.00002 kWh.",
        )


def test_finishing_the_checklist_of_an_approved_revision_auto_publishes(
    world, settings, django_capture_on_commit_callbacks
):
    settings.MC_AUTO_PUBLISH = True
    alice, reviewer3 = users(world)["alice"], users(world)["reviewer3"]
    revision = submit(world["int8"].current_revision, alice)
    succeed_job(revision, world["benchmark"], alice)
    approve(revision, users(world)["reviewer1"], users(world)["reviewer2"])
    assert revision.status == "approved"
    with django_capture_on_commit_callbacks(execute=True):
        for key, changes in MANUAL_ANSWERS.items():
            _answer(revision, key, alice, **changes)
        _answer(revision, "training-data-disclosed", reviewer3, verified=True)
    revision.refresh_from_db()
    assert revision.status == "approved"
    with django_capture_on_commit_callbacks(execute=True):
        _answer(revision, "contamination-statement", reviewer3, verified=True)
    revision.refresh_from_db()
    assert revision.status == "published"
