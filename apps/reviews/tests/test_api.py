"""The review workflow over HTTP: the authorization matrix (roles, owners, token scopes, 404-not-403), errors as
problem+json, and flat query counts on every list."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.core.testing import assert_list_query_count_is_flat
from apps.registry.models import Revision, Variant
from apps.reviews import services
from apps.reviews.models import Comment, Flag, Review, ReviewAssignment

from .conftest import approve, succeed_job

pytestmark = pytest.mark.django_db

INT8 = "/api/v1/variants/alice/digits-mlp-int8/revisions/1/"
BASE = "/api/v1/variants/commons/digits-mlp/revisions/1/"


@pytest.fixture
def clients(world, client_for, api):  # type: ignore[no-untyped-def]
    u = world["users"]
    return {
        "anon": api,
        **{name: client_for(u[name]) for name in ("alice", "bob", "reviewer1", "reviewer2", "maintainer")},
    }


def _problem(resp, status):  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.content
    assert resp["Content-Type"].startswith("application/problem+json")
    return resp.json()


# --- the matrix on a revision under review (visible to its owner, reviewers and maintainers only) ---------------


@pytest.mark.parametrize(
    "path,method,body",
    [
        ("reviews/", "get", None),
        ("gate/", "get", None),
        ("reviews/", "post", {"decision": "approve"}),
        ("publish/", "post", {}),
        ("unpublish/", "post", {"reason": "x"}),
        ("reject/", "post", {"reason": "x"}),
        ("assign/", "post", {}),
        ("unassign/", "post", {}),
    ],
)
def test_a_revision_under_review_is_404_for_strangers(world, clients, submitted, path, method, body):
    from rest_framework.test import APIClient

    session = APIClient()
    session.force_login(world["users"]["bob"])  # a session is not scope-limited: only visibility answers
    _problem(getattr(session, method)(INT8 + path, body, format="json"), 404)
    resp = getattr(clients["bob"], method)(INT8 + path, body, format="json")
    if path in ("publish/", "unpublish/", "reject/"):
        # A contributor's token can never hold `admin`: refused before any lookup, exactly as for a revision
        # that does not exist, so the answer tells nothing.
        ghost = getattr(clients["bob"], method)(INT8.replace("digits-mlp-int8", "ghost") + path, body, format="json")
        assert _problem(resp, 403)["detail"] == _problem(ghost, 403)["detail"]
    else:
        _problem(resp, 404)
    anon = getattr(clients["anon"], method)(INT8 + path, body, format="json")
    assert anon.status_code == (404 if method == "get" else 401)


def test_unknown_variants_and_revisions_are_404(clients, submitted):
    for path in (
        "/api/v1/variants/alice/nope/revisions/1/reviews/",
        "/api/v1/variants/alice/digits-mlp-int8/revisions/7/reviews/",
        "/api/v1/variants/alice/digits-mlp-int8/revisions/99999999999999999999/reviews/",
    ):
        _problem(clients["maintainer"].get(path), 404)


def test_owner_sees_reviews_but_cannot_review_or_publish(clients, submitted):
    assert clients["alice"].get(INT8 + "reviews/").status_code == 200
    body = _problem(clients["alice"].post(INT8 + "reviews/", {"decision": "approve"}, format="json"), 403)
    assert "Only reviewers" in body["detail"]
    _problem(clients["alice"].post(INT8 + "publish/", {}, format="json"), 403)
    _problem(clients["alice"].post(INT8 + "assign/", {}, format="json"), 403)


def test_reviewer_reviews_but_cannot_publish(clients, submitted):
    resp = clients["reviewer1"].post(
        INT8 + "reviews/", {"decision": "request_changes", "body": "Fix <b>it</b><script>x()</script>"}, format="json"
    )
    assert resp.status_code == 201, resp.json()
    review = resp.json()
    assert {"id", "reviewer", "decision", "body", "stale", "created_at"} <= set(review)
    assert review["reviewer"] == "reviewer1" and review["stale"] is False
    assert review["body_html"] == "<p>Fix <b>it</b></p>"
    assert clients["reviewer1"].get(INT8).json()["status"] == "changes_requested"
    _problem(clients["reviewer1"].post(INT8 + "publish/", {}, format="json"), 403)
    _problem(clients["reviewer1"].post(INT8 + "reject/", {"reason": "x"}, format="json"), 403)


def test_reviewing_your_own_work_is_403_with_the_reason(world, clients, submitted, client_for):
    from apps.accounts.services import user_set_roles

    user_set_roles(user=world["users"]["alice"], roles=["reviewer"], actor=None)
    body = _problem(
        client_for(world["users"]["alice"]).post(INT8 + "reviews/", {"decision": "approve"}, format="json"), 403
    )
    assert "own work" in body["detail"]


def test_token_scopes_bound_reviews_and_maintainer_actions(world, submitted, client_for):
    no_review = client_for(world["users"]["reviewer1"], scopes=("read", "write"))
    body = _problem(no_review.post(INT8 + "reviews/", {"decision": "approve"}, format="json"), 403)
    assert "'review' scope" in body["detail"]
    no_admin = client_for(world["users"]["maintainer"], scopes=("read", "write", "review"))
    no_admin.credentials()  # the fixture adds `admin` for maintainers: mint one without it by hand
    from apps.accounts.services import token_create

    _, raw = token_create(user=world["users"]["maintainer"], name="no-admin", scopes=["read", "write"])
    no_admin.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = _problem(no_admin.post(INT8 + "publish/", {}, format="json"), 403)
    assert "'admin' scope" in body["detail"]


def test_bad_input_is_400_problem(clients, submitted):
    body = _problem(clients["reviewer1"].post(INT8 + "reviews/", {"decision": "maybe"}, format="json"), 400)
    assert "decision" in body["errors"]
    body = _problem(clients["reviewer1"].post(INT8 + "reviews/", {"decision": "comment"}, format="json"), 400)
    assert "body" in body["errors"]
    body = _problem(clients["maintainer"].post(INT8 + "reject/", {}, format="json"), 400)
    assert "reason" in body["errors"]
    _problem(clients["reviewer1"].post(INT8 + "reviews/", "not json", content_type="application/json"), 400)


def test_publish_refusal_is_409_with_every_unmet_condition(world, clients, submitted, checklist_met):
    checklist_met.append("Reproducibility recipe: unmet")
    body = _problem(clients["maintainer"].post(INT8 + "publish/", {}, format="json"), 409)
    assert body["type"].endswith("/publication-gate")
    gate = body["errors"]["gate"]
    assert len(gate) == 3 and gate[1] == "Checklist: Reproducibility recipe: unmet"
    view = clients["alice"].get(INT8 + "gate/").json()
    assert view["met"] is False and view["unmet"] == gate and view["required_approvals"] == 2


def test_publish_and_unpublish_through_the_api(world, clients, submitted):
    u = world["users"]
    approve(submitted, u["reviewer1"], u["reviewer2"])
    succeed_job(submitted, world["benchmark"], u["alice"])
    resp = clients["maintainer"].post(INT8 + "publish/", {"reason": "good"}, format="json")
    assert resp.status_code == 200, resp.json()
    assert resp.json()["status"] == "published" and resp.json()["number"] == 1
    assert clients["anon"].get(INT8 + "reviews/").status_code == 200  # public now
    again = _problem(clients["maintainer"].post(INT8 + "publish/", {}, format="json"), 409)
    assert again["allowed"] == ["unpublished"]
    _problem(clients["maintainer"].post(INT8 + "unpublish/", {}, format="json"), 400)
    resp = clients["maintainer"].post(INT8 + "unpublish/", {"reason": "licence question"}, format="json")
    assert resp.json()["status"] == "unpublished"


def test_stale_reviews_are_marked(world, clients, submitted):
    from apps.registry.services import revision_create

    services.review_submit(revision=submitted, reviewer=world["users"]["reviewer1"], decision="approve")
    services.review_submit(
        revision=submitted, reviewer=world["users"]["reviewer1"], decision="request_changes", body="hmm"
    )
    rows = clients["alice"].get(INT8 + "reviews/").json()["results"]
    assert [(r["decision"], r["superseded"], r["stale"]) for r in rows] == [
        ("approve", True, False),
        ("request_changes", False, False),
    ]
    revision_create(variant=world["int8"], actor=world["users"]["alice"])
    rows = clients["alice"].get(INT8 + "reviews/").json()["results"]
    assert all(r["stale"] for r in rows)


# --- queue ------------------------------------------------------------------------------------------------------


def test_queue_is_for_reviewers(clients, submitted):
    assert clients["anon"].get("/api/v1/reviews/queue/").status_code == 401
    _problem(clients["alice"].get("/api/v1/reviews/queue/"), 403)
    rows = clients["reviewer1"].get("/api/v1/reviews/queue/?page_size=100").json()["results"]
    assert ("alice/digits-mlp-int8", 1, []) in [(r["variant"], r["revision"], r["assignees"]) for r in rows]
    unassigned = clients["reviewer2"].get("/api/v1/reviews/queue/?assigned=none").json()["count"]
    assert clients["reviewer1"].post(INT8 + "assign/", {}, format="json").json()["assignees"] == ["reviewer1"]
    assert clients["reviewer1"].get("/api/v1/reviews/queue/?assigned=me").json()["count"] == 1
    assert clients["reviewer2"].get("/api/v1/reviews/queue/?assigned=me").json()["count"] == 0
    assert clients["reviewer2"].get("/api/v1/reviews/queue/?assigned=none").json()["count"] == unassigned - 1
    _problem(clients["reviewer2"].post(INT8 + "assign/", {"reviewer": "reviewer1"}, format="json"), 403)
    resp = clients["maintainer"].post(INT8 + "assign/", {"reviewer": "reviewer2"}, format="json")
    assert resp.json()["assignees"] == ["reviewer1", "reviewer2"]
    _problem(clients["maintainer"].post(INT8 + "assign/", {"reviewer": "ghost"}, format="json"), 400)
    _problem(clients["reviewer1"].get("/api/v1/reviews/queue/?assigned=everyone"), 400)
    assert clients["reviewer1"].post(INT8 + "unassign/", {}, format="json").json()["assignees"] == ["reviewer2"]
    _problem(clients["reviewer1"].post(INT8 + "unassign/", {}, format="json"), 404)


def _many_submitted(world, n):  # type: ignore[no-untyped-def]
    owner = world["users"]["bob"]
    for i in range(n):
        variant = Variant.objects.create(owner=owner, name=f"bulk-{Variant.objects.count()}-{i}", relation="finetune")
        revision = Revision.objects.create(
            variant=variant, number=1, status="submitted", created_by=owner, submitted_at=timezone.now()
        )
        Variant.objects.filter(pk=variant.pk).update(current_revision=revision, status="submitted")
        Review.objects.create(revision=revision, reviewer=world["users"]["reviewer2"], decision="approve")
        ReviewAssignment.objects.create(revision=revision, reviewer=world["users"]["reviewer1"])


def test_queue_query_count_is_flat(world, clients, submitted):
    services.review_assign(revision=submitted, reviewer=world["users"]["reviewer1"], actor=world["users"]["reviewer1"])
    assert_list_query_count_is_flat(
        clients["reviewer1"], "/api/v1/reviews/queue/?assigned=me", lambda: _many_submitted(world, 11), 12
    )


def test_review_list_query_count_is_flat(world, clients, submitted):
    services.review_submit(revision=submitted, reviewer=world["users"]["reviewer1"], decision="comment", body="1")

    def grow() -> None:
        for i in range(11):
            services.review_submit(
                revision=submitted, reviewer=world["users"]["reviewer2"], decision="comment", body=f"note {i}"
            )

    assert_list_query_count_is_flat(clients["alice"], INT8 + "reviews/", grow, 12)


# --- comments ---------------------------------------------------------------------------------------------------


def test_comments_matrix(world, clients, submitted):
    url = "/api/v1/variants/commons/digits-mlp/comments/"
    assert clients["anon"].get(url).status_code == 200
    assert clients["anon"].post(url, {"body": "hi"}, format="json").status_code == 401
    _problem(clients["bob"].get("/api/v1/variants/alice/digits-mlp-int8/comments/"), 404)
    _problem(
        clients["bob"].post("/api/v1/variants/alice/digits-mlp-int8/comments/", {"body": "hi"}, format="json"), 404
    )
    top = clients["bob"].post(url, {"body": "**Nice** <img src=x onerror=alert(1)>"}, format="json").json()
    assert "<strong>Nice</strong>" in top["body_html"] and "onerror" not in top["body_html"]
    reply = clients["alice"].post(url, {"body": "agreed", "parent": top["id"]}, format="json").json()
    body = _problem(clients["alice"].post(url, {"body": "deeper", "parent": reply["id"]}, format="json"), 400)
    assert "parent" in body["errors"]
    _problem(clients["alice"].post(url, {"body": "x", "parent": 999999}, format="json"), 400)
    listing = clients["anon"].get(url).json()["results"]
    assert [c["id"] for c in listing] == [top["id"]] and [r["id"] for r in listing[0]["replies"]] == [reply["id"]]
    # edit: the author only
    detail = f"/api/v1/comments/{top['id']}/"
    _problem(clients["alice"].patch(detail, {"body": "mine"}, format="json"), 403)
    assert clients["bob"].patch(detail, {"body": "edited"}, format="json").json()["edited_at"] is not None
    # hide: moderators only, with a reason; others see the place but not the text
    _problem(clients["alice"].post(detail + "hide/", {"reason": "x"}, format="json"), 403)
    _problem(clients["maintainer"].post(detail + "hide/", {}, format="json"), 400)
    assert clients["maintainer"].post(detail + "hide/", {"reason": "off-topic"}, format="json").json()["hidden"]
    seen = clients["anon"].get(url).json()["results"][0]
    assert seen["hidden"] and seen["body"] == "" and seen["hidden_reason"] == "off-topic"
    assert clients["maintainer"].get(url).json()["results"][0]["body"] == "edited"
    _problem(clients["maintainer"].post(detail + "hide/", {"reason": "again"}, format="json"), 409)
    assert not clients["maintainer"].post(detail + "unhide/", {}, format="json").json()["hidden"]
    _problem(clients["bob"].get("/api/v1/comments/99999999999999999999/"), 404)


def test_comment_on_a_draft_is_404_for_strangers_via_detail(world, clients, submitted):
    comment = services.comment_create(variant=world["int8"], author=world["users"]["alice"], body="note to self")
    _problem(clients["bob"].get(f"/api/v1/comments/{comment.pk}/"), 404)
    _problem(clients["bob"].patch(f"/api/v1/comments/{comment.pk}/", {"body": "x"}, format="json"), 404)
    assert clients["reviewer1"].get(f"/api/v1/comments/{comment.pk}/").status_code == 200


def test_comment_list_query_count_is_flat(world, clients):
    variant, bob = world["base"], world["users"]["bob"]
    top = services.comment_create(variant=variant, author=bob, body="first")
    services.comment_create(variant=variant, author=world["users"]["alice"], body="re", parent=top)

    def grow() -> None:
        for i in range(11):
            parent = services.comment_create(variant=variant, author=bob, body=f"c{i}")
            services.comment_create(variant=variant, author=world["users"]["alice"], body=f"r{i}", parent=parent)

    assert_list_query_count_is_flat(clients["bob"], "/api/v1/variants/commons/digits-mlp/comments/", grow, 12)


# --- flags ------------------------------------------------------------------------------------------------------


def test_flags_matrix(world, clients, submitted):
    url = "/api/v1/variants/commons/digits-mlp/flags/"
    assert (
        clients["anon"].post(url, {"kind": "spam", "evidence_url": "https://x.example"}, format="json").status_code
        == 401
    )
    _problem(
        clients["bob"].post(
            "/api/v1/variants/alice/digits-mlp-int8/flags/",
            {"kind": "spam", "evidence_url": "https://x.example"},
            format="json",
        ),
        404,
    )
    body = _problem(clients["bob"].post(url, {"kind": "spam"}, format="json"), 400)
    assert "evidence" in body["errors"]
    _problem(
        clients["bob"].post(
            url, {"kind": "benchmark_contamination", "evidence_excerpt": "x", "benchmark": "nope"}, format="json"
        ),
        400,
    )
    flag = (
        clients["bob"]
        .post(
            url,
            {"kind": "benchmark_contamination", "evidence_excerpt": "sample 17 ...", "benchmark": "digits"},
            format="json",
        )
        .json()
    )
    assert flag["status"] == "open" and flag["reporter"] == "bob" and flag["benchmark"] == "digits"
    # who sees it: moderators, the reporter, and the owner (without the reporter's name); nobody else
    assert clients["maintainer"].get("/api/v1/flags/").json()["count"] == 1
    # The owner's side (commons' admins are the maintainers, who moderate and so see the reporter): an owner who
    # is no moderator is covered by apps/registry/tests/test_orgs_variants.py.
    _problem(clients["alice"].get(f"/api/v1/flags/{flag['id']}/"), 404)
    assert clients["alice"].get("/api/v1/flags/").json()["count"] == 0
    assert clients["anon"].get("/api/v1/flags/").status_code == 401
    # resolve: moderators with a reason
    resolve = f"/api/v1/flags/{flag['id']}/resolve/"
    _problem(clients["bob"].post(resolve, {"action": "dismiss", "reason": "x"}, format="json"), 403)
    _problem(clients["alice"].post(resolve, {"action": "dismiss", "reason": "x"}, format="json"), 403)  # scope
    _problem(clients["alice"].post(f"/api/v1/flags/{flag['id']}/respond/", {"body": "x"}, format="json"), 404)
    _problem(clients["maintainer"].post(resolve, {"action": "dismiss"}, format="json"), 400)
    _problem(clients["maintainer"].post(resolve, {"action": "explode", "reason": "x"}, format="json"), 400)
    asked = clients["maintainer"].post(resolve, {"action": "ask_author", "reason": "Explain?"}, format="json")
    assert asked.json()["status"] == "awaiting_author"
    respond = f"/api/v1/flags/{flag['id']}/respond/"
    _problem(clients["bob"].post(respond, {"body": "x"}, format="json"), 403)
    # The commons organization's admins (the maintainers) answer for its variants.
    assert clients["maintainer"].post(respond, {"body": "No overlap."}, format="json").json()["status"] == "open"
    done = clients["maintainer"].post(resolve, {"action": "confirm", "reason": "overlap verified"}, format="json")
    assert done.json()["status"] == "upheld" and done.json()["resolved_by"] == "maintainer"
    again = _problem(clients["maintainer"].post(resolve, {"action": "confirm", "reason": "x"}, format="json"), 409)
    assert again["allowed"] == ["dismissed"]
    assert clients["maintainer"].get("/api/v1/flags/?status=upheld&kind=benchmark_contamination").json()["count"] == 1
    _problem(clients["maintainer"].get("/api/v1/flags/?status=bogus"), 400)


def test_flag_list_query_count_is_flat(world, clients):
    u = world["users"]

    def grow() -> None:
        for i in range(11):
            Flag.objects.create(
                variant=world["base"], reporter=u["alice"], kind="other", evidence_url=f"https://example.org/{i}"
            )

    Flag.objects.create(variant=world["base"], reporter=u["bob"], kind="spam", evidence_url="https://x.example")
    assert_list_query_count_is_flat(clients["maintainer"], "/api/v1/flags/", grow, 12)


def test_comment_and_review_models_store_sanitised_html(world, submitted):
    review = services.review_submit(
        revision=submitted,
        reviewer=world["users"]["reviewer1"],
        decision="comment",
        body='<a href="javascript:alert(1)" onclick="x()">x</a><script>bad()</script>',
    )
    assert (
        "javascript" not in review.body_html and "onclick" not in review.body_html and "bad()" not in review.body_html
    )
    assert Comment.objects.count() == 0


def test_comment_detail_etag_and_if_match(world, clients):
    comment = services.comment_create(variant=world["base"], author=world["users"]["bob"], body="v1")
    url = f"/api/v1/comments/{comment.pk}/"
    etag = clients["bob"].get(url)["ETag"]
    assert etag
    stale = clients["bob"].patch(url, {"body": "v2"}, format="json", HTTP_IF_MATCH='"nope"')
    assert _problem(stale, 412)["etag"] == etag
    fresh = clients["bob"].patch(url, {"body": "v2"}, format="json", HTTP_IF_MATCH=etag)
    assert fresh.status_code == 200 and fresh["ETag"] != etag
    _problem(clients["bob"].patch(url, {"body": "v3"}, format="json", HTTP_IF_MATCH=etag), 412)
