"""Job submission through the REST API against raw Celery (issue 16, SPEC §6 wave 2), and an idle worker's RSS.
Run by `make bench`; it prints numbers and `RATIO` lines, it asserts nothing.

    DATABASE_URL=postgres://root@127.0.0.1:5432/<db> CELERY_BROKER_URL=redis://127.0.0.1:6379/<n> \\
        python tests/perf/bench_rest_jobs.py [--jobs 300] [--batch-jobs 2000] [--clients 4] [--rounds 2]

1. The world of bench_pipeline.py (a throw-away database, a `noop` benchmark, published variants, a submitter
   whose quota allows every job) plus a `jobs` token for the submitter, and 2 real `celery worker` processes.
2. The Procfile's web process (gunicorn, production settings, DEBUG off) on the same database and broker.
3. Each round, on the same workers, Redis and PostgreSQL:
   - raw Celery: `--jobs` no-op tasks published with `apply_async` and drained, end to end;
   - REST, one job per request: `--clients` threads POST /api/v1/jobs/ (a new connection per request) until
     `--jobs` jobs are submitted; end to end, from the first request to the last result written;
   - the same with a connection kept by each client (HTTP keep-alive, as the `mc` client does), against a raw
     Celery round of its own: how much of the first is connection set-up (printed, not the issue's target);
   - REST batches: the same clients POST /api/v1/jobs/batch/ with 500 jobs each until `--batch-jobs` are
     submitted; end to end; against raw Celery with as many tasks.
4. The RSS of each idle worker (its main process and its pool process) before the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "platform"), str(Path(__file__).resolve().parents[2])]

import requests  # noqa: E402

from tests.perf import bench_pipeline as pipeline  # noqa: E402 - sets the environment the workers share
from tests.perf.common import (  # noqa: E402
    children_of,
    database_url,
    destroy_database,
    production_env,
    ratio_line,
    rss_mib,
)

BATCH = 500


def wait_done(first: int, last: int, n: int) -> None:
    """Until the round's `n` jobs (ids `first`..`last`) have all ended, then check that each succeeded.

    Each poll is one probe of the (status, queue, priority, id) index for a job of the round still queued or
    running, through a bare cursor: the measurement should cost the system under test about what raw_round's
    Redis GET costs Redis. (Counting the round's succeeded jobs through the ORM every 10 ms cost the database
    and this process a few percent of the machine during the round.)"""
    from django.db import connection

    from apps.benchmarks.models import BenchmarkJob

    table = connection.ops.quote_name(BenchmarkJob._meta.db_table)
    probe = f"SELECT 1 FROM {table} WHERE status IN ('queued', 'running') AND id BETWEEN %s AND %s LIMIT 1"  # noqa: S608
    with connection.cursor() as cursor:
        while True:
            cursor.execute(probe, [first, last])
            if cursor.fetchone() is None:
                break
            time.sleep(0.01)
    done = BenchmarkJob.objects.filter(pk__gte=first, pk__lte=last, status="succeeded").count()
    if done < n:
        raise RuntimeError(f"{n - done} of the round's {n} jobs ended without succeeding")


def rest_round(
    url: str, token: str, world: dict[str, Any], n: int, clients: int, batch: int, keep_alive: bool = False
) -> float:
    """Submit `n` jobs over REST from `clients` threads (`batch` jobs per request; 1: POST /jobs/), wait until
    every one has succeeded; seconds from the first request to the last result. Each request opens a connection of
    its own, unless `keep_alive`: then each client keeps one (a `requests.Session`, as the `mc` client's httpx
    client does)."""
    revisions = world["revisions"]
    auth = {"Authorization": f"Bearer {token}"}
    lock = threading.Lock()
    remaining = [n]
    ids: list[int] = []
    errors: list[BaseException] = []

    def item(seed: int) -> dict[str, Any]:
        revision = revisions[seed % len(revisions)]
        return {"variant": revision.variant.full_name, "revision": 1, "benchmark": "noop", "config": {"seed": seed}}

    def client() -> None:
        http: Any = requests.Session() if keep_alive else requests
        try:
            while True:
                with lock:
                    take = min(batch, remaining[0])
                    remaining[0] -= take
                    seeds = [pipeline.next_seed() for _ in range(take)]
                if not take:
                    return
                if batch == 1:
                    response = http.post(f"{url}/api/v1/jobs/", json=item(seeds[0]), headers=auth, timeout=120)
                    got = [response.json().get("id")]
                else:
                    response = http.post(
                        f"{url}/api/v1/jobs/batch/", json={"jobs": [item(s) for s in seeds]}, headers=auth, timeout=300
                    )
                    got = [job["id"] for job in response.json().get("jobs", [])]
                if response.status_code != 201:
                    raise RuntimeError(f"{response.status_code}: {response.text[:500]}")
                with lock:
                    ids.extend(got)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    submitted = time.perf_counter() - started
    wait_done(min(ids), max(ids), n)
    elapsed = time.perf_counter() - started
    connections = "a connection per client" if keep_alive else "a connection each"
    print(f"  ({n} jobs, {batch} a request, {connections}: submitted in {submitted:.2f} s, done at {elapsed:.2f} s)")
    from django.db import connection

    connection.close()
    return elapsed


@contextlib.contextmanager
def rest_platform(variants: int, n_workers: int) -> Iterator[tuple[dict[str, Any], str, list[Any], Any]]:
    """(world, token, workers, web): bench_pipeline's throw-away database and world with a `jobs` token for its
    submitter, `n_workers` real `celery worker` processes (1 pool process each) and the Procfile's web process
    (gunicorn, production settings) on the same database and broker, settled; all stopped, and the database
    dropped, at the end."""
    old_name = pipeline.setup()
    workers: list[Any] = []
    web = None
    try:
        from django.conf import settings
        from django.db import connection

        from apps.accounts.services import token_create
        from tests.live import WebServer

        world = pipeline.make_world(variants)
        token = token_create(user=world["submitter"], name="bench", scopes=["read", "jobs"])[1]
        connection.close()
        pipeline.purge()
        workers = [
            pipeline.Worker(i, 1, settings.MC_DISPATCH_QUICK_BUFFER, settings.MC_DISPATCH_CHUNK)
            for i in range(n_workers)
        ]
        for worker in workers:
            worker.wait_ready()
        var = Path(settings.VAR_DIR)
        env = production_env(database_url(), var, CELERY_BROKER_URL=settings.CELERY_BROKER_URL)
        web = WebServer(env, var / "bench-rest-web.log")
        web.wait_ready()
        time.sleep(2)  # the workers settle after start-up
        yield world, token, workers, web
    finally:
        if web is not None:
            web.stop()
        for worker in workers:
            worker.stop()
        destroy_database(old_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per round, one per request")
    parser.add_argument("--batch-jobs", type=int, default=2000, help="jobs per round in batches of 500")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", type=int, default=500)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    with rest_platform(args.variants, args.workers) as (world, token, workers, web):
        for worker in workers:
            pids = [worker.proc.pid, *children_of(worker.proc.pid)]
            sizes = [rss_mib(pid) for pid in pids]
            print(
                f"idle worker {worker.name}: RSS " + " + ".join(f"{s:.0f}" for s in sizes) + f" = {sum(sizes):.0f} MiB"
            )
        idle = max(sum(rss_mib(p) for p in [w.proc.pid, *children_of(w.proc.pid)]) for w in workers)

        # warm both paths and every web process
        pipeline.raw_round(50)
        rest_round(web.url, token, world, 40, args.clients, 1)
        rest_round(web.url, token, world, 40, args.clients, 20)
        print(
            f"{args.workers} workers x 1 pool process, {args.clients} REST clients (a new connection per request), "
            f"web: the Procfile's gunicorn, WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', '2')}"
        )
        # (key, what a round line says, jobs per round, jobs per request, keep-alive, the target)
        kinds = [
            ("rest_submit_vs_raw_celery", "REST, a job per request", args.jobs, 1, False, ">=0.3"),
            (
                "rest_submit_keepalive_vs_raw_celery",
                "REST, a job per request, a connection per client",
                args.jobs,
                1,
                True,
                "",
            ),
            ("rest_batch_vs_raw_celery", f"REST, batches of {BATCH}", args.batch_jobs, BATCH, False, ">=0.8"),
        ]
        results: dict[str, list[tuple[float, float]]] = {kind[0]: [] for kind in kinds}
        for r in range(args.rounds):
            for key, label, n, batch, keep_alive, _ in kinds:
                raw_s = pipeline.raw_round(n)  # a raw Celery round of its own, just before
                rest_s = rest_round(web.url, token, world, n, args.clients, batch, keep_alive=keep_alive)
                raw_tps, rest_tps = n / raw_s, n / rest_s
                results[key].append((raw_tps, rest_tps))
                print(
                    f"round {r + 1}: raw celery {raw_tps:6.1f} tasks/s | {label} {rest_tps:6.1f} jobs/s "
                    f"| ratio {rest_tps / raw_tps:.2f}",
                    flush=True,
                )
        for key, *_, target in kinds:
            ratio_line(
                key,
                statistics.median(o / r for r, o in results[key]),
                ours=statistics.median(o for _, o in results[key]),
                baseline=statistics.median(r for r, _ in results[key]),
                unit="jobs/s",
                target=target,
            )
        ratio_line("idle_worker_rss_mib", idle, ours=idle, unit="MiB")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
