"""Job pipeline throughput (SPEC §6). Run by `make bench`; it prints numbers, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/bench_pipeline.py [--jobs 2000] [--workers 2] [--concurrency 1] [--rounds 2] \\
            [--batch 500] [--quick-buffer N] [--chunk N]

1. Creates a throw-away database (`test_<db>`, destroyed at the end), migrates it, and makes a `noop` benchmark,
   a variant and a submitter whose quota allows every job.
2. Starts `--workers` real `celery worker` processes (each `--concurrency` pool processes) on the configured
   broker, consuming both the engine's queue (`bench.cpu`) and a raw queue.
3. Each round measures, on the same workers, Redis and PostgreSQL:
   - raw Celery: `--jobs` no-op tasks published with `apply_async` and drained (each task only INCRs a Redis
     counter, so completion can be seen); end to end, from the first publish to the last task done;
   - the pipeline: `--jobs` jobs submitted through the service layer (`jobs_submit_batch` in batches of
     `--batch`, what `POST /api/v1/jobs/batch/` calls, or `job_submit` one by one with `--batch 1`: validation,
     submission checks, dedupe, quota with the submitter row locked, audit, fair-share dispatch after commit),
     sent to the broker by the dispatcher (no-op jobs take the in-process lane: up to `--chunk` ids per message,
     `--quick-buffer` jobs sent ahead; both default to the settings, MC_DISPATCH_CHUNK and
     MC_DISPATCH_QUICK_BUFFER), each
     claimed, run by the `noop` runner and its result written by a worker, and the job-finished subscribers
     (leaderboards, notifications, checklists) run on it; end to end, from the first submission to the last
     result.
   It prints both throughputs, their ratio (target >= 0.5), and the time each job spent from commit to claim
   (p50/p95) in that burst.
4. Then the idle latency: single jobs submitted one at a time into an empty queue, commit -> claim p50/p95.

Adaptive spot checks are off here (MC_SPOT_CHECKS=0): with them, every job of a new submitter is run twice,
which is a policy, not pipeline overhead. `--without-hooks` also drops the other apps' job-finished
subscribers in the workers, to tell the engine's own cost from theirs.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
from tests.perf.common import ratio_line  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelcommons.settings.test")
os.environ.setdefault("MC_VAR_DIR", "/tmp/mc-bench-pipeline")
# The bench submits as a contributor; noop is a maintainers' runner in production (MC_MAINTAINER_ONLY_RUNNERS).
os.environ.setdefault("MC_MAINTAINER_ONLY_RUNNERS", "")

RAW_QUEUE = "bench.raw"
COUNTER_KEY = "mc-bench-pipeline-done"
WORKER_ENV = {
    "MC_SPOT_CHECKS": "0",
    "MC_JOB_HEARTBEAT_S": "5",
    "LOG_LEVEL": "WARNING",
}

try:  # the raw no-op task, imported by the workers with `-I tests.perf.bench_pipeline`
    from celery import shared_task
    from celery.signals import worker_process_init

    @worker_process_init.connect
    def _without_subscribers(**_: Any) -> None:
        """--without-hooks: measure the engine alone, without the apps subscribed to finished jobs."""
        if os.environ.get("MC_BENCH_WITHOUT_HOOKS") == "1":
            from apps.benchmarks.hooks import JOB_FINISHED_HOOKS

            JOB_FINISHED_HOOKS.clear()

    @shared_task(name="bench.raw_noop", ignore_result=True, acks_late=True)
    def raw_noop(i: int) -> None:
        """No work at all, except telling the bench it ran."""
        from modelcommons.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.client.incr(COUNTER_KEY)
except ImportError:  # pragma: no cover - celery is a core dependency
    pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def setup() -> Any:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        print(f"note: running on {connection.vendor}; the SPEC target is measured on PostgreSQL (set DATABASE_URL)")
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        print(
            f"note: broker {settings.CELERY_BROKER_URL}; the SPEC target is measured on Redis (set CELERY_BROKER_URL)"
        )
    settings.DEBUG = False
    settings.MC_SPOT_CHECKS = False
    return connection.creation.create_test_db(verbosity=0, autoclobber=True)


def teardown(old_name: Any) -> None:
    from django.db import connection

    connection.creation.destroy_test_db(old_name, verbosity=0)


def make_world(variants: int) -> dict[str, Any]:
    """A maintainer, a submitter whose quota allows everything, the `noop` benchmark, and `variants` published
    variants with one revision each (jobs are spread over them, as a real queue's would be)."""
    from apps.accounts.models import User
    from apps.accounts.services import user_set_roles
    from apps.benchmarks.services import benchmark_create
    from apps.registry.models import Revision, Variant

    maintainer = User.objects.create_user("bench-maintainer", password="x")
    user_set_roles(user=maintainer, roles=["maintainer"], actor=None)
    submitter = User.objects.create_user(
        "bench-submitter", password="x", max_active_jobs=10**6, daily_compute_seconds=10**9
    )
    benchmark = benchmark_create(
        actor=maintainer, slug="noop", name="No-op", runner="noop", metrics=[{"name": "ok", "primary": True}]
    )
    card = "# bench\n\n" + "A card long enough. " * 20
    rows = Variant.objects.bulk_create(
        [
            Variant(
                owner=submitter,
                name=f"bench-model-{i}",
                relation="original",
                license="apache-2.0",
                card=card,
                status="published",
                is_public=True,
            )
            for i in range(variants)
        ]
    )
    revisions = Revision.objects.bulk_create(
        [Revision(variant=v, number=1, created_by=submitter, status="published") for v in rows]
    )
    for variant, revision in zip(rows, revisions, strict=True):
        variant.current_revision = revision
    Variant.objects.bulk_update(rows, ["current_revision"])
    revisions = list(Revision.objects.select_related("variant").filter(variant__in=rows).order_by("id"))
    return {"submitter": submitter, "benchmark": benchmark, "revisions": revisions}


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s.get("USER") or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth + '@' if auth else ''}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Worker:
    def __init__(self, index: int, concurrency: int, quick_buffer: int, chunk: int, without_hooks: bool = False):
        from django.conf import settings

        self.name = f"bench{index}-{uuid.uuid4().hex[:4]}"
        self.log_path = Path(settings.VAR_DIR) / f"{self.name}.log"
        env = {
            **os.environ,
            **WORKER_ENV,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "MC_DISPATCH_QUICK_BUFFER": str(quick_buffer),
            "MC_DISPATCH_CHUNK": str(chunk),
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "modelcommons.settings.test",
            "MC_BENCH_WITHOUT_HOOKS": "1" if without_hooks else "0",
        }
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "modelcommons",
                "worker",
                "-Q",
                # as the Procfile's worker: the default queue carries the dispatch runs submissions ask for
                f"default,bench.cpu,{RAW_QUEUE}",
                "-c",
                str(concurrency),
                "-n",
                f"{self.name}@%h",
                "-I",
                "tests.perf.bench_pipeline",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        from apps.benchmarks.models import WorkerNode

        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log_path.read_text()[-3000:])
            if WorkerNode.objects.filter(name__startswith=self.name + "@").exists():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def purge() -> None:
    from modelcommons.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "bench.cpu", RAW_QUEUE):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # noqa: BLE001 - not declared yet
                pass


