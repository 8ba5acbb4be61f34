"""Where a job's time goes, step by step (run by `make bench` after bench_pipeline.py; prints, asserts nothing).

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/breakdown_pipeline.py [--jobs 600] [--batch 300] [--chunk 64]

In one process, on a throw-away database (`test_<db>`): submits `--jobs` no-op jobs with `jobs_submit_batch`,
then for each chunk of `--chunk` ids (what the dispatcher puts in one message; 1: a message per job) calls
exactly what a worker's `run_jobs` task calls -- `jobs_claim`, `jobs_dispatch`, `execute_jobs` (the `noop`
runner in process, then `jobs_complete`) -- and times every step, and every subscriber of JOB_FINISHED_HOOKS
separately, per job. No broker round trip is included (the dispatcher
does publish to the configured broker), so the sum is the database and Python cost of the engine and of its
subscribers: what bench_pipeline.py's workers pay per job on top of a raw Celery task.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT), str(ROOT / "tests" / "perf")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
os.environ.setdefault("MC_VAR_DIR", "/tmp/mc-bench-breakdown")
# The bench submits as a contributor; noop is a maintainers' runner in production (MC_MAINTAINER_ONLY_RUNNERS).
os.environ.setdefault("MC_MAINTAINER_ONLY_RUNNERS", "")

import bench_pipeline  # noqa: E402 - after sys.path and the settings module are set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--variants", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=64, help="job ids per message (MC_DISPATCH_CHUNK's default)")
    args = parser.parse_args()
    old = bench_pipeline.setup()
    try:
        report(args)
    finally:
        bench_pipeline.teardown(old)


def report(args: Any) -> None:
    from django.db import connection, reset_queries

    from apps.benchmarks import hooks, services
    from apps.benchmarks.dispatch import jobs_dispatch
    from workers import execution

    world = bench_pipeline.make_world(args.variants)
    spent: dict[str, float] = defaultdict(float)
    queries: dict[str, int] = defaultdict(int)

    def timed(name: str, fn: Any) -> Any:
        def call(*a: Any, **kw: Any) -> Any:
            before = len(connection.queries)
            started = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - started
                queries[name] += len(connection.queries) - before

        return call

    hooks.JOB_FINISHED_HOOKS[:] = [
        timed(f"  hook {fn.__module__}.{fn.__name__}", fn) for fn in hooks.JOB_FINISHED_HOOKS
    ]
    complete = services.jobs_complete
    execution.services.jobs_complete = timed("  jobs_complete (+ the hooks, on commit)", complete)  # type: ignore
    connection.force_debug_cursor = True  # count queries
    try:
        revisions, benchmark = world["revisions"], world["benchmark"]
        submit = timed("jobs_submit_batch (per job)", services.jobs_submit_batch)
        ids: list[int] = []
        for start in range(0, args.jobs, args.batch):
            seeds = [bench_pipeline.next_seed() for _ in range(min(args.batch, args.jobs - start))]
            outcome = submit(
                actor=world["submitter"], items=[(revisions[s % len(revisions)], benchmark, {"seed": s}) for s in seeds]
            )
            ids.extend(job.pk for job, _ in outcome)
            reset_queries()
        claim = timed("jobs_claim", services.jobs_claim)
        dispatch = timed("jobs_dispatch", jobs_dispatch)
        execute = timed("execute_jobs", execution.execute_jobs)
        started = time.perf_counter()
        for start in range(0, len(ids), max(1, args.chunk)):
            jobs = claim(job_ids=ids[start : start + max(1, args.chunk)], worker="breakdown@localhost")
            dispatch(queue=jobs[0].queue, force=False)
            execute(jobs)
            reset_queries()
        total = time.perf_counter() - started
    finally:
        execution.services.jobs_complete = complete  # type: ignore[attr-defined]
        connection.force_debug_cursor = False
    n = len(ids)
    print(f"{n} no-op jobs in chunks of {args.chunk}, one process, {connection.vendor}; per job:")
    for name in (
        "jobs_submit_batch (per job)",
        "jobs_claim",
        "jobs_dispatch",
        "execute_jobs",
        "  jobs_complete (+ the hooks, on commit)",
        *[k for k in spent if k.startswith("  hook")],
    ):
        print(f"  {name:72} {spent[name] / n * 1000:7.2f} ms {queries[name] / n:6.1f} queries")
    print(f"  {'claim + dispatch + execute':72} {total / n * 1000:7.2f} ms  -> {n / total:6.1f} jobs/s in one process")


if __name__ == "__main__":
    main()
