"""`make bench`: run every benchmark script in tests/perf/ against the configured PostgreSQL and Redis.

Each script prints ratios against a baseline measured in the same run; nothing here asserts timings.
Defaults point at the local servers; override DATABASE_URL / CELERY_BROKER_URL to use others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPTS = [
    ("job pipeline vs raw Celery (SPEC §6): 2,000 jobs submitted in batches of 500", "bench_pipeline.py", []),
    (
        "job pipeline vs raw Celery: the same, one job_submit call per job",
        "bench_pipeline.py",
        ["--batch", "1", "--rounds", "1", "--idle", "0"],
    ),
    ("where a job's time goes, step by step", "breakdown_pipeline.py", []),
    ("leaderboard API vs bare SQL, and 10x growth (SPEC §6)", "bench_leaderboard.py", []),
    (
        "1 GiB resumable upload and download vs a static file server, web worker RSS (issue 13)",
        "bench_transfers.py",
        [],
    ),
]


def main() -> int:
    env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/bench"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"),
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
    }
    failures = 0
    for title, script, args in SCRIPTS:
        print(f"\n=== {title}: {script}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / script), *args], cwd=ROOT, env=env)
        failures += rc != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