def raw_round(n: int) -> float:
    from modelcommons.celery import app

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.set(COUNTER_KEY, 0)
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for i in range(n):
                raw_noop.apply_async(args=[i], queue=RAW_QUEUE, producer=producer)
        while int(client.get(COUNTER_KEY) or 0) < n:
            time.sleep(0.005)
        return time.perf_counter() - started


_seed = [0]


def next_seed() -> int:
    """A fresh config per job: the same config would be deduplicated into the existing job."""
    _seed[0] += 1
    return _seed[0]


def pipeline_round(world: dict[str, Any], n: int, batch: int = 1) -> tuple[float, list[float]]:
    from django.db import connection

    from apps.benchmarks.models import BenchmarkJob
    from apps.benchmarks.services import job_submit, jobs_submit_batch

    ids: list[int] = []
    revisions = world["revisions"]
    started = time.perf_counter()
    if batch <= 1:
        for _ in range(n):
            seed = next_seed()
            job, created = job_submit(
                actor=world["submitter"],
                revision=revisions[seed % len(revisions)],
                benchmark=world["benchmark"],
                config={"seed": seed},
            )
            assert created
            ids.append(job.pk)
    else:
        for start in range(0, n, batch):
            seeds = [next_seed() for _ in range(min(batch, n - start))]
            outcome = jobs_submit_batch(
                actor=world["submitter"],
                items=[(revisions[seed % len(revisions)], world["benchmark"], {"seed": seed}) for seed in seeds],
            )
            assert all(created for _, created in outcome)
            ids.extend(job.pk for job, _ in outcome)
    done_query = BenchmarkJob.objects.filter(pk__gte=ids[0], pk__lte=ids[-1], status="succeeded")
    while done_query.count() < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    connection.close()
    rows = BenchmarkJob.objects.filter(pk__in=ids).values_list("queued_at", "started_at")
    latencies = [(start - queued).total_seconds() for queued, start in rows]
    return elapsed, latencies


