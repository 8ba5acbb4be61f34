"""How a worker gets a job's files (workers/execution.py, MC_WORKER_STAGING): in place from a shared disk, or
staged over HTTP into its own cache; a file it cannot get, or gets wrong, fails the job with a reason and a clear
message, never a traceback. Datasets ship with the code and are verified when the benchmark records a sha256."""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import pytest

from apps.benchmarks import services
from apps.benchmarks.choices import FailureReason, JobStatus
from apps.benchmarks.models import BenchmarkJob
from apps.registry.models import Artifact
from tests.fixtures import free_port
from workers import execution
from workers.runners.base import RunnerError

ONNX = frozenset({"onnx"})


@pytest.fixture
def worker_cache(settings, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    settings.MC_WORKER_CACHE_DIR = tmp_path / "worker-cache"
    return tmp_path / "worker-cache"


def _int8(digits_world) -> tuple[SimpleNamespace, Artifact]:  # type: ignore[no-untyped-def]
    revision = digits_world["int8"].current_revision
    return SimpleNamespace(revision_id=revision.pk), Artifact.objects.get(revision=revision, format="onnx")


def _claimed_job(digits_world) -> BenchmarkJob:  # type: ignore[no-untyped-def]
    job, _ = services.job_submit(
        actor=digits_world["users"]["alice"],
        revision=digits_world["int8"].current_revision,
        benchmark=digits_world["benchmark"],
    )
    (claimed,) = services.jobs_claim(job_ids=[job.pk], worker="staging-test@host")
    return claimed


@pytest.mark.django_db
def test_auto_reads_a_shared_disk_in_place_and_local_fetches_nothing(digits_world, settings, worker_cache):
    job, artifact = _int8(digits_world)
    (spec,) = execution.resolve_artifacts(job, ONNX)
    assert spec.path == artifact.local_path() and not worker_cache.joinpath("blobs").exists()

    settings.MC_WORKER_STAGING = "local"
    os.unlink(artifact.local_path())
    with pytest.raises(RunnerError) as exc:
        execution.resolve_artifacts(job, ONNX)
    assert exc.value.reason == FailureReason.ARTIFACT_UNAVAILABLE
    assert "digits-mlp-int8.onnx" in exc.value.message and "MC_WORKER_STAGING=local" in exc.value.message


@pytest.mark.django_db
def test_a_platform_out_of_reach_fails_the_job_as_artifact_unavailable(digits_world, settings, worker_cache):
    settings.MC_WORKER_STAGING = "http"
    settings.MC_PLATFORM_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    job = _claimed_job(digits_world)
    outcome = execution.execute_jobs([job])[job.pk]
    # Recorded with its reason; the engine tries again later (the platform may be back, or another worker luckier).
    assert outcome is not None and outcome.status == JobStatus.QUEUED and outcome.attempts == 1
    assert outcome.failure_reason == FailureReason.ARTIFACT_UNAVAILABLE
    assert "'digits-mlp-int8.onnx'" in outcome.failure_message and "cannot reach" in outcome.failure_message
    assert "Traceback" not in outcome.failure_message + outcome.log_tail


@pytest.mark.django_db(transaction=True)
def test_files_come_over_http_into_the_cache_and_wrong_bytes_fail_the_job(
    digits_world, live_server, settings, worker_cache
):
    settings.MC_WORKER_STAGING = "http"
    settings.MC_PLATFORM_URL = live_server.url
    job, artifact = _int8(digits_world)
    content = Path(artifact.local_path()).read_bytes()
    with ExitStack() as pins:
        (spec,) = execution.resolve_artifacts(job, ONNX, pins)
        assert Path(spec.path).is_relative_to(worker_cache) and Path(spec.path).name == artifact.sha256
        assert Path(spec.path).read_bytes() == content and spec.name == "digits-mlp-int8.onnx"
        assert execution.worker_cache().pinned() == {artifact.sha256}
    assert execution.worker_cache().pinned() == set()

    # The platform's copy goes bad (same size, other bytes) and the worker's copy is lost: the job fails with the
    # integrity reason after a retry, and nothing wrong is cached.
    os.unlink(spec.path)
    os.chmod(artifact.local_path(), 0o644)
    Path(artifact.local_path()).write_bytes(bytes(len(content)))
    claimed = _claimed_job(digits_world)
    outcome = execution.execute_jobs([claimed])[claimed.pk]
    assert outcome is not None and outcome.status == JobStatus.FAILED
    assert outcome.failure_reason == FailureReason.HASH_MISMATCH
    assert "'digits-mlp-int8.onnx'" in outcome.failure_message
    assert hashlib.sha256(bytes(len(content))).hexdigest() in outcome.failure_message
    assert execution.worker_cache().entries() == []


@pytest.mark.django_db
def test_a_dataset_with_a_sha256_is_verified(digits_world, tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"x": 1}\n')
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    ok = SimpleNamespace(dataset_uri=f"file://{data}", dataset_sha256=digest)
    assert execution.resolve_dataset(ok).path == str(data)  # type: ignore[arg-type, union-attr]
    wrong = SimpleNamespace(dataset_uri=f"file://{data}", dataset_sha256="0" * 64)
    with pytest.raises(RunnerError) as exc:
        execution.resolve_dataset(wrong)  # type: ignore[arg-type]
    assert exc.value.reason == FailureReason.HASH_MISMATCH
    unverified = SimpleNamespace(dataset_uri=f"file://{data}", dataset_sha256="")
    assert execution.resolve_dataset(unverified).sha256 is None  # type: ignore[arg-type, union-attr]
    shipped = digits_world["benchmark"]
    assert Path(execution.resolve_dataset(shipped).path).is_file()  # type: ignore[union-attr]
