"""Issue 12, finding 1 for the review workflow: the reviews and publication gate of a newer draft (or submitted)
revision of a published variant are a 404 to everyone but its insiders; comments and flags follow the variant."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.registry.services import revision_transition
from apps.reviews.models import Review
from apps.reviews.selectors import comment_for_user_or_404, reviews_visible_to
from tests.visibility_world import build_world, role_clients

pytestmark = pytest.mark.django_db
R2 = "/api/v1/variants/alice/vis-pub/revisions/2"


@pytest.fixture
def world() -> dict[str, Any]:
    world = build_world()
    # Revision 2 goes to review and gets a reviewer's comment: still not public.
    revision_transition(revision=world["rev2"], target="submitted", actor=world["users"]["alice"])
    world["review"] = Review.objects.create(
        revision=world["rev2"], reviewer=world["users"]["rev"], decision="comment", body="draft-only remark"
    )
    return world


@pytest.fixture
def clients(world) -> dict[str, APIClient]:
    return role_clients(world)


def test_reviews_and_gate_of_a_submitted_revision_of_a_published_variant(clients):
    for role, client in clients.items():
        insider = role in ("owner", "reviewer", "maintainer")
        for path in (f"{R2}/reviews/", f"{R2}/gate/"):
            response = client.get(path)
            assert response.status_code == (200 if insider else 404), (role, path)
            if not insider:
                assert b"draft-only remark" not in response.content
        # The published revision's stay public.
        assert client.get("/api/v1/variants/alice/vis-pub/revisions/1/gate/").status_code == 200, role
    assert (
        clients["other"].post(f"{R2}/reviews/", {"decision": "comment", "body": "x"}, format="json").status_code == 404
    )


def test_reviews_visible_to_follows_the_revision(world):
    from django.contrib.auth.models import AnonymousUser

    for who, user in {"anonymous": AnonymousUser(), **world["users"]}.items():
        visible = reviews_visible_to(user).filter(pk=world["review"].pk).exists()
        assert visible is (who in ("alice", "rev", "maint")), who


def test_comments_follow_the_variant(world):
    from django.contrib.auth.models import AnonymousUser

    assert comment_for_user_or_404(AnonymousUser(), world["comment"].pk).pk == world["comment"].pk
