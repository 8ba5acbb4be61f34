"""Rows as other apps leave them, for checklist tests (and the notifications' and reviews' hook tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

TERMINAL = ("succeeded", "failed", "cancelled", "timed_out")


def finished_job(
    revision: Any, benchmark: Any, user: Any, *, status: str = "succeeded", verified: bool = False, verifies: Any = None
) -> Any:
    """A job row in the state the engine leaves it, with its result when it succeeded."""
    from django.utils import timezone

    from apps.benchmarks.models import BenchmarkJob, JobResult

    job = BenchmarkJob.objects.create(
        revision=revision,
        benchmark=benchmark,
        benchmark_version=benchmark.version,
        config={"batch_size": 64},
        config_hash=hashlib.sha256(f"{revision.pk}-{BenchmarkJob.objects.count()}".encode()).hexdigest(),
        queue="bench.cpu",
        submitted_by=user,
        status=status,
        attempts=1,
        verifies=verifies,
        failure_reason="runner_error" if status == "failed" else "",
        finished_at=timezone.now() if status in TERMINAL else None,
    )
    if status == "succeeded":
        JobResult.objects.create(
            job=job,
            attempt=1,
            metrics={"accuracy": 0.97},
            runner="onnx-classification",
            runner_version="1",
            verified=verified,
            **({"verification_status": "verified"} if verified else {}),
        )
    return job


def job_finished(*job_ids: int) -> None:
    """What the engine does after the commit that finished jobs or changed a verification: one call, all ids."""
    from apps.benchmarks.hooks import run_job_finished_hooks

    run_job_finished_hooks(list(job_ids))


def submitted_revisions(n: int, *, owners: Sequence[Any], prefix: str = "batch") -> list[Any]:
    """`n` new variants (owners taken in turn), each with a submitted revision 1 and its checklist."""
    from django.utils import timezone

    from apps.checklists.services import checklist_ensure
    from apps.registry.models import Revision, Variant

    revisions = []
    for i in range(n):
        owner = owners[i % len(owners)]
        variant = Variant.objects.create(
            owner=owner, name=f"{prefix}-{i}", relation="original", license="MIT", status="submitted"
        )
        revision = Revision.objects.create(
            variant=variant, number=1, status="submitted", created_by=owner, submitted_at=timezone.now()
        )
        variant.current_revision = revision
        variant.save(update_fields=["current_revision"])
        checklist_ensure(revision=revision.pk)
        revisions.append(Revision.objects.select_related("variant__owner").get(pk=revision.pk))
    return revisions


def finished_jobs(
    n: int, *, benchmark: Any, owners: Sequence[Any], status: str = "succeeded", prefix: str = "batch"
) -> list[Any]:
    """A worker's batch: `n` finished jobs, each on the submitted revision of its own new variant, each submitted
    by its variant's owner."""
    return [
        finished_job(revision, benchmark, revision.variant.owner, status=status)
        for revision in submitted_revisions(n, owners=owners, prefix=prefix)
    ]


def make_users(n: int, prefix: str = "batcher") -> list[Any]:
    from tests.factories import UserFactory

    return [UserFactory(username=f"{prefix}{i}") for i in range(n)]
