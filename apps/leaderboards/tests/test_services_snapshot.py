"""Issue 12, finding 2 on the boards: a public variant's board columns (licence, precision, ...) are its last
published revision's, so an owner's unreviewed draft edits never show on (or filter) the public leaderboards."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.leaderboards.models import LeaderboardEntry
from apps.leaderboards.services import leaderboard_record_jobs, leaderboard_refresh_variant
from apps.registry.services import revision_transition
from tests.visibility_world import build_world

pytestmark = pytest.mark.django_db


def test_board_columns_are_the_published_snapshot_until_the_draft_is_published():
    world = build_world()
    leaderboard_record_jobs([world["public_job"].pk])
    leaderboard_refresh_variant(variant_id=world["pub"].pk)  # as after a draft edit (VARIANT_UPDATED_HOOKS)
    entry = LeaderboardEntry.objects.get(variant=world["pub"], revision=world["rev1"])
    assert (entry.license, entry.precision, entry.listed) == ("apache-2.0", "fp16", True)
    assert [p[1] for p in entry.parents] == ["commons/vis-base"]
    anonymous = APIClient()
    assert [r["variant"] for r in anonymous.get("/api/v1/leaderboards/vis-bench/?license=mit").json()["results"]] == []
    assert [
        r["variant"] for r in anonymous.get("/api/v1/leaderboards/vis-bench/?license=apache-2.0").json()["results"]
    ] == ["alice/vis-pub"]

    maint = world["users"]["maint"]
    for target in ("submitted", "approved", "published"):
        revision_transition(revision=world["rev2"], target=target, actor=maint)
    leaderboard_refresh_variant(variant_id=world["pub"].pk)
    entry.refresh_from_db()
    assert (entry.license, entry.precision) == ("mit", "int8")
    assert [p[1] for p in entry.parents] == ["commons/vis-other-base"]
