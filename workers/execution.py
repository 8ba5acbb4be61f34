"""Run one claimed job: resolve its inputs, run the runner (in a sandbox child process, or in this process for
runners that load nothing), and record the outcome fenced by the attempt.

Every run has a wall-clock limit: its benchmark's ``timeout_s``, capped by ``MC_RUNNER_MAX_WALL_S`` (and, in this
process, by ``MC_IN_PROCESS_MAX_WALL_S``). The sandbox's policy comes from the ``MC_SANDBOX*`` settings.

This is the only place where the Django world (jobs, artifacts) meets the runner world (RunSpec)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.benchmarks import services
from apps.benchmarks.choices import FailureReason
from apps.benchmarks.models import Benchmark, BenchmarkJob, BenchmarkVersion
from apps.registry.models import Artifact
from apps.transfers.worker_access import worker_blob_token
from workers.runners.base import (
    ArtifactSpec,
    DatasetSpec,
    JobCancelled,
    RunnerError,
    RunSpec,
    is_unsafe,
    verify_sha256,
)
from workers.runners.inprocess import run_in_process
from workers.runners.registry import runner_class
from workers.runners.sandbox import SandboxPolicy, run_in_child
from workers.staging import Blob, BlobCache, BlobSource, HttpSource, S3Source

logger = logging.getLogger(__name__)
_ARTIFACT_HAS_NAME = "name" in getattr(ArtifactSpec, "__dataclass_fields__", {})


def worker_identity(nodename: str | None = None) -> str:
    """The Celery node name (``name@host``): stable for a worker's life, shared by its pool processes."""
    return nodename or f"{socket.gethostname()}:{os.getpid()}"


def resolve_dataset(source: Benchmark | BenchmarkVersion) -> DatasetSpec | None:
    """The benchmark's dataset. It ships with the code (a file:// path or a path in the repository, fixtures/), so
    it is read where it is on every worker; when the benchmark records a sha256, it is verified here first."""
    uri = source.dataset_uri
    if not uri:
        return None
    if uri.startswith("file://"):
        path = Path(uri[len("file://") :])
    elif "://" in uri:
        raise RunnerError(
            FailureReason.ARTIFACT_UNAVAILABLE, f"Dataset {uri} is remote; workers never download at run time."
        )
    else:
        path = Path(uri) if Path(uri).is_absolute() else Path(settings.BASE_DIR) / uri
    if source.dataset_sha256:
        verify_sha256(str(path), source.dataset_sha256)
    return DatasetSpec(path=str(path), sha256=source.dataset_sha256 or None)


_cache: BlobCache | None = None


def worker_cache() -> BlobCache:
    """This process's blob cache (MC_WORKER_CACHE_DIR, capped at MC_WORKER_CACHE_MAX_MB)."""
    global _cache
    root, max_bytes = Path(settings.MC_WORKER_CACHE_DIR), int(settings.MC_WORKER_CACHE_MAX_MB) * 1024 * 1024
    if _cache is None or _cache.root != root or _cache.max_bytes != max_bytes:
        try:
            _cache = BlobCache(root, max_bytes=max_bytes)
        except OSError as exc:
            raise RunnerError(
                FailureReason.ARTIFACT_UNAVAILABLE, f"The worker cache at {root} cannot be made: {exc}"
            ) from None
    return _cache


def _bucket_source() -> S3Source:
    """The bucket the platform stores artifacts in, through the storage's own client (same settings)."""
    from django.core.files.storage import default_storage

    storage: Any = default_storage
    return S3Source(storage.connection.meta.client, storage.bucket_name)


def _platform_source() -> HttpSource:
    return HttpSource(settings.MC_PLATFORM_URL, worker_blob_token, timeout_s=float(settings.MC_WORKER_FETCH_TIMEOUT_S))


