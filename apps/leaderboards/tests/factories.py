"""Builders for leaderboard tests: benchmarks, published variants and succeeded jobs with results."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob, JobResult
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant
from apps.registry.services import revision_transition, variant_create

_seq = itertools.count(1)

ACCURACY = [
    {"name": "accuracy", "higher_is_better": True, "primary": True},
    {"name": "latency_ms", "higher_is_better": False, "primary": False},
]


def make_benchmark(
    slug: str = "bench", *, metrics: list[dict[str, Any]] | None = None, version: str = "1", **fields: Any
) -> Benchmark:
    return Benchmark.objects.create(
        slug=slug,
        name=slug.title(),
        version=version,
        runner="onnx-classification",
        metrics=metrics or ACCURACY,
        task="image-classification",
        **fields,
    )


def publish(revision: Revision, actor: Any = None) -> Revision:
    for target in (RevisionStatus.SUBMITTED, RevisionStatus.APPROVED, RevisionStatus.PUBLISHED):
        revision.refresh_from_db()
        if revision.can_transition_to(target):
            revision = revision_transition(revision=revision, target=target, actor=actor, reason="test")
    return revision


def make_variant(
    owner: Any,
    name: str,
    *,
    relation: str = "original",
    parents: tuple[Variant, ...] = (),
    published: bool = True,
    actor: Any = None,
    **fields: Any,
) -> Variant:
    defaults = {"license": "apache-2.0", "parameters": 1000, "precision": "fp32", "task": "image-classification"}
    variant = variant_create(
        owner=owner, name=name, relation=relation, parents=list(parents), actor=actor or owner, **{**defaults, **fields}
    )
    if published:
        assert variant.current_revision is not None
        publish(variant.current_revision, actor)
    return Variant.objects.select_related("owner", "current_revision").get(pk=variant.pk)


def make_result(
    variant: Variant,
    benchmark: Benchmark,
    metrics: dict[str, Any],
    *,
    revision: Revision | None = None,
    verified: bool = False,
    version: str | None = None,
    status: str = JobStatus.SUCCEEDED,
    finished_at: Any = None,
    record: bool = True,
    verifies: BenchmarkJob | None = None,
) -> BenchmarkJob:
    """A finished job (and its result when it succeeded), then the leaderboard hook, as the engine does."""
    from apps.leaderboards.services import leaderboard_record_job

    revision = revision or variant.current_revision
    assert revision is not None
    n = next(_seq)
    job = BenchmarkJob.objects.create(
        revision=revision,
        benchmark=benchmark,
        benchmark_version=version or benchmark.version,
        config={"n": n},
        config_hash=f"{n:064x}",
        status=status,
        submitted_by=variant.owner,
        finished_at=finished_at or timezone.now() + timedelta(seconds=n),
        verifies=verifies,
    )
    if status == JobStatus.SUCCEEDED:
        JobResult.objects.create(
            job=job, attempt=1, metrics=metrics, runner="test", runner_version="1", verified=verified
        )
    if record:
        leaderboard_record_job(job.pk)
    return job
