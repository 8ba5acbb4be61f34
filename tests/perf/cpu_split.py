"""Where REST submission spends its CPU (issue 16): one round of bench_rest_jobs.py's `POST /api/v1/jobs/` (or,
with --batch N, `POST /api/v1/jobs/batch/` of N jobs) from 4 clients, drained by 2 workers, with the CPU time
(user + system, from /proc) of each group of processes over the round, per job, and the claims' sizes (jobs
claimed together share their `started_at`). Not part of `make bench`; it prints, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/cpu_split.py [--jobs 300] [--batch 1]

The PostgreSQL and Redis groups are every process of those servers on the machine (pgrep): run it alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "platform"), str(Path(__file__).resolve().parents[2])]

from tests.perf import bench_rest_jobs  # noqa: E402 - sets the environment the workers share
from tests.perf.common import children_of  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree(pid: int) -> list[int]:
    return [pid, *(p for child in children_of(pid) for p in tree(child))]


def pgrep(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1, help="jobs per request (1: POST /jobs/, else /jobs/batch/)")
    args = parser.parse_args()
    with bench_rest_jobs.rest_platform(500, 2) as (world, token, workers, web):
        from django.db import connection

        from apps.benchmarks.models import BenchmarkJob

        bench_rest_jobs.rest_round(web.url, token, world, 40, 4, 1)  # warm every process
        groups: dict[str, Callable[[], list[int]]] = {
            "workers": lambda: [p for w in workers for p in tree(w.proc.pid)],
            "gunicorn": lambda: tree(web.proc.pid),
            "postgresql": lambda: pgrep("postgres"),
            "redis": lambda: pgrep("redis-server"),
            "client": lambda: [os.getpid()],
        }
        first = (BenchmarkJob.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
        before = {name: sum(cpu_s(p) for p in pids()) for name, pids in groups.items()}
        elapsed = bench_rest_jobs.rest_round(web.url, token, world, args.jobs, 4, args.batch)
        after = {name: sum(cpu_s(p) for p in pids()) for name, pids in groups.items()}
        per = "one" if args.batch == 1 else str(args.batch)
        print(
            f"{args.jobs} jobs, {per} per request, in {elapsed:.2f} s = {args.jobs / elapsed:.1f} jobs/s; CPU per job:"
        )
        for name in groups:
            print(f"  {name:11s} {(after[name] - before[name]) / args.jobs * 1000:6.1f} ms")
        total = sum(after[name] - before[name] for name in groups)
        print(f"  {'all':11s} {total / args.jobs * 1000:6.1f} ms")
        starts = list(BenchmarkJob.objects.filter(pk__gte=first).values_list("started_at", flat=True))
        claims = len(set(starts))
        print(f"claims: {claims} for {len(starts)} jobs, {len(starts) / max(1, claims):.2f} jobs a claim")
        connection.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