def idle_latency(world: dict[str, Any], n: int) -> tuple[list[float], list[float], list[float]]:
    """Single jobs submitted one at a time into an empty queue, each after the previous one stopped running: per
    job, commit -> claim, and its two legs: commit -> dispatch (the submission's dispatch request travels to a
    worker, which picks the job and stamps `dispatched_at`) and dispatch -> claim (the run message travels to a
    worker, which claims it)."""
    from apps.benchmarks.models import BenchmarkJob
    from apps.benchmarks.services import job_submit

    latencies: list[float] = []
    to_dispatch: list[float] = []
    to_claim: list[float] = []
    for _ in range(n):
        seed = next_seed()
        job, _ = job_submit(
            actor=world["submitter"],
            revision=world["revisions"][seed % len(world["revisions"])],
            benchmark=world["benchmark"],
            config={"seed": seed},
        )
        query = BenchmarkJob.objects.filter(pk=job.pk, started_at__isnull=False).values_list(
            "queued_at", "dispatched_at", "started_at"
        )
        while not (row := query.first()):
            time.sleep(0.002)
        queued, dispatched, started = row
        latencies.append((started - queued).total_seconds())
        if dispatched is not None:
            to_dispatch.append((dispatched - queued).total_seconds())
            to_claim.append((started - dispatched).total_seconds())
        while BenchmarkJob.objects.filter(pk=job.pk, status="running").exists():
            time.sleep(0.002)
    return latencies, to_dispatch, to_claim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="pool processes per worker")
    parser.add_argument(
        "--quick-buffer",
        type=int,
        default=None,
        help="MC_DISPATCH_QUICK_BUFFER: in-process jobs sent ahead (default: the setting's)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="MC_DISPATCH_CHUNK: job ids per message at most (default: the setting's)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle", type=int, default=50, help="single jobs for the idle commit->claim latency")
    parser.add_argument("--variants", type=int, default=500, help="variants the jobs are spread over")
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="submit with jobs_submit_batch in batches of this size (1: job_submit per job)",
    )
    parser.add_argument(
        "--without-hooks",
        action="store_true",
        help="workers drop the job-finished subscribers (leaderboards, notifications, ...): the engine alone",
    )
    args = parser.parse_args()
    # `timeout`/CI send SIGTERM: turn it into an exception so the workers are stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    old_name = setup()
    workers: list[Worker] = []
    try:
        from django.conf import settings

        if args.quick_buffer is not None:
            settings.MC_DISPATCH_QUICK_BUFFER = args.quick_buffer
        if args.chunk is not None:
            settings.MC_DISPATCH_CHUNK = args.chunk
        quick_buffer, chunk = settings.MC_DISPATCH_QUICK_BUFFER, settings.MC_DISPATCH_CHUNK
        world = make_world(args.variants)
        purge()
        workers = [Worker(i, args.concurrency, quick_buffer, chunk, args.without_hooks) for i in range(args.workers)]
        for worker in workers:
            worker.wait_ready()
        # warm both paths (imports, connections, pools) before timing
        raw_round(50)
        pipeline_round(world, 50)
        from apps.benchmarks.hooks import JOB_FINISHED_HOOKS

        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(
            f"{args.jobs} jobs over {args.variants} variants, {args.workers} workers x {args.concurrency} pool "
            f"processes, {0 if args.without_hooks else len(JOB_FINISHED_HOOKS)} job-finished hooks subscribed, "
            f"in-process lane: {quick_buffer} jobs sent ahead, <= {chunk} ids per message, "
            f"{'job_submit per job' if args.batch <= 1 else f'jobs_submit_batch of {args.batch}'}, "
            f"{engine}, broker {settings.CELERY_BROKER_URL.split('://')[0]}"
        )
        results = []
        for r in range(args.rounds):
            raw_s = raw_round(args.jobs)
            ours_s, latencies = pipeline_round(world, args.jobs, args.batch)
            raw_tps, ours_tps = args.jobs / raw_s, args.jobs / ours_s
            results.append((raw_tps, ours_tps))
            print(
                f"round {r + 1}: raw celery {raw_tps:7.1f} tasks/s ({raw_s:5.2f} s) | pipeline {ours_tps:7.1f} "
                f"jobs/s ({ours_s:5.2f} s) | ratio {ours_tps / raw_tps:.2f} | commit->claim in the burst "
                f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
            )
        ratios = [o / r for r, o in results]
        print(f"pipeline / raw celery throughput: median ratio {statistics.median(ratios):.2f} (target >= 0.50)")
        ratio_line(
            "service_submit_vs_raw_celery" if args.batch <= 1 else "service_batch_vs_raw_celery",
            statistics.median(ratios),
            ours=statistics.median(o for _, o in results),
            baseline=statistics.median(r for r, _ in results),
            unit="jobs/s",
            target="" if args.batch <= 1 else ">=0.5",
        )
        if args.idle > 0:
            idle, to_dispatch, to_claim = idle_latency(world, args.idle)

            def p50_p95(values: list[float]) -> str:
                return f"p50 {percentile(values, 0.5) * 1000:.1f} ms, p95 {percentile(values, 0.95) * 1000:.1f} ms"

            print(
                f"idle commit->claim latency ({args.idle} single jobs): {p50_p95(idle)}; of which commit->dispatch "
                f"{p50_p95(to_dispatch)}, dispatch->claim {p50_p95(to_claim)}"
            )
    finally:
        for worker in workers:
            worker.stop()
        teardown(old_name)


if __name__ == "__main__":
    main()
