"""Fault drills (SPEC §7) with real processes, each started and stopped by the test, by PID:

- a worker SIGKILLed with 50 jobs in flight, then a new one started: every job ends terminal, one result each;
- the broker down while 100 jobs are submitted (a private redis-server stopped and started again): all are
  accepted, and all complete once it is back;
- the same job id delivered three times: one run, one result;
- a job that kills its worker every time: it stops at max_attempts.

Recovery intervals are shortened through the environment of the worker and beat processes."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator

import pytest

from tests.fixtures import PrivateRedis, purge_broker, wait_for
from workers.runners.tests.engine_runners import KILL_WORKER

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DRILL_ENV = {
    "MC_ALLOW_RUNNER_PATHS": "1",
    "MC_SPOT_CHECKS": "0",
    "MC_WORKER_PRESENCE_S": "1",
    "MC_WORKER_STALE_S": "3",
    "MC_JOB_HEARTBEAT_S": "1",
    "MC_JOB_STALE_AFTER_S": "3",
    "MC_JOB_UNDELIVERED_AFTER_S": "3",
    "MC_RECOVER_EVERY_S": "1",
    "MC_DISPATCH_EVERY_S": "1",
    "MC_JOB_RETRY_BACKOFF_S": "0.5",
    "MC_DISPATCH_BUFFER": "4",
    "MC_DISPATCH_QUICK_BUFFER": "4",  # the noop jobs here sleep: keep their lane as small as the other
    # The poison runner kills the process it runs in: in the worker's own (a sandboxed child cannot reach it).
    "MC_IN_PROCESS_RUNNERS": f"noop,{KILL_WORKER}",
}
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")


@pytest.fixture(autouse=True)
def drill_settings(settings):  # type: ignore[no-untyped-def]
    from workers.runners.registry import forget_runners

    settings.MC_ALLOW_RUNNER_PATHS = True
    settings.MC_SPOT_CHECKS = False
    settings.MC_DISPATCH_BUFFER = 4
    settings.MC_DISPATCH_QUICK_BUFFER = 4
    settings.MC_WORKER_STALE_S = 3
    settings.MC_IN_PROCESS_RUNNERS = ["noop", KILL_WORKER]
    # The drills' jobs are alice's noop jobs (noop is a maintainers' runner in production).
    settings.MC_MAINTAINER_ONLY_RUNNERS = []
    forget_runners()
    yield settings
    forget_runners()


@pytest.fixture
def world(digits_world):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create

    alice = digits_world["users"]["alice"]
    alice.max_active_jobs = 500
    alice.save()
    maintainer = digits_world["users"]["maintainer"]
    noop = benchmark_create(
        actor=maintainer,
        slug="noop",
        name="No-op",
        runner="noop",
        max_attempts=3,
        metrics=[{"name": "ok", "primary": True}],
    )
    return {**digits_world, "alice": alice, "maintainer": maintainer, "noop": noop}


def submit_many(world, n, **config):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import job_submit

    revision = world["int8"].current_revision
    return [
        job_submit(actor=world["alice"], revision=revision, benchmark=world["noop"], config={**config, "steps": i + 1})[
            0
        ].pk
        for i in range(n)
    ]


def statuses(ids):  # type: ignore[no-untyped-def]
    from apps.benchmarks.models import BenchmarkJob

    return dict(BenchmarkJob.objects.filter(pk__in=ids).values_list("pk", "status"))


def wait_all_terminal(ids, timeout, *processes):  # type: ignore[no-untyped-def]
    try:
        wait_for(
            lambda: all(s in TERMINAL for s in statuses(ids).values()),
            timeout=timeout,
            interval=0.5,
            message=f"{len(ids)} jobs to end",
        )
    except AssertionError:
        left = {pk: s for pk, s in statuses(ids).items() if s not in TERMINAL}
        print("not terminal:", left)
        for process in processes:
            print(process.output()[-4000:])
        raise


def assert_one_result_each(ids):  # type: ignore[no-untyped-def]
    from django.db.models import Count

    from apps.benchmarks.models import JobResult

    per_job = dict(
        JobResult.objects.filter(job_id__in=ids).values("job_id").annotate(n=Count("id")).values_list("job_id", "n")
    )
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}


@contextlib.contextmanager
def broker(url: str) -> Iterator[None]:
    """Point this (test) process's Celery app at another broker for a while."""
    from modelcommons.celery import app

    # broker_url itself comes from the CELERY_-namespaced Django setting and cannot be overridden at run time;
    # the write/read URLs take precedence over it.
    saved = (app.conf.broker_write_url, app.conf.broker_read_url, app.conf.broker_transport_options)

    def reset() -> None:
        from kombu import pools

        pools.reset()  # closes and forgets every pooled connection and producer of this process
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    app.conf.update(broker_write_url=url, broker_read_url=url, broker_transport_options={"visibility_timeout": 3600})
    assert app.connection_for_write().as_uri().endswith(url.rsplit("@", 1)[-1].split("//", 1)[-1])
    try:
        yield
    finally:
        reset()
        app.conf.update(broker_write_url=saved[0], broker_read_url=saved[1], broker_transport_options=saved[2])


