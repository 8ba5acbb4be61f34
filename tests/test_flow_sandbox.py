"""The runner sandbox through a real worker (SPEC §7, wave 2): a runner child that opens a socket, reads the
platform's files or another user's artifact, forks without end or allocates past its limit fails with a reason
code, an in-process run stops at its wall-clock limit, a worker that cannot set up its sandbox refuses sandboxed
jobs -- and the worker lives on and runs the next job."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.fixtures import purge_broker, wait_for
from workers.runners.tests.engine_runners import CONSTANT
from workers.runners.tests.fake_runners import MODULE
from workers.runners.tests.sandbox_support import KERNEL_REFUSES_NAMESPACES

pytestmark = [
    pytest.mark.flow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(KERNEL_REFUSES_NAMESPACES is not None, reason=KERNEL_REFUSES_NAMESPACES or ""),
]

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
PROBE = f"{MODULE}:ProbeRunner"
MEMORY_HOG = f"{MODULE}:MemoryHogRunner"
SANDBOX_ENV = {
    "MC_ALLOW_RUNNER_PATHS": "1",
    "MC_SPOT_CHECKS": "0",
    "MC_RUNNER_MEMORY_MB": "400",
    "MC_SANDBOX_MAX_PROCESSES": "64",
    "MC_JOB_RETRY_BACKOFF_S": "0.2",
}


@pytest.fixture(autouse=True)
def sandbox_settings(settings):  # type: ignore[no-untyped-def]
    from workers.runners.registry import forget_runners

    settings.MC_ALLOW_RUNNER_PATHS = True
    settings.MC_SPOT_CHECKS = False
    forget_runners()
    purge_broker()
    yield settings
    forget_runners()


def benchmark(maintainer, slug, runner, **kw):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create

    fields = {
        "metrics": [{"name": "ok", "primary": True}],
        "config_schema": {"type": "object"},
        "max_attempts": 1,
        **kw,
    }
    return benchmark_create(actor=maintainer, slug=slug, name=slug.title(), runner=runner, **fields)


def submit(world, bench, config=None):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import job_submit

    job, created = job_submit(
        actor=world["users"]["maintainer"],
        revision=world["int8"].current_revision,
        benchmark=bench,
        config=config or {},
    )
    assert created
    return job.pk


def wait_terminal(ids, worker, timeout=240):  # type: ignore[no-untyped-def]
    from apps.benchmarks.models import BenchmarkJob

    def done():  # type: ignore[no-untyped-def]
        jobs = {j.pk: j for j in BenchmarkJob.objects.filter(pk__in=ids)}
        return jobs if all(j.status in TERMINAL for j in jobs.values()) else None

    try:
        return wait_for(done, timeout=timeout, message=f"jobs {ids} to finish")
    except AssertionError:
        print(worker.output()[-6000:])
        raise


def test_sandbox_failures_have_reason_codes_and_the_worker_lives_on(digits_world, engine_processes, settings):
    from apps.registry.models import Artifact

    worker = engine_processes.worker(env=SANDBOX_ENV)
    maintainer = digits_world["users"]["maintainer"]
    maintainer.max_active_jobs = 50
    maintainer.save()
    probe = benchmark(maintainer, "probe", PROBE)
    bobs = Artifact.objects.filter(revision=digits_world["pruned"].current_revision).first()
    assert bobs is not None and bobs.local_path() and Path(bobs.local_path()).is_file()
    broker = urlparse(settings.CELERY_BROKER_URL)
    attempts = {
        "the broker's socket": {
            "action": "connect",
            "host": broker.hostname or "127.0.0.1",
            "port": broker.port or 6379,
        },
        "the settings": {"action": "read", "path": str(ROOT / "platform" / "modelcommons" / "settings" / "base.py")},
        "bob's artifact": {"action": "read", "path": bobs.local_path()},
        "the data folder": {"action": "listdir", "path": str(settings.VAR_DIR)},
        "a fork bomb": {"action": "fork_bomb"},
    }
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        attempts["the database file"] = {"action": "read", "path": str(database["NAME"])}
    else:
        attempts["the database's socket"] = {
            "action": "connect",
            "host": database.get("HOST") or "127.0.0.1",
            "port": int(database.get("PORT") or 5432),
        }
    ids = {what: submit(digits_world, probe, config) for what, config in attempts.items()}
    ids["memory"] = submit(digits_world, benchmark(maintainer, "hog", MEMORY_HOG), {"allocate_mb": 2048})
    ids["in-process sleep"] = submit(digits_world, benchmark(maintainer, "nap", "noop", timeout_s=1), {"sleep_s": 30})

    jobs = wait_terminal(list(ids.values()), worker)
    outcome = {what: (jobs[pk].status, jobs[pk].failure_reason) for what, pk in ids.items()}
    expected = {what: ("failed", "sandbox_violation") for what in attempts}
    expected["memory"] = ("failed", "out_of_memory")
    expected["in-process sleep"] = ("timed_out", "timeout")
    assert outcome == expected, {what: jobs[pk].failure_message for what, pk in ids.items()}
    nap = jobs[ids["in-process sleep"]]
    assert "wall-clock limit of 1 s" in nap.failure_message
    # Interrupted mid-sleep (SIGALRM in the pool process), not after the 30 s it asked for: the slot came back.
    assert (nap.finished_at - nap.started_at).total_seconds() < 20

    # The worker and its pool process are the ones that started, and they run the next job.
    assert worker.proc.poll() is None
    assert "exited with" not in worker.output() and "WorkerLostError" not in worker.output()
    [after] = wait_terminal(
        [submit(digits_world, benchmark(maintainer, "fine", CONSTANT, metrics=[{"name": "score", "primary": True}]))],
        worker,
    ).values()
    assert after.status == "succeeded", after.failure_message


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker switches users")
def test_a_worker_that_cannot_set_up_its_sandbox_refuses_sandboxed_jobs(digits_world, engine_processes):
    worker = engine_processes.worker(env={**SANDBOX_ENV, "MC_SANDBOX_USER": "no-such-user-mc"})
    maintainer = digits_world["users"]["maintainer"]
    sandboxed = submit(
        digits_world, benchmark(maintainer, "fine", CONSTANT, metrics=[{"name": "score", "primary": True}])
    )
    in_process = submit(digits_world, benchmark(maintainer, "quick", "noop"))
    jobs = wait_terminal([sandboxed, in_process], worker)
    assert (jobs[sandboxed].status, jobs[sandboxed].failure_reason) == ("failed", "sandbox_unavailable")
    assert "no-such-user-mc" in jobs[sandboxed].failure_message
    assert jobs[in_process].status == "succeeded"  # runs in the worker: no sandbox needed
    assert worker.proc.poll() is None