def staging_sources() -> list[BlobSource]:
    """Where this worker fetches blobs it does not have, in order (MC_WORKER_STAGING, MC_STORAGE)."""
    mode, on_s3 = settings.MC_WORKER_STAGING, settings.MC_STORAGE == "s3"
    if mode == "s3":
        if not on_s3:
            raise RunnerError(
                FailureReason.ARTIFACT_UNAVAILABLE, "MC_WORKER_STAGING=s3 needs the platform's MC_STORAGE=s3."
            )
        return [_bucket_source()]
    if mode == "http":
        return [_platform_source()]
    # auto: the bucket when there is one, with the platform behind it (a worker without bucket credentials)
    return [_bucket_source(), _platform_source()] if on_s3 else [_platform_source()]


def _in_place(artifact: Artifact) -> str | None:
    """The artifact's file on this machine's disk, when staging may read it there (MC_WORKER_STAGING auto or
    local) and the storage is a file system that has it."""
    if settings.MC_WORKER_STAGING not in ("auto", "local"):
        return None
    local = artifact.local_path()
    return local if local and Path(local).is_file() else None


def resolve_artifacts(
    job: BenchmarkJob, loadable: frozenset[str], pins: contextlib.ExitStack | None = None
) -> tuple[ArtifactSpec, ...]:
    """The revision's artifacts the runner can load, as files on this worker. Pickle-based files are never handed
    over. A file is read in place from the shared disk when that is allowed and possible, else staged into the
    worker's cache (MC_WORKER_STAGING); every sha256 is checked here, before any runner code sees the file
    (runners check again before loading). Staged files stay pinned (never evicted) until `pins` closes: pass the
    stack that spans the run."""
    artifacts = list(Artifact.objects.filter(revision_id=job.revision_id))
    usable = [a for a in artifacts if a.format.lower() in loadable and not is_unsafe(a.path, a.format)]
    if not usable:
        unsafe = [a.path for a in artifacts if is_unsafe(a.path, a.format)]
        if unsafe:
            raise RunnerError(
                FailureReason.UNSAFE_FORMAT,
                f"Only pickle-based artifacts ({', '.join(unsafe)}); they are never loaded. "
                f"Upload one of: {', '.join(sorted(loadable))}.",
            )
        raise RunnerError(
            FailureReason.ARTIFACT_UNAVAILABLE,
            f"The revision has no artifact this runner can load ({', '.join(sorted(loadable))}).",
        )
    with contextlib.ExitStack() as scope:
        stage: Callable[[Blob, Sequence[BlobSource]], str] | None = None
        sources: list[BlobSource] = []
        specs = []
        for artifact in usable:
            local = _in_place(artifact)
            if local is None and not artifact.file and artifact.uri.startswith("file://"):
                # A development-only file:// record (MC_ARTIFACT_ALLOW_FILE_URIS): read where it points, if it is there.
                local = artifact.local_path()
                if local is None or not Path(local).is_file():
                    raise RunnerError(
                        FailureReason.ARTIFACT_UNAVAILABLE,
                        f"Artifact {artifact.path} is not reachable from this worker ({artifact.uri}).",
                    )
            if local is not None:
                verify_sha256(local, artifact.sha256)
            elif not artifact.file:
                raise RunnerError(
                    FailureReason.ARTIFACT_UNAVAILABLE,
                    f"Artifact {artifact.path} is not stored on the platform ({artifact.uri or 'no URI'}); "
                    "workers only read stored files.",
                )
            elif settings.MC_WORKER_STAGING == "local":
                raise RunnerError(
                    FailureReason.ARTIFACT_UNAVAILABLE,
                    f"Artifact {artifact.path} is not on this worker's disk ({artifact.file.name} under "
                    f"{settings.MEDIA_ROOT}) and MC_WORKER_STAGING=local fetches nothing.",
                )
            else:
                if stage is None:  # the first file this worker stages for the job
                    sources = staging_sources()
                    stage = (pins if pins is not None else scope).enter_context(worker_cache().session())
                blob = Blob(artifact.sha256, artifact.size_bytes, artifact.path, str(artifact.file.name))
                local = stage(blob, sources)
            extra = {"name": artifact.path} if _ARTIFACT_HAS_NAME else {}
            specs.append(
                ArtifactSpec(
                    path=local, sha256=artifact.sha256, format=artifact.format, size_bytes=artifact.size_bytes, **extra
                )
            )
        return tuple(specs)


