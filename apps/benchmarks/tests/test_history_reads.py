"""The reads every submission and every queued job's representation make stay index lookups whatever the history
(issue 16): pinned by their plans, with sequential scans and sorts priced out so that the tiny tables of a test do
not hide a plan that would scan a busy platform's jobs. Timings are for `tests/perf/bench_history.py`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.benchmarks import selectors
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob

pytestmark = pytest.mark.django_db


def plan(sql: str, params: list) -> str:  # type: ignore[type-arg]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's")


def test_a_queues_recent_successes_are_read_backwards_from_an_index_without_a_sort():
    table = connection.ops.quote_name(BenchmarkJob._meta.db_table)
    stats = selectors._QUEUE_STATS_SQL.format(table=table, duration=selectors._duration_sql())
    shown = plan(stats, ["bench.cpu", "bench.cpu", "bench.cpu"])
    assert "Index Scan Backward using job_queue_recent_idx" in shown, shown
    assert "Sort" not in shown, shown
    orm = (
        BenchmarkJob.objects.filter(
            queue="bench.cpu", status=JobStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:50]
    )
    sql, params = orm.query.sql_with_params()
    shown = plan(sql, list(params))
    assert "job_queue_recent_idx" in shown and "Sort" not in shown, shown


def test_the_quota_check_reads_hourly_rows_and_one_hour_of_jobs_by_index(alice):
    since = timezone.now() - timedelta(days=1)
    captured: list[tuple[str, list]] = []  # type: ignore[type-arg]

    def capture(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        captured.append((sql, list(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        selectors.quota_usage_row(alice.pk, since)
    ((sql, params),) = captured
    shown = plan(sql, params)
    assert "Index Scan using compute_usage_key" in shown, shown
    # the jobs are read for the window's first hour only: both ends of it bound the index range
    window = [line for line in shown.splitlines() if "Index Cond" in line and "finished_at >=" in line]
    assert len(window) == 1 and "finished_at <" in window[0] and "charged_to_id" in window[0], shown
    assert "Seq Scan" not in shown, shown
