"""Vocabularies and the job state machine of the benchmark engine."""

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
# A new submission with the same key makes a new job only when the earlier one ended without a result.
DEDUPE_EXCLUDED_STATUSES = (J.FAILED, J.CANCELLED, J.TIMED_OUT)


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
    # The run ended on an operation the runner sandbox blocked (network, a file outside it, a process limit).
    SANDBOX_VIOLATION = "sandbox_violation"
    # The worker could not set up the sandbox its policy asks for (MC_SANDBOX), and refused the run.
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"


INFRASTRUCTURE_FAILURES = (
    FailureReason.WORKER_LOST,
    FailureReason.ARTIFACT_UNAVAILABLE,
    FailureReason.SANDBOX_UNAVAILABLE,
)
# Failures that another attempt could fix; the rest are deterministic and end the job at once.
RETRYABLE_FAILURES = (
    FailureReason.WORKER_LOST,
    FailureReason.ARTIFACT_UNAVAILABLE,
    FailureReason.RUNNER_ERROR,
    FailureReason.SANDBOX_UNAVAILABLE,
)


class VerificationStatus(models.TextChoices):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"  # an independent re-run agreed within the benchmark's tolerance
    DISPUTED = "disputed"  # a re-run disagreed: flagged for maintainers


class SubmissionCheck(models.TextChoices):
    """Why a submission was refused before it was queued (the Open LLM Leaderboard's pre-queue checks)."""

    NO_LOADABLE_ARTIFACT = "no_loadable_artifact"
    CARD_TOO_SHORT = "card_too_short"
    LICENSE_MISSING = "license_missing"
    VARIANT_BLOCKED = "variant_blocked"
    REVISION_CLOSED = "revision_closed"


# Benchmark fields whose change alters what a result means; changing one starts a new version.
VERSIONED_BENCHMARK_FIELDS = ("runner", "dataset_uri", "dataset_sha256", "metrics", "config_schema", "default_config")


def queue_for(resource_class: str) -> str:
    return f"bench.{resource_class}"


def worker_queue(worker_name: str) -> str:
    """The private queue every worker consumes besides its resource-class queues (verification routing)."""
    return f"mc.worker.{worker_name}"