class _Heartbeat(threading.Thread):
    """Keeps the leases (heartbeat_at) of the attempts this worker runs fresh while they run, and notices a cancel
    or a lost lease. One thread per message: a chunk of short jobs shares one, renewing every lease in one
    statement."""

    def __init__(self, attempts: dict[int, int], interval_s: float):
        super().__init__(daemon=True, name=f"mc-heartbeat-{min(attempts)}")
        self.attempts = dict(attempts)
        self.interval_s = interval_s
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.stopped: set[int] = set()

    def must_stop(self, job_id: int) -> bool:
        return job_id in self.stopped

    def release(self, job_ids: list[int]) -> None:
        """These attempts are recorded: stop renewing their leases."""
        with self.lock:
            for job_id in job_ids:
                self.attempts.pop(job_id, None)

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop_event.wait(self.interval_s):
                with self.lock:
                    attempts = dict(self.attempts)
                try:
                    self.stopped |= services.jobs_heartbeat(attempts=attempts)
                except Exception:  # noqa: BLE001 - a database blip must not kill the job; the next beat retries
                    logger.warning("heartbeat of jobs %s failed", sorted(attempts)[:10], exc_info=True)
        finally:
            connection.close()


def sandbox_policy() -> SandboxPolicy:
    """The runner sandbox's policy, from the settings."""
    return SandboxPolicy.from_settings(settings)


def wall_clock_limit(benchmark: Benchmark, *, in_process: bool) -> float:
    """Seconds a run may take: the benchmark's timeout_s, capped for every runner, and lower for in-process ones."""
    limit = min(float(benchmark.timeout_s), float(settings.MC_RUNNER_MAX_WALL_S))
    if in_process:
        limit = min(limit, float(settings.MC_IN_PROCESS_MAX_WALL_S))
    return max(limit, 1.0)


