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


class JobEvent(models.TextChoices):
    """What moves a job from one status to another. Each (from, to) pair of the table has exactly one event."""

    CLAIM = "claim"  # a worker takes the lease (compare-and-set)
    SUCCEED = "succeed"  # the attempt's result is written, exactly once
    FAIL = "fail"  # a deterministic failure, or a retryable one with no attempts left
    TIME_OUT = "time_out"  # the run hit its wall-clock limit
    CANCEL = "cancel"  # at once while queued, at the next checkpoint while running
    REQUEUE = "requeue"  # a retryable failure or a lost worker with attempts left (after a backoff)
    RETRY = "retry"  # a maintainer's retry or the submitter's re-run, with a fresh attempt budget


J = JobStatus
E = JobEvent
#: The job state machine, the one copy: from status -> {to status: the event that makes that move}. Services
#: ask it (BenchmarkJob.can_transition_to / check_transition) before writing a status, querysets derive the
#: statuses they filter on from it, and refusals quote it.
JOB_TRANSITIONS: dict[str, dict[str, str]] = {
    J.QUEUED: {J.RUNNING: E.CLAIM, J.CANCELLED: E.CANCEL},
    J.RUNNING: {
        J.SUCCEEDED: E.SUCCEED,
        J.FAILED: E.FAIL,
        J.TIMED_OUT: E.TIME_OUT,
        J.CANCELLED: E.CANCEL,
        J.QUEUED: E.REQUEUE,
    },
    J.SUCCEEDED: {},
    J.FAILED: {J.QUEUED: E.RETRY},
    J.CANCELLED: {},
    J.TIMED_OUT: {J.QUEUED: E.RETRY},
}


def job_transition_targets(current: str) -> tuple[str, ...]:
    """The statuses a job may move to from `current`, in the table's order."""
    return tuple(JOB_TRANSITIONS.get(current, {}))


def job_transition_allowed(current: str, target: str, *, by: str | None = None) -> bool:
    """Whether the table allows `current` -> `target` (made by the event `by`, when given)."""
    event = JOB_TRANSITIONS.get(current, {}).get(target)
    return event is not None and (by is None or event == by)


def job_statuses_allowing(event: str) -> tuple[str, ...]:
    """The statuses from which `event` applies, in JobStatus order (what querysets filter on)."""
    return tuple(status for status in JobStatus.values if event in JOB_TRANSITIONS.get(status, {}).values())


def job_event_target(event: str) -> str:
    """The status an event moves a job to (each event has one)."""
    return next(target for moves in JOB_TRANSITIONS.values() for target, e in moves.items() if e == event)


# A job is active while it can still be cancelled: queued or running. The others are terminal (a failed or
# timed-out job may still be retried, as a new run of the same job).
ACTIVE_JOB_STATUSES = job_statuses_allowing(JobEvent.CANCEL)
TERMINAL_JOB_STATUSES = tuple(status for status in JobStatus.values if status not in ACTIVE_JOB_STATUSES)
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
