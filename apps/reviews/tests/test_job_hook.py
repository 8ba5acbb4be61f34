"""Automatic publication after a worker's batch of jobs: without MC_AUTO_PUBLISH the hook reads nothing; with it,
one query finds the revisions under review that have a succeeded job in the batch, and each is tried as before."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.checklists.tests.factories import finished_job, finished_jobs, make_users
from apps.registry.models import Revision
from apps.reviews import services, subscribers

from .conftest import approve

pytestmark = pytest.mark.django_db


def test_without_auto_publish_a_batch_reads_nothing(world, submitted, settings, django_assert_num_queries):
    settings.MC_AUTO_PUBLISH = False
    ids = [finished_job(submitted, world["benchmark"], world["users"]["alice"]).pk for _ in range(3)]
    with django_assert_num_queries(0):
        subscribers.on_jobs_finished(ids)


def test_a_batch_publishes_each_revision_whose_gate_now_holds_once(world, submitted, settings, monkeypatch):
    settings.MC_AUTO_PUBLISH = True
    users = world["users"]
    approve(submitted, users["reviewer1"], users["reviewer2"])
    assert submitted.status == "approved"  # no job yet
    benchmark = world["benchmark"]
    batch = [
        finished_job(submitted, benchmark, users["alice"], status="failed").pk,
        finished_job(submitted, benchmark, users["alice"]).pk,
        finished_job(submitted, benchmark, users["alice"]).pk,  # two successes: one try
        finished_job(world["pruned"].current_revision, benchmark, users["bob"]).pk,  # a draft: not tried
    ]
    tried: list[int] = []
    real = services.revision_try_auto_publish

    def spy(*, revision_id):  # type: ignore[no-untyped-def]
        tried.append(revision_id)
        return real(revision_id=revision_id)

    monkeypatch.setattr(services, "revision_try_auto_publish", spy)
    subscribers.on_jobs_finished(batch + [max(batch) + 1000])
    submitted.refresh_from_db()
    assert submitted.status == "published" and tried == [submitted.pk]
    subscribers.on_jobs_finished(batch)  # hooks may run again: a published revision is not tried again
    assert tried == [submitted.pk]
    assert AuditEvent.objects.filter(verb="revision.published", target_id=str(submitted.pk)).count() == 1


def test_one_revision_failing_does_not_stop_the_others(world, settings, monkeypatch):
    settings.MC_AUTO_PUBLISH = True
    jobs = finished_jobs(3, benchmark=world["benchmark"], owners=make_users(3))
    tried: list[int] = []

    def flaky(*, revision_id):  # type: ignore[no-untyped-def]
        tried.append(revision_id)
        if len(tried) == 1:
            raise RuntimeError("a broken revision")
        return False

    monkeypatch.setattr(services, "revision_try_auto_publish", flaky)
    subscribers.on_jobs_finished([job.pk for job in jobs])
    assert tried == sorted(job.revision_id for job in jobs)


def test_with_auto_publish_a_batch_with_nothing_under_review_costs_one_query(
    world, settings, django_assert_num_queries
):
    """Failed jobs on revisions under review and succeeded jobs on published revisions: nothing to try."""
    settings.MC_AUTO_PUBLISH = True
    owners = make_users(4)
    for n in (5, 20):
        failed = finished_jobs(n, benchmark=world["benchmark"], owners=owners, status="failed", prefix=f"f{n}")
        succeeded = finished_jobs(n, benchmark=world["benchmark"], owners=owners, prefix=f"s{n}")
        Revision.objects.filter(pk__in=[job.revision_id for job in succeeded]).update(status="published")
        with django_assert_num_queries(1):
            subscribers.on_jobs_finished([job.pk for job in failed + succeeded])
