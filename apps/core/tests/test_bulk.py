"""bulk_update_rows writes what the ORM's bulk_update would, in one statement per 500 rows on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.benchmarks.models import BenchmarkJob
from apps.core.bulk import bulk_update_rows
from apps.core.testing import count_queries

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(alice, maintainer):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create
    from apps.registry.models import Revision, Variant

    benchmark = benchmark_create(
        actor=maintainer, slug="noop", name="No-op", runner="noop", metrics=[{"name": "ok", "primary": True}]
    )
    variant = Variant.objects.create(owner=alice, name="bulk", relation="original", license="mit")
    revision = Revision.objects.create(variant=variant, number=1, created_by=alice)
    return [
        BenchmarkJob.objects.create(
            revision=revision,
            benchmark=benchmark,
            benchmark_version="1",
            config={"seed": i},
            config_hash=f"{i:064d}",
            queue="bench.cpu",
            submitted_by=alice,
            queued_at=timezone.now(),
        )
        for i in range(7)
    ]


def test_writes_every_kind_of_column_and_only_the_given_rows(jobs):  # type: ignore[no-untyped-def]
    now = timezone.now()
    for i, job in enumerate(jobs[:6]):
        job.status = "succeeded"
        job.finished_at = now + timedelta(seconds=i)
        job.progress_done = i
        job.compute_seconds = 0.5 * i
        job.config = {"seed": i, "nested": {"quote": "it's", "list": [1, None]}}
        job.log_tail = "line\n" * i
        job.not_before = None
    with count_queries() as ctx:
        assert (
            bulk_update_rows(
                BenchmarkJob,
                jobs[:6],
                ["status", "finished_at", "progress_done", "compute_seconds", "config", "log_tail", "not_before"],
            )
            == 6
        )
    if connection.vendor == "postgresql":
        assert len(ctx.captured_queries) == 1
    rows = {j.pk: j for j in BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs])}
    for i, job in enumerate(jobs[:6]):
        row = rows[job.pk]
        assert (row.status, row.finished_at, row.progress_done, row.compute_seconds, row.config, row.log_tail) == (
            "succeeded",
            now + timedelta(seconds=i),
            i,
            0.5 * i,
            job.config,
            "line\n" * i,
        )
    assert rows[jobs[6].pk].status == "queued" and rows[jobs[6].pk].finished_at is None


def test_nothing_to_write_is_no_query(jobs):  # type: ignore[no-untyped-def]
    with count_queries() as ctx:
        assert bulk_update_rows(BenchmarkJob, [], ["status"]) == 0
    assert ctx.captured_queries == []
