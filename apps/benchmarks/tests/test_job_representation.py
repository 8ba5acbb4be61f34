"""JobSerializer writes its representation out (issue 16): it must stay exactly what DRF's field-by-field
`to_representation` gives, for jobs in every state, read the ways the API reads them."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import serializers

from apps.benchmarks import services
from apps.benchmarks.api.serializers import JobSerializer
from apps.benchmarks.choices import FailureReason, JobStatus
from apps.benchmarks.models import BenchmarkJob
from apps.benchmarks.selectors import job_with_results, jobs_for_serializer, queue_positions
from apps.benchmarks.tests.test_services import run_to_success, submit

pytestmark = pytest.mark.django_db


def drf_representation(job: BenchmarkJob) -> dict[str, Any]:
    """DRF's own output: ModelSerializer's loop over the declared fields."""
    return dict(serializers.ModelSerializer.to_representation(JobSerializer(), job))


@pytest.fixture
def jobs(alice, alice_variant, noop, maintainer) -> dict[str, BenchmarkJob]:  # type: ignore[no-untyped-def]
    queued = submit(alice, alice_variant, noop, steps=1)[0]
    waiting = submit(alice, alice_variant, noop, steps=2)[0]
    running = submit(alice, alice_variant, noop, steps=3)[0]
    claimed = services.job_claim(job_id=running.pk, worker="w1@host")
    assert claimed is not None
    services.job_progress(job_id=running.pk, attempt=claimed.attempts, done=3, total=7)
    succeeded = run_to_success(submit(alice, alice_variant, noop, steps=4)[0], metrics={"ok": 0.5})
    assert succeeded is not None
    failed = submit(alice, alice_variant, noop, steps=5)[0]
    claimed = services.job_claim(job_id=failed.pk, worker="w1@host")
    assert claimed is not None
    services.job_fail(
        job_id=failed.pk,
        attempt=claimed.attempts,
        reason=FailureReason.INVALID_CONFIG,
        message="no",
        log_tail="the runner said no",
    )
    cancelled = services.job_cancel(job=submit(alice, alice_variant, noop, steps=6)[0], actor=alice)
    verification, _ = services.job_verify(job=BenchmarkJob.objects.get(pk=succeeded.pk), actor=maintainer)
    out = {
        "queued": queued,
        "waiting": waiting,
        "running": running,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "verification": verification,
    }
    assert BenchmarkJob.objects.get(pk=failed.pk).status == JobStatus.FAILED
    assert BenchmarkJob.objects.get(pk=cancelled.pk).status == JobStatus.CANCELLED
    return out


def test_the_written_out_representation_is_drfs_for_every_state(jobs):  # type: ignore[no-untyped-def]
    for name, job in jobs.items():
        read = job_with_results(job.pk)
        queue_positions([read])
        ours, theirs = JobSerializer().represent(read), drf_representation(read)
        assert list(ours) == list(theirs) == JobSerializer.Meta.fields, name
        assert ours == theirs, name
    states = {name: job_with_results(job.pk).status for name, job in jobs.items()}
    assert set(states.values()) >= {"queued", "running", "succeeded", "failed", "cancelled"}
    succeeded = JobSerializer(job_with_results(jobs["succeeded"].pk)).data
    assert succeeded["result"]["metrics"] == {"ok": 0.5} and succeeded["finished_at"].endswith("Z")
    assert JobSerializer(job_with_results(jobs["verification"].pk)).data["verifies"] == jobs["succeeded"].pk
    failed = JobSerializer(job_with_results(jobs["failed"].pk)).data
    assert failed["failure"]["reason"] == FailureReason.INVALID_CONFIG and failed["error"] == failed["failure"]
    running = JobSerializer(job_with_results(jobs["running"].pk)).data
    assert running["progress"]["done"] == 3 and running["progress"]["total"] == 7


def test_a_list_and_a_just_submitted_job_are_represented_as_drf_would(jobs, alice, alice_variant, noop):  # type: ignore[no-untyped-def]
    listed = list(jobs_for_serializer(BenchmarkJob.objects.order_by("pk")))
    ours = JobSerializer(listed, many=True).data
    assert [dict(item) for item in ours] == [drf_representation(job) for job in listed]
    assert sorted(item["queue_position"] for item in ours if item["status"] == "queued") == [1, 2, 3]
    # The create views answer from the row the service saved, not from a fresh read.
    fresh = submit(alice, alice_variant, noop, steps=99)[0]
    queue_positions([fresh])
    assert JobSerializer(fresh).data == drf_representation(fresh)
    assert JobSerializer(fresh).data == JobSerializer(job_with_results(fresh.pk)).data