def _seed(job: BenchmarkJob) -> int:
    value = job.config.get("seed", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _run(job: BenchmarkJob, heartbeat: _Heartbeat) -> services.Completion | BenchmarkJob | None:
    """Run one claimed attempt. Returns what to record when it ran to the end; a failure is recorded here (and
    the job, or None when fenced off, is returned). The files staged for it stay pinned in the worker cache
    until it ends."""
    with contextlib.ExitStack() as pins:
        return _run_pinned(job, heartbeat, pins)


def _run_pinned(
    job: BenchmarkJob, heartbeat: _Heartbeat, pins: contextlib.ExitStack
) -> services.Completion | BenchmarkJob | None:
    attempt = job.attempts
    source: Benchmark | BenchmarkVersion = job.spec or job.benchmark
    runner_key = source.runner
    log_lines: list[str] = [f"attempt {attempt} on {job.worker_host}", f"runner {runner_key}"]
    seed = _seed(job)
    try:
        if heartbeat.must_stop(job.pk):
            raise JobCancelled()
        cls = runner_class(runner_key, allow_paths=settings.MC_ALLOW_RUNNER_PATHS)
        if cls is None:
            raise RunnerError(
                FailureReason.INVALID_CONFIG, f"The runner '{runner_key}' is not installed on worker {job.worker_host}."
            )
        loadable = frozenset(f.lower() for f in getattr(cls, "loadable_formats", frozenset()))
        spec = RunSpec(
            job_id=str(job.pk),
            artifacts=resolve_artifacts(job, loadable, pins) if loadable else (),
            dataset=resolve_dataset(source),
            config=dict(job.config),
            seed=seed,
        )
    except JobCancelled:
        return services.job_fail(
            job_id=job.pk,
            attempt=attempt,
            reason=FailureReason.CANCELLED,
            message="Cancelled before it started.",
            log_tail="\n".join([*log_lines, "cancelled before it started"]),
        )
    except RunnerError as exc:
        return services.job_fail(
            job_id=job.pk,
            attempt=attempt,
            reason=exc.reason,
            message=exc.message,
            log_tail="\n".join([*log_lines, f"error: {exc.message}"]),
        )

    min_interval = float(settings.MC_JOB_PROGRESS_MIN_INTERVAL_S)
    last_write = [time.monotonic()]
    reported: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        # Between batches: stop if a cancel was seen; write progress at most every min_interval (a run shorter
        # than that writes none: the completion records the last report), and stop if the write finds the job
        # cancelled or owned by another attempt. The heartbeat thread sees a cancel within a heartbeat.
        if heartbeat.must_stop(job.pk):
            raise JobCancelled()
        reported[:] = [(done, total)]
        now = time.monotonic()
        if now - last_write[0] < min_interval:
            return
        last_write[0] = now
        if services.job_progress(job_id=job.pk, attempt=attempt, done=done, total=total):
            raise JobCancelled()

    in_process = runner_key in settings.MC_IN_PROCESS_RUNNERS
    try:
        timeout_s = wall_clock_limit(job.benchmark, in_process=in_process)
        if in_process:
            result = run_in_process(cls(), spec, progress, timeout_s=timeout_s)
        else:
            result = run_in_child(
                runner_key,
                spec,
                progress,
                timeout_s=timeout_s,
                memory_mb=settings.MC_RUNNER_MEMORY_MB or None,
                policy=sandbox_policy(),
            )
    except JobCancelled:
        return services.job_fail(
            job_id=job.pk,
            attempt=attempt,
            reason=FailureReason.CANCELLED,
            message="Cancelled while running; stopped between batches.",
            log_tail="\n".join([*log_lines, "cancelled between batches"]),
        )
    except RunnerError as exc:
        tail = "\n".join(getattr(exc, "log_tail", None) or [])
        return services.job_fail(
            job_id=job.pk,
            attempt=attempt,
            reason=exc.reason,
            message=exc.message,
            log_tail="\n".join([*log_lines, tail, f"error: {exc.message}"]),
        )

    environment = {**result.environment, "worker": job.worker_host, "seed": seed}
    return services.Completion(
        job_id=job.pk,
        attempt=attempt,
        result=dataclasses.replace(result, environment=environment),
        log_tail="\n".join([*log_lines, *result.log]),
        seed=seed,
        progress=reported[0] if reported else None,
    )


def execute_jobs(jobs: list[BenchmarkJob]) -> dict[int, BenchmarkJob | None]:
    """Run claimed jobs one after the other (a chunk of short jobs, or a single job) under one heartbeat, and
    record each outcome fenced by its attempt: failures at once, results in bulk, at least every
    MC_RESULT_FLUSH_S and at the end. Returns {job id: the job as recorded, or None when fenced off}."""
    outcomes: dict[int, BenchmarkJob | None] = {}
    if not jobs:
        return outcomes
    heartbeat = _Heartbeat({job.pk: job.attempts for job in jobs}, float(settings.MC_JOB_HEARTBEAT_S))
    heartbeat.start()
    flush_every = float(settings.MC_RESULT_FLUSH_S)
    pending: list[services.Completion] = []
    pending_since = 0.0

    def flush() -> None:
        recorded = services.jobs_complete(pending)
        for completion in pending:
            outcomes[completion.job_id] = recorded.get(completion.job_id)
        heartbeat.release([c.job_id for c in pending])
        pending.clear()

    try:
        for job in jobs:
            outcome = _run(job, heartbeat)
            if isinstance(outcome, services.Completion):
                if not pending:
                    pending_since = time.monotonic()
                pending.append(outcome)
            else:
                outcomes[job.pk] = outcome
                heartbeat.release([job.pk])
            if pending and time.monotonic() - pending_since >= flush_every:
                flush()
        if pending:
            flush()
    finally:
        heartbeat.stop_event.set()
        heartbeat.join(timeout=5)
    return outcomes
