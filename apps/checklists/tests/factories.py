"""Rows as other apps leave them, for checklist tests."""

from __future__ import annotations

import hashlib
from typing import Any


def finished_job(revision: Any, benchmark: Any, user: Any, *, status: str = "succeeded", verified: bool = False,
                 verifies: Any = None) -> Any:
    """A job row in the state the engine leaves it, with its result when it succeeded."""
    from apps.benchmarks.models import BenchmarkJob, JobResult

    job = BenchmarkJob.objects.create(
        revision=revision, benchmark=benchmark, benchmark_version=benchmark.version, config={"batch_size": 64},
        config_hash=hashlib.sha256(f"{revision.pk}-{BenchmarkJob.objects.count()}".encode()).hexdigest(),
        queue="bench.cpu", submitted_by=user, status=status, attempts=1, verifies=verifies,
        failure_reason="runner_error" if status == "failed" else "",
    )
    if status == "succeeded":
        JobResult.objects.create(job=job, attempt=1, metrics={"accuracy": 0.97}, runner="onnx-classification",
                                 runner_version="1", verified=verified,
                                 **({"verification_status": "verified"} if verified else {}))
    return job


def job_finished(job_id: int) -> None:
    """What the engine does after the commit that finished a job or changed a verification."""
    from apps.benchmarks.hooks import run_job_finished_hooks

    run_job_finished_hooks(job_id)
