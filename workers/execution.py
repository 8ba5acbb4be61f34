"""Run one claimed job: resolve its inputs, run the runner in a child process, record the outcome.

This is the only place where the Django world (jobs, artifacts) meets the runner world (RunSpec)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from django.conf import settings

from apps.benchmarks import services
from apps.benchmarks.choices import FailureReason
from apps.benchmarks.models import Benchmark, BenchmarkJob
from apps.registry.choices import UNSAFE_FORMATS
from apps.registry.models import Artifact
from workers.runners.base import ArtifactSpec, DatasetSpec, JobCancelled, RunnerError, RunSpec, get_runner
from workers.runners.sandbox import run_in_child

logger = logging.getLogger(__name__)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def resolve_dataset(benchmark: Benchmark) -> DatasetSpec | None:
    uri = benchmark.dataset_uri
    if not uri:
        return None
    if uri.startswith("file://"):
        path = Path(uri[len("file://"):])
    elif "://" in uri:
        raise RunnerError(FailureReason.ARTIFACT_UNAVAILABLE,
                          f"Dataset {uri} is remote; workers never download at run time.")
    else:
        path = Path(uri) if Path(uri).is_absolute() else Path(settings.BASE_DIR) / uri
    return DatasetSpec(path=str(path), sha256=benchmark.dataset_sha256 or None)


def resolve_artifacts(job: BenchmarkJob, loadable: frozenset[str]) -> tuple[ArtifactSpec, ...]:
    artifacts = list(Artifact.objects.filter(revision=job.revision))
    usable = [a for a in artifacts if a.format in loadable]
    if not usable:
        unsafe = [a.path for a in artifacts if a.format in UNSAFE_FORMATS]
        if unsafe:
            raise RunnerError(FailureReason.UNSAFE_FORMAT,
                              f"Only pickle-based artifacts ({', '.join(unsafe)}); they are never loaded. "
                              f"Upload one of: {', '.join(sorted(loadable))}.")
        raise RunnerError(FailureReason.ARTIFACT_UNAVAILABLE,
                          f"The revision has no artifact this runner can load ({', '.join(sorted(loadable))}).")
    specs = []
    for artifact in usable:
        local = artifact.local_path()
        if local is None or not Path(local).exists():
            raise RunnerError(FailureReason.ARTIFACT_UNAVAILABLE,
                              f"Artifact {artifact.path} is not reachable from this worker ({artifact.uri or 'storage'}).")
        specs.append(ArtifactSpec(path=local, sha256=artifact.sha256, format=artifact.format,
                                  size_bytes=artifact.size_bytes))
    return tuple(specs)


class _Heartbeat(threading.Thread):
    """Keeps heartbeat_at fresh while a long batch runs, so the recovery beat does not think we died."""

    def __init__(self, job_id: int, attempt: int, interval_s: float):
        super().__init__(daemon=True)
        self.job_id, self.attempt, self.interval_s = job_id, attempt, interval_s
        self.stop_event = threading.Event()
        self.cancel_seen = threading.Event()

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop_event.wait(self.interval_s):
                if services.job_heartbeat(job_id=self.job_id, attempt=self.attempt):
                    self.cancel_seen.set()
        finally:
            connection.close()


def execute_job(job: BenchmarkJob) -> BenchmarkJob | None:
    """Run a job this worker has claimed, and record success or failure fenced by its attempt."""
    attempt = job.attempts
    benchmark = job.benchmark
    log_lines: list[str] = [f"attempt {attempt} on {job.worker_host}", f"runner {benchmark.runner}"]
    try:
        runner = get_runner(benchmark.runner)
        spec = RunSpec(
            job_id=str(job.pk),
            artifacts=resolve_artifacts(job, frozenset(runner.loadable_formats)),
            dataset=resolve_dataset(benchmark),
            config=dict(job.config),
            seed=int(job.config.get("seed", 0)) if isinstance(job.config.get("seed", 0), int) else 0,
        )
    except RunnerError as exc:
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=exc.reason, message=exc.message,
                                 log_tail="\n".join([*log_lines, f"error: {exc.message}"]))

    heartbeat = _Heartbeat(job.pk, attempt, settings.MC_JOB_HEARTBEAT_S)
    heartbeat.start()

    def progress(done: int, total: int) -> None:
        if services.job_progress(job_id=job.pk, attempt=attempt, done=done, total=total) or heartbeat.cancel_seen.is_set():
            raise JobCancelled()

    try:
        result = run_in_child(benchmark.runner, spec, progress, timeout_s=float(benchmark.timeout_s),
                              memory_mb=settings.MC_RUNNER_MEMORY_MB or None)
    except JobCancelled:
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=FailureReason.CANCELLED,
                                 message="Cancelled while running; stopped between batches.",
                                 log_tail="\n".join([*log_lines, "cancelled"]))
    except RunnerError as exc:
        tail = getattr(exc, "log_tail", None) or ""
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=exc.reason, message=exc.message,
                                 log_tail="\n".join([*log_lines, str(tail), f"error: {exc.message}"]))
    finally:
        heartbeat.stop_event.set()
        heartbeat.join(timeout=5)

    environment = dict(result.environment)
    environment["worker"] = job.worker_host
    return services.job_complete(
        job_id=job.pk, attempt=attempt, metrics=result.metrics, stderr=result.stderr, samples=result.samples,
        duration_s=result.duration_s, runner=result.runner, runner_version=result.runner_version,
        environment=environment, log_tail="\n".join([*log_lines, *result.log]),
    )
