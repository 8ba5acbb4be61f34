"""Issue 12, finding 1 for webhooks: an event about a revision (or a job on it) goes to `visible`-scoped
subscribers only when they may see that revision: everyone for a published one, the variant's insiders, reviewers
and maintainers otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from apps.notifications.events import announce_jobs_finished, announce_revision_submitted
from apps.notifications.models import WebhookDelivery, WebhookSubscription
from tests.visibility_world import build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    world = build_world()
    for name in ("alice", "carol", "rev", "maint"):
        WebhookSubscription.objects.create(
            owner=world["users"][name],
            url=f"https://example.org/{name}",
            events=["*"],
            scope="visible",
            secret="s" * 32,
        )
    return world


def _recipients(event: str) -> set[str]:
    return set(WebhookDelivery.objects.filter(event=event).values_list("subscription__owner__username", flat=True))


def test_job_finished_on_a_newer_draft_reaches_insiders_only(world):
    announce_jobs_finished([world["private_job"].pk])
    assert _recipients("job.finished") == {"alice", "rev", "maint"}


def test_job_finished_on_the_published_revision_reaches_every_visible_subscriber(world):
    announce_jobs_finished([world["public_job"].pk])
    assert _recipients("job.finished") == {"alice", "carol", "rev", "maint"}


def test_a_submitter_who_may_not_see_the_revision_hears_nothing_of_the_job(world):
    from apps.benchmarks.models import BenchmarkJob

    BenchmarkJob.objects.filter(pk=world["private_job"].pk).update(submitted_by=world["users"]["carol"])
    WebhookSubscription.objects.filter(owner=world["users"]["carol"]).update(scope="own")
    announce_jobs_finished([world["private_job"].pk])
    assert "carol" not in _recipients("job.finished")


def test_submission_of_a_newer_draft_is_not_announced_to_the_public(world):
    rev2 = world["rev2"]
    rev2.status = "submitted"
    announce_revision_submitted(revision=rev2, reviewers=[world["users"]["rev"]], actor=world["users"]["alice"])
    assert _recipients("variant.submitted") == {"alice", "rev", "maint"}
