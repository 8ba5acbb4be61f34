"""Benchmark jobs end to end through real `celery worker` processes: submit, progress, results, dedupe, cancel,
re-run after an infrastructure failure, verification on another worker, spot checks, fair share, bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures import purge_broker, wait_for
from workers.runners.tests.engine_runners import STEPS

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
ENGINE_ENV = {
    "MC_ALLOW_RUNNER_PATHS": "1",
    "MC_SPOT_CHECKS": "0",
    "MC_WORKER_PRESENCE_S": "1",
    "MC_WORKER_STALE_S": "4",
    "MC_JOB_STALE_AFTER_S": "4",
    "MC_JOB_UNDELIVERED_AFTER_S": "3",
    "MC_RECOVER_EVERY_S": "1",
    "MC_DISPATCH_EVERY_S": "1",
    "MC_JOB_RETRY_BACKOFF_S": "0.5",
    "MC_DISPATCH_BUFFER": "4",
    "MC_DISPATCH_QUICK_BUFFER": "4",  # the noop jobs here sleep: keep their lane as small as the other
    "MC_JOB_PROGRESS_MIN_INTERVAL_S": "0.1",
}
STEPS_RUNNER = STEPS


@pytest.fixture(autouse=True)
def engine_settings(settings):  # type: ignore[no-untyped-def]
    from workers.runners.registry import forget_runners

    settings.MC_ALLOW_RUNNER_PATHS = True
    settings.MC_SPOT_CHECKS = False
    settings.MC_DISPATCH_BUFFER = 4
    settings.MC_DISPATCH_QUICK_BUFFER = 4
    settings.MC_WORKER_STALE_S = 4
    # Contributors submit the noop jobs here (noop is a maintainers' runner in production).
    settings.MC_MAINTAINER_ONLY_RUNNERS = []
    forget_runners()
    purge_broker()
    yield settings
    forget_runners()


def job_body(client, job_id):  # type: ignore[no-untyped-def]
    resp = client.get(f"/api/v1/jobs/{job_id}/")
    assert resp.status_code == 200, resp.content
    return resp.json()


def wait_terminal(client, job_id, worker=None, timeout=90):  # type: ignore[no-untyped-def]
    def done():  # type: ignore[no-untyped-def]
        body = job_body(client, job_id)
        return body if body["status"] in TERMINAL else None

    try:
        return wait_for(done, timeout=timeout, message=f"job {job_id} to finish")
    except AssertionError:
        if worker is not None:
            print(worker.output()[-5000:])
        raise


def steps_benchmark(maintainer, slug="steps", **kw):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create

    return benchmark_create(
        actor=maintainer,
        slug=slug,
        name="Steps",
        runner=STEPS_RUNNER,
        metrics=[{"name": "score", "primary": True}],
        **kw,
    )


def noop_benchmark(maintainer, slug="noop", **kw):  # type: ignore[no-untyped-def]
    from apps.benchmarks.services import benchmark_create

    return benchmark_create(
        actor=maintainer, slug=slug, name="No-op", runner="noop", metrics=[{"name": "ok", "primary": True}], **kw
    )


def test_digits_job_on_a_quantized_variant(digits_world, engine_processes, client_for):
    worker = engine_processes.worker(env=ENGINE_ENV)
    alice = digits_world["users"]["alice"]
    client = client_for(alice)
    resp = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    job = resp.json()
    assert job["status"] == "queued" and job["queue_position"] == 1

    body = wait_terminal(client, job["id"], worker)
    assert body["status"] == "succeeded", (body, worker.output()[-3000:])
    metrics = body["result"]["metrics"]
    assert 0.9 < metrics["accuracy"] <= 1.0 and 0.9 < metrics["macro_f1"] <= 1.0
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert body["progress"] == {"done": 450, "total": 450, "percent": 100.0, "eta_s": None}
    assert (
        body["attempts"] == 1
        and body["failure"] is None
        and body["worker_host"] == worker.name + "@" + body["worker_host"].split("@", 1)[1]
    )
    assert body["result"]["environment"]["python"].startswith("3.11")
    assert body["result"]["environment"]["worker"] == body["worker_host"]

    # the same submission again returns the same job
    again = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "digits", "config": {"batch_size": 50}},
        format="json",
    )
    assert again.status_code == 200 and again.json()["id"] == job["id"]

    # the reproducibility bundle names everything needed to run it again
    bundle = client.get(f"/api/v1/jobs/{job['id']}/bundle.json").json()
    manifest = json.loads((ROOT / "fixtures/digits/manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    assert bundle["dataset"]["sha256"] == files["digits-test.npz"]["sha256"]
    assert [a["sha256"] for a in bundle["artifacts"]] == [files["digits-mlp-int8.onnx"]["sha256"]]
    assert bundle["runner"]["key"] == "onnx-classification" and bundle["runner"]["version"]
    assert bundle["precision"] == "int8" and bundle["config"]["batch_size"] == 50
    assert "onnxruntime" in json.dumps(bundle["environment"])

    # verify: with one worker the re-run happens there, and agreement marks the result verified
    check = client.post(f"/api/v1/jobs/{job['id']}/verify/")
    assert check.status_code == 201, check.json()
    rerun = wait_terminal(client, check.json()["id"], worker)
    assert rerun["status"] == "succeeded" and rerun["verifies"] == job["id"]
    result = job_body(client, job["id"])["result"]
    assert result["verified"] is True and result["verification_status"] == "verified"
    verification = client.get(f"/api/v1/jobs/{job['id']}/bundle.json").json()["verifications"][0]
    assert verification["agreed"] is True and verification["delta"] == 0.0


def test_progress_with_eta_then_cancel_between_batches(digits_world, engine_processes, client_for):
    from apps.benchmarks.models import JobResult

    worker = engine_processes.worker(env=ENGINE_ENV)
    steps_benchmark(digits_world["users"]["maintainer"])
    client = client_for(digits_world["users"]["alice"])
    job = client.post(
        "/api/v1/jobs/",
        {"variant": "alice/digits-mlp-int8", "benchmark": "steps", "config": {"steps": 40, "step_s": 0.25}},
        format="json",
    ).json()

    def progressing():  # type: ignore[no-untyped-def]
        body = job_body(client, job["id"])
        return body if body["status"] == "running" and body["progress"]["done"] >= 2 else None

    running = wait_for(progressing, timeout=60, message="progress to reach the API")
    progress = running["progress"]
    assert progress["total"] == 40 and 0 < progress["percent"] < 100 and progress["eta_s"] > 0
    resp = client.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert resp.status_code == 200 and resp.json()["cancel_requested"] is True
    body = wait_terminal(client, job["id"], worker, timeout=30)
    assert body["status"] == "cancelled" and body["result"] is None
    assert body["failure"]["reason"] == "cancelled" and body["progress"]["done"] < 40
    assert "cancelled between batches" in body["log_tail"]
    assert not JobResult.objects.filter(job_id=job["id"]).exists()


def test_rerun_after_an_infrastructure_failure(digits_world, engine_processes, client_for, tmp_path):
    from apps.benchmarks.models import BenchmarkJob
    from apps.registry.models import Artifact

    worker = engine_processes.worker(env=ENGINE_ENV)
    digits = digits_world["benchmark"]
    digits.max_attempts = 1
    digits.save()
    source = ROOT / "fixtures/digits/digits-mlp-pruned.onnx"
    moved = tmp_path / "elsewhere.onnx"
    artifact = Artifact.objects.get(revision=digits_world["pruned"].current_revision)
    Artifact.objects.filter(pk=artifact.pk).update(
        file="", uri=f"file://{moved}", sha256=hashlib.sha256(source.read_bytes()).hexdigest()
    )
    client = client_for(digits_world["users"]["bob"])
    job = client.post(
        "/api/v1/jobs/", {"variant": "bob/digits-mlp-pruned", "benchmark": "digits"}, format="json"
    ).json()
    failed = wait_terminal(client, job["id"], worker)
    assert failed["status"] == "failed" and failed["failure"]["reason"] == "artifact_unavailable"
    assert failed["failure"]["infrastructure"] is True and "not reachable" in failed["failure"]["message"]

    shutil.copy(source, moved)  # the storage is back
    rerun = client.post(f"/api/v1/jobs/{job['id']}/retry/")
    assert rerun.status_code == 200 and rerun.json()["status"] == "queued"
    body = wait_terminal(client, job["id"], worker)
    assert body["status"] == "succeeded" and body["attempts"] == 2 and body["result"]["metrics"]["accuracy"] > 0.9
    assert BenchmarkJob.objects.get(pk=job["id"]).counts_against_quota is False


def test_verification_runs_on_another_worker(digits_world, engine_processes, client_for):
    from apps.benchmarks.dispatch import live_workers
    from apps.benchmarks.models import ResultVerification

    first = engine_processes.worker(env=ENGINE_ENV)
    second = engine_processes.worker(env=ENGINE_ENV)
    wait_for(lambda: len(live_workers("bench.cpu")) == 2, timeout=30, message="both workers to report")
    noop_benchmark(digits_world["users"]["maintainer"])
    client = client_for(digits_world["users"]["alice"])
    job = client.post("/api/v1/jobs/", {"variant": "alice/digits-mlp-int8", "benchmark": "noop"}, format="json").json()
    done = wait_terminal(client, job["id"], first)
    assert done["status"] == "succeeded"
    check = client.post(f"/api/v1/jobs/{job['id']}/verify/").json()
    rerun = wait_terminal(client, check["id"], second)
    assert rerun["status"] == "succeeded"
    assert rerun["worker_host"] != done["worker_host"], (first.output()[-2000:], second.output()[-2000:])
    record = ResultVerification.objects.get(verifier_job_id=check["id"])
    assert record.agreed and not record.same_worker
    assert job_body(client, job["id"])["result"]["verified"] is True


def test_new_submitters_results_are_spot_checked(digits_world, engine_processes, client_for, settings):
    from apps.benchmarks.models import BenchmarkJob

    worker = engine_processes.worker(env={**ENGINE_ENV, "MC_SPOT_CHECKS": "1"})
    noop_benchmark(digits_world["users"]["maintainer"])
    client = client_for(digits_world["users"]["bob"])
    job = client.post("/api/v1/jobs/", {"variant": "bob/digits-mlp-pruned", "benchmark": "noop"}, format="json").json()
    assert wait_terminal(client, job["id"], worker)["status"] == "succeeded"
    spot = wait_for(
        lambda: BenchmarkJob.objects.filter(verifies_id=job["id"], is_spot_check=True).first(),
        timeout=30,
        message="the spot check",
    )
    assert wait_terminal(client, spot.pk, worker)["status"] == "succeeded"
    assert job_body(client, job["id"])["result"]["verification_status"] == "verified"


def test_one_users_backlog_does_not_starve_another(digits_world, engine_processes, client_for, settings):
    from apps.benchmarks.models import BenchmarkJob

    settings.MC_DISPATCH_BUFFER = settings.MC_DISPATCH_QUICK_BUFFER = 1
    worker = engine_processes.worker(env={**ENGINE_ENV, "MC_DISPATCH_BUFFER": "1", "MC_DISPATCH_QUICK_BUFFER": "1"})
    digits_world["users"]["alice"].max_active_jobs = 100
    digits_world["users"]["alice"].save()
    noop_benchmark(digits_world["users"]["maintainer"])
    alice = client_for(digits_world["users"]["alice"])
    ids = [
        alice.post(
            "/api/v1/jobs/",
            {"variant": "alice/digits-mlp-int8", "benchmark": "noop", "config": {"sleep_s": 0.2, "steps": i + 1}},
            format="json",
        ).json()["id"]
        for i in range(30)
    ]
    bob = client_for(digits_world["users"]["bob"])
    bob.get("/api/v1/jobs/")  # warm the token
    single = bob.post("/api/v1/jobs/", {"variant": "bob/digits-mlp-pruned", "benchmark": "noop"}, format="json").json()
    # behind at most the one message already sent to the broker
    assert single["queue_position"] <= 2, single
    assert wait_terminal(bob, single["id"], worker, timeout=60)["status"] == "succeeded"
    bobs = BenchmarkJob.objects.get(pk=single["id"])
    # Counted from the moment the service queued Bob's job (server time, just before its commit), not from before
    # the HTTP request: a claim in between dispatches the next of Alice's jobs while Bob's row is not yet visible.
    started_between = BenchmarkJob.objects.filter(
        pk__in=ids, started_at__gt=bobs.queued_at, started_at__lt=bobs.started_at
    ).count()
    # Alice's backlog got ahead of Bob's job by at most the one message already in the broker buffer
    assert started_between <= 1, started_between
    assert BenchmarkJob.objects.filter(pk__in=ids, status="queued").exists()


def test_a_burst_of_short_jobs_runs_in_chunks(digits_world, engine_processes, client_for, settings):
    """40 no-op jobs sent through the batch API go out several ids per message; the worker claims each chunk
    at once, writes the results in bulk, and the subscribers (leaderboard, notifications) see every job."""
    from apps.benchmarks.models import BenchmarkJob, JobResult
    from apps.leaderboards.models import LeaderboardEntry
    from apps.notifications.models import JobAnnouncement

    settings.MC_DISPATCH_QUICK_BUFFER = 16
    worker = engine_processes.worker(env={**ENGINE_ENV, "MC_DISPATCH_QUICK_BUFFER": "16", "MC_DISPATCH_CHUNK": "8"})
    digits_world["users"]["alice"].max_active_jobs = 100
    digits_world["users"]["alice"].save()
    noop_benchmark(digits_world["users"]["maintainer"])
    alice = client_for(digits_world["users"]["alice"])
    resp = alice.post(
        "/api/v1/jobs/batch/",
        {
            "jobs": [
                {"variant": "alice/digits-mlp-int8", "benchmark": "noop", "config": {"steps": i + 1}} for i in range(40)
            ]
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    ids = [job["id"] for job in resp.json()["jobs"]]
    wait_for(
        lambda: BenchmarkJob.objects.filter(pk__in=ids, status="succeeded").count() == 40,
        timeout=90,
        message="the 40 short jobs to succeed",
    )
    assert JobResult.objects.filter(job_id__in=ids).count() == 40  # exactly one result each
    chunked = worker.output().count("workers.tasks.run_jobs[")
    assert chunked >= 3, worker.output()[-3000:]  # several ids per message (a job per message would be 40)
    assert len(set(BenchmarkJob.objects.filter(pk__in=ids).values_list("started_at", flat=True))) < 40
    # the job-finished subscribers got the whole set
    entry = LeaderboardEntry.objects.get(benchmark__slug="noop", variant__name="digits-mlp-int8")
    assert entry.job_id in ids
    wait_for(
        lambda: JobAnnouncement.objects.filter(job_id__in=ids).count() == 40, timeout=30, message="every job announced"
    )


def test_short_jobs_submitted_one_by_one_wait_for_the_running_one_then_share_a_message(
    digits_world, engine_processes, client_for, settings
):
    """Nagle's rule for the lane of short jobs, end to end: the jobs submitted one per request while another short
    job runs are held back, and the worker sends them together once it is done (one message, one claim), with
    no beat running to pick up a job left behind."""
    from apps.benchmarks.models import BenchmarkJob

    settings.MC_DISPATCH_QUICK_BUFFER = 16
    settings.MC_DISPATCH_HOLD_S = 30  # the running job holds the others back for as long as it runs here
    engine_processes.worker(  # two pool processes: one runs the dispatch requests while the other runs a job
        concurrency=2,
        env={**ENGINE_ENV, "MC_DISPATCH_QUICK_BUFFER": "16", "MC_DISPATCH_CHUNK": "8", "MC_DISPATCH_HOLD_S": "30"},
    )
    noop_benchmark(digits_world["users"]["maintainer"])
    alice = client_for(digits_world["users"]["alice"])

    def submit(config):  # type: ignore[no-untyped-def]
        resp = alice.post(
            "/api/v1/jobs/", {"variant": "alice/digits-mlp-int8", "benchmark": "noop", "config": config}, format="json"
        )
        assert resp.status_code == 201, resp.content
        return resp.json()["id"]

    first = submit({"sleep_s": 5, "steps": 1})
    wait_for(
        lambda: BenchmarkJob.objects.get(pk=first).status == "running", timeout=60, message="the first job to start"
    )
    later = [submit({"steps": i + 1}) for i in range(3)]
    assert BenchmarkJob.objects.get(pk=first).status == "running"
    wait_for(
        lambda: BenchmarkJob.objects.filter(pk__in=later, status="succeeded").count() == 3,
        timeout=60,
        message="the held jobs to succeed",
    )
    rows = BenchmarkJob.objects.filter(pk__in=[first, *later])
    finished_first = rows.get(pk=first).finished_at
    started = {row.started_at for row in rows if row.pk in later}
    assert len(started) == 1, started  # claimed together, in one statement
    assert started.pop() >= finished_first  # after the running job was done, not beside it
