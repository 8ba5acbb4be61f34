"""What a submission reads as the platform's history grows (issue 16): the daily compute budget's check as a
namespace's day fills up, and the queue ETA as a queue's history grows. Every submission, `/api/v1/me/` and an
organization's detail read the first; every queued job's representation (a submission's answer, a job GET) the
second. Run by `make bench`; it prints numbers and `RATIO` lines, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> python tests/perf/bench_history.py \\
        [--sizes 1000,10000,50000] [--history 200000]

1. A throw-away database with one namespace, and its jobs finished over the last day, added in steps up to each of
   `--sizes` (written through the jobs table's triggers, like every write).
2. At each size, the p50 of
   - the check (`apps.benchmarks.selectors.quota_usage_row`: the hourly ComputeUsage rows plus the jobs of the
     window's first hour), against
   - the statement it replaced, which summed the compute seconds of every job in the window (the baseline).
3. What the triggers cost a worker: the UPDATE that finishes a chunk of 64 jobs, with the triggers and with them
   disabled, in transactions rolled back.
4. The queue grows to `--history` finished jobs and 1,000 queued ones: the p50 of a queued job's position and ETA
   (`queue_positions`, one statement), against the same with the index on the queue's latest successes
   (job_queue_recent_idx) dropped in a transaction that is rolled back (the baseline: what it cost before it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
from tests.perf.common import create_database, destroy_database, ratio_line  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
os.environ.setdefault("MC_VAR_DIR", "/tmp/mc-bench-history")

JOB_SUM = (
    "SELECT (SELECT COUNT(*) FROM {jobs} WHERE charged_to_id = %s AND status IN ('queued', 'running') "
    "AND counts_against_quota), (SELECT COALESCE(SUM(compute_seconds), 0) FROM {jobs} "
    "WHERE charged_to_id = %s AND finished_at >= %s AND counts_against_quota)"
)
ADD_JOBS = (
    "INSERT INTO {jobs} (benchmark_version, config, config_hash, status, queue, priority, attempts, max_attempts, "
    "cancel_requested, counts_against_quota, created_at, started_at, finished_at, worker_host, progress_done, "
    "progress_total, compute_seconds, failure_reason, failure_message, log_tail, benchmark_id, revision_id, "
    "submitted_by_id, dispatch_count, exclude_worker, is_spot_check, target_worker, charged_to_id) "
    "SELECT '1', '{{}}', md5(g::text), %s, 'bench.cpu', 0, 1, 3, false, true, now(), "
    "{finished} - interval '2 seconds', {finished}, '', 0, 0, 0.5, '', '', '', %s, %s, %s, 1, '', false, '', %s "
    "FROM generate_series(%s::bigint, %s::bigint) g"
)


def add_jobs(owner: Any, revision: Any, benchmark: Any, first: int, last: int, spread_s: float | None) -> None:
    """Jobs `first`..`last` of `owner`: succeeded and finished `spread_s` apart going back from now, or queued
    (spread_s None)."""
    from django.db import connection

    from apps.benchmarks.models import BenchmarkJob

    jobs = connection.ops.quote_name(BenchmarkJob._meta.db_table)
    finished = (
        "NULL::timestamptz" if spread_s is None else f"(now() - (g * {float(spread_s)!r} || ' seconds')::interval)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            ADD_JOBS.format(jobs=jobs, finished=finished),
            ["queued" if spread_s is None else "succeeded", benchmark.pk, revision.pk, owner.pk, owner.pk, first, last],
        )
        cursor.execute(f"VACUUM ANALYZE {jobs}")


def p50(fn: Callable[[], Any], runs: int = 200) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--history", type=int, default=200_000)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    old_name, _ = create_database()
    try:
        from datetime import timedelta

        from django.db import connection, transaction
        from django.utils import timezone

        from apps.accounts.models import User
        from apps.benchmarks.models import Benchmark, BenchmarkJob
        from apps.benchmarks.selectors import queue_positions, quota_usage_row
        from apps.registry.models import Revision, Variant

        if connection.vendor != "postgresql":
            print("the triggers' cost is measured on PostgreSQL only")
            return 0
        jobs = connection.ops.quote_name(BenchmarkJob._meta.db_table)
        owner = User.objects.create(username="busy-lab")
        variant = Variant.objects.create(owner=owner, name="sweep", relation="original", license="mit")
        revision = Revision.objects.create(variant=variant, number=1)
        benchmark = Benchmark.objects.create(
            slug="tiny", name="tiny", version="1", runner="noop", metrics=[{"name": "score", "primary": True}]
        )
        results: dict[int, tuple[float, float]] = {}
        done = 0
        for size in sizes:
            add_jobs(owner, revision, benchmark, done + 1, size, 86_000 / size)
            done = size
            since = timezone.now() - timedelta(days=1)

            def job_sum(since: Any = since) -> Any:
                with connection.cursor() as cursor:
                    cursor.execute(JOB_SUM.format(jobs=jobs), [owner.pk, owner.pk, since])
                    return cursor.fetchone()

            def check(since: Any = since) -> Any:
                return quota_usage_row(owner.pk, since)

            assert abs(float(job_sum()[1]) - check()[1]) < 1e-6, (job_sum(), check())
            results[size] = (p50(check), p50(job_sum))
            ours, baseline = results[size]
            print(
                f"{size:>7,} jobs finished in the last day: the check {ours * 1e3:.2f} ms, "
                f"the sum over the jobs {baseline * 1e3:.2f} ms (p50)"
            )
        big, small = sizes[-1], sizes[0]
        ratio_line(
            f"quota_check_{big}_vs_{small}",
            results[big][0] / results[small][0],
            ours=results[big][0] * 1e3,
            baseline=results[small][0] * 1e3,
            unit="ms",
        )
        ratio_line(
            f"quota_check_vs_job_sum_{big}",
            results[big][0] / results[big][1],
            ours=results[big][0] * 1e3,
            baseline=results[big][1] * 1e3,
            unit="ms",
        )

        # What a worker pays for the triggers: finishing a chunk of 64 jobs in one UPDATE.
        def finish_chunk(first: int, triggers: bool) -> float:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    if not triggers:
                        cursor.execute(f"ALTER TABLE {jobs} DISABLE TRIGGER USER")
                    started = time.perf_counter()
                    cursor.execute(
                        f"UPDATE {jobs} SET compute_seconds = compute_seconds + 1, finished_at = now() "  # noqa: S608
                        "WHERE id >= %s AND id < %s",
                        [first, first + 64],
                    )
                    elapsed = time.perf_counter() - started
                transaction.set_rollback(True)
            return elapsed

        first_id = BenchmarkJob.objects.order_by("pk").values_list("pk", flat=True).first() or 1
        with_triggers, without = [], []
        for i in range(60):
            start = first_id + (i % 50) * 64
            with_triggers.append(finish_chunk(start, True))
            without.append(finish_chunk(start, False))
        a, b = statistics.median(with_triggers), statistics.median(without)
        print(f"finishing 64 jobs in one UPDATE: {a * 1e3:.2f} ms with the triggers, {b * 1e3:.2f} ms without (p50)")
        ratio_line("job_finish_64_with_vs_without_usage_triggers", a / b, ours=a * 1e3, baseline=b * 1e3, unit="ms")

        # 4. The queue ETA as the queue's history grows.
        add_jobs(owner, revision, benchmark, done + 1, done + 1000, None)
        add_jobs(owner, revision, benchmark, done + 1001, done + 1000 + args.history, 86_000 / args.history)
        queued = BenchmarkJob.objects.filter(status="queued").order_by("-pk").first()
        assert queued is not None

        def position() -> Any:
            queue_positions([queued])
            return queued.queue_position, queued.queue_eta_s

        shown = position()
        ours = p50(position, 100)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX job_queue_recent_idx")
            assert position() == shown, (position(), shown)
            baseline = p50(position, 30)
            transaction.set_rollback(True)
        print(
            f"a queued job's position and ETA, {args.history:,} finished jobs and 1,000 queued in its queue: "
            f"{ours * 1e3:.2f} ms, {baseline * 1e3:.2f} ms without job_queue_recent_idx (p50; position {shown[0]})"
        )
        ratio_line(
            "queue_eta_with_vs_without_recent_index",
            ours / baseline,
            ours=ours * 1e3,
            baseline=baseline * 1e3,
            unit="ms",
        )
        return 0
    finally:
        destroy_database(old_name)


if __name__ == "__main__":
    raise SystemExit(main())
