from django.db import models


class ResourceClass(models.TextChoices):
    CPU = "cpu"
    GPU = "gpu"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


J = JobStatus
JOB_TRANSITIONS: dict[str, tuple[str, ...]] = {
    J.QUEUED: (J.RUNNING, J.CANCELLED, J.FAILED),
    # RUNNING -> QUEUED is a retry with attempts left (backoff) or a stale-heartbeat requeue.
    J.RUNNING: (J.SUCCEEDED, J.FAILED, J.CANCELLED, J.TIMED_OUT, J.QUEUED),
    J.SUCCEEDED: (),
    J.FAILED: (J.QUEUED,),  # maintainer retry / submitter re-run of infrastructure failures
    J.CANCELLED: (),
    J.TIMED_OUT: (J.QUEUED,),
}
ACTIVE_JOB_STATUSES = (J.QUEUED, J.RUNNING)
TERMINAL_JOB_STATUSES = (J.SUCCEEDED, J.FAILED, J.CANCELLED, J.TIMED_OUT)


class FailureReason(models.TextChoices):
    ARTIFACT_UNAVAILABLE = "artifact_unavailable"
    HASH_MISMATCH = "hash_mismatch"
    UNSAFE_FORMAT = "unsafe_format"
    INVALID_CONFIG = "invalid_config"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    RUNNER_ERROR = "runner_error"
    WORKER_LOST = "worker_lost"
    CANCELLED = "cancelled"


INFRASTRUCTURE_FAILURES = (FailureReason.WORKER_LOST, FailureReason.ARTIFACT_UNAVAILABLE)
# Failures that another attempt could fix; the rest are deterministic and end the job at once.
RETRYABLE_FAILURES = (FailureReason.WORKER_LOST, FailureReason.ARTIFACT_UNAVAILABLE, FailureReason.RUNNER_ERROR)


def queue_for(resource_class: str) -> str:
    return f"bench.{resource_class}"