def test_worker_sigkilled_with_50_jobs_in_flight(world, engine_processes):
    from apps.benchmarks.models import BenchmarkJob

    purge_broker()
    worker = engine_processes.worker(concurrency=2, env=DRILL_ENV)
    beat = engine_processes.beat(env=DRILL_ENV)
    ids = submit_many(world, 50, sleep_s=0.8)

    def mid_flight():  # type: ignore[no-untyped-def]
        now = statuses(ids)
        done = sum(s == "succeeded" for s in now.values())
        running = [pk for pk, s in now.items() if s == "running"]
        return running if done >= 3 and running else None

    wait_for(mid_flight, timeout=60, interval=0.05, message="jobs to be running")
    worker.kill(signal.SIGKILL)  # the worker, its pool processes and their runner children, at once
    worker.proc.wait(timeout=10)
    after_kill = statuses(ids)
    in_flight = [pk for pk, s in after_kill.items() if s not in TERMINAL]
    # Only a worker moves a job out of `running` (or recovery, once its heartbeat is stale): what is running
    # now was running when the worker died. (The snapshot taken before the kill can be stale by then.)
    running = [pk for pk, s in after_kill.items() if s == "running"]
    assert len(in_flight) >= 30 and running

    replacement = engine_processes.worker(concurrency=2, env=DRILL_ENV)
    wait_all_terminal(ids, 180, replacement, beat)
    assert set(statuses(ids).values()) == {"succeeded"}
    assert_one_result_each(ids)
    # the jobs killed mid-run were taken up again by a new attempt on the new worker
    for job in BenchmarkJob.objects.filter(pk__in=running):
        assert job.attempts >= 2 and job.worker_host != ""
    assert not BenchmarkJob.objects.filter(pk__in=ids, attempts__gt=3).exists()


def test_broker_down_while_100_jobs_are_submitted(world, engine_processes, client_for):
    redis = PrivateRedis()
    if not redis.binary:
        pytest.skip("redis-server is not installed: the drill needs a private broker it can stop and start")
    redis.start()
    try:
        worker = engine_processes.worker(concurrency=2, env=DRILL_ENV, broker_url=redis.url)
        beat = engine_processes.beat(env=DRILL_ENV, broker_url=redis.url)
        client = client_for(world["alice"])
        with broker(redis.url):
            redis.stop()
            assert not redis.is_up()
            started = time.monotonic()
            codes = [
                client.post(
                    "/api/v1/jobs/",
                    {"variant": "alice/digits-mlp-int8", "benchmark": "noop", "config": {"steps": i + 1}},
                    format="json",
                )
                for i in range(100)
            ]
            accepting = time.monotonic() - started
            assert [r.status_code for r in codes] == [201] * 100, codes[0].json()
            ids = [r.json()["id"] for r in codes]
            from apps.benchmarks.models import BenchmarkJob

            # nothing reached the broker, nothing was lost: every job waits in the database
            assert BenchmarkJob.objects.filter(pk__in=ids, status="queued", dispatched_at__isnull=True).count() == 100
            redis.start()
            wait_all_terminal(ids, 180, worker, beat)
        assert set(statuses(ids).values()) == {"succeeded"}
        assert_one_result_each(ids)
        print(f"100 submissions with the broker down took {accepting:.1f} s")
    finally:
        redis.stop()


def test_duplicate_delivery_runs_once(world, engine_processes):
    from apps.audit.models import AuditEvent
    from apps.benchmarks.dispatch import send_run_job
    from apps.benchmarks.models import BenchmarkJob

    purge_broker()
    worker = engine_processes.worker(concurrency=3, env=DRILL_ENV)
    [job_id] = submit_many(world, 1, sleep_s=1.5)
    for _ in range(2):
        send_run_job(job_id, "bench.cpu")  # the same id twice more, while the first delivery runs
    wait_all_terminal([job_id], 60, worker)
    job = BenchmarkJob.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.attempts == 1
    assert_one_result_each([job_id])
    starts = AuditEvent.objects.filter(target_type="benchmarks.benchmarkjob", target_id=str(job_id), verb="job.start")
    assert starts.count() == 1, [(e.seq, e.created_at, e.after) for e in starts]
    wait_for(
        lambda: worker.output().count("workers.tasks.run_job") >= 3 * 2,
        timeout=20,
        message="all three deliveries to be received and finished",
    )


def test_poison_job_stops_at_max_attempts(world, engine_processes):
    from apps.benchmarks.models import BenchmarkJob, JobResult
    from apps.benchmarks.services import benchmark_create, job_submit

    purge_broker()
    worker = engine_processes.worker(concurrency=1, env=DRILL_ENV)
    beat = engine_processes.beat(env=DRILL_ENV)
    poison = benchmark_create(
        actor=world["maintainer"],
        slug="poison",
        name="Poison",
        runner=KILL_WORKER,
        max_attempts=3,
        metrics=[{"name": "score", "primary": True}],
    )
    job, _ = job_submit(actor=world["alice"], revision=world["int8"].current_revision, benchmark=poison)
    wait_all_terminal([job.pk], 120, worker, beat)
    job.refresh_from_db()
    assert job.status == "failed" and job.failure_reason == "worker_lost", job.failure_message
    assert job.attempts == 3 and not JobResult.objects.filter(job=job).exists()
    assert worker.proc.poll() is None  # the worker itself survived: only its pool processes were killed
    assert worker.output().count("SIGKILL") >= 3
    # and the worker still works
    [after] = submit_many(world, 1)
    wait_all_terminal([after], 60, worker, beat)
    assert BenchmarkJob.objects.get(pk=after).status == "succeeded"
