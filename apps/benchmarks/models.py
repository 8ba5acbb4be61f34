"""Benchmarks, their versions, jobs, results, verifications, and the bookkeeping rows of fair dispatch."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.conditional import etag_for
from apps.core.errors import InvalidTransition

from .choices import (
    DEDUPE_EXCLUDED_STATUSES,
    FailureReason,
    JobStatus,
    ResourceClass,
    VerificationStatus,
    job_statuses_allowing,
    job_transition_allowed,
    job_transition_targets,
    queue_for,
)
from .querysets import BenchmarkJobQuerySet, BenchmarkQuerySet


class Benchmark(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=32, default="1", help_text="Results belong to one version.")
    description = models.TextField(blank=True, default="")
    task = models.CharField(max_length=64, blank=True, default="")
    runner = models.CharField(max_length=200)
    dataset_uri = models.CharField(max_length=1000, blank=True, default="")
    dataset_sha256 = models.CharField(max_length=64, blank=True, default="")
    dataset_license = models.CharField(max_length=64, blank=True, default="")
    dataset_size_bytes = models.BigIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=list, help_text="[{name, higher_is_better, primary}]")
    config_schema = models.JSONField(default=dict)
    default_config = models.JSONField(default=dict)
    resource_class = models.CharField(max_length=8, choices=ResourceClass.choices, default=ResourceClass.CPU)
    timeout_s = models.PositiveIntegerField(default=600)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    tolerance = models.FloatField(
        default=0.01,
        help_text="Largest |difference| of the primary metric between two runs that still counts as agreement.",
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BenchmarkQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"

    @property
    def etag(self) -> str:
        """Changes with every write: detail GETs send it, PATCH honours If-Match against it."""
        return etag_for(f"benchmark:{self.pk}:{self.version}:{self.updated_at.isoformat() if self.updated_at else ''}")

    @property
    def queue(self) -> str:
        return queue_for(self.resource_class)

    @property
    def primary_metric(self) -> str | None:
        return primary_metric_of(self.metrics)


def primary_metric_of(metrics: list[dict[str, object]]) -> str | None:
    for metric in metrics or []:
        if metric.get("primary"):
            return str(metric["name"])
    return str(metrics[0]["name"]) if metrics else None


class BenchmarkVersion(models.Model):
    """What a version of a benchmark evaluates, frozen: jobs run (and bundles report) their version's spec
    even after the benchmark moved on."""

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32)
    runner = models.CharField(max_length=200)
    dataset_uri = models.CharField(max_length=1000, blank=True, default="")
    dataset_sha256 = models.CharField(max_length=64, blank=True, default="")
    dataset_license = models.CharField(max_length=64, blank=True, default="")
    dataset_size_bytes = models.BigIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=list)
    config_schema = models.JSONField(default=dict)
    default_config = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["benchmark_id", "-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["benchmark", "version"], name="benchmark_version_unique")]

    def __str__(self) -> str:
        return f"{self.benchmark_id} v{self.version}"

    @property
    def primary_metric(self) -> str | None:
        return primary_metric_of(self.metrics)


class BenchmarkJob(models.Model):
    revision = models.ForeignKey("registry.Revision", on_delete=models.PROTECT, related_name="jobs")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="jobs")
    benchmark_version = models.CharField(max_length=32)
    spec = models.ForeignKey(
        BenchmarkVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="jobs",
        help_text="The frozen benchmark version this job runs.",
    )
    config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    queue = models.CharField(max_length=32, default="bench.cpu")
    priority = models.IntegerField(default=0)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    # The namespace whose quota and fair share the job uses (apps.benchmarks.services.quota explains the rule):
    # the organization's account for a member's job on the organization's variant, the submitter otherwise.
    # Indexed by the (charged_to, ...) composites below.
    charged_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="charged_jobs",
        db_index=False,
        help_text="The namespace (a user or an organization's account) charged for this job.",
    )
    verifies = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="verifications")
    is_spot_check = models.BooleanField(default=False, help_text="Started by the adaptive verification policy.")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    counts_against_quota = models.BooleanField(default=True)

    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Backoff: not dispatched before this.")
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the current message was sent; null while it waits for the fair-share dispatcher.",
    )
    dispatch_count = models.PositiveIntegerField(default=0)
    exclude_worker = models.CharField(
        max_length=200, blank=True, default="", help_text="Verification: run anywhere but on this worker if possible."
    )
    target_worker = models.CharField(
        max_length=200, blank=True, default="", help_text="The worker whose private queue got the current message."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=200, blank=True, default="")

    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    compute_seconds = models.FloatField(default=0.0)

    failure_reason = models.CharField(max_length=32, choices=FailureReason.choices, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    log_tail = models.TextField(blank=True, default="")

    objects = BenchmarkJobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "queue", "priority", "id"]),
            models.Index(fields=["queue", "status", "dispatched_at"], name="job_dispatch_idx"),
            models.Index(fields=["submitted_by", "status"]),
            models.Index(fields=["charged_to", "status"], name="job_charged_active_idx"),
            models.Index(fields=["charged_to", "finished_at"], name="job_charged_window_idx"),
            models.Index(fields=["revision", "benchmark", "config_hash"]),
            # A queue's latest successes, for queue ETAs (selectors.queue_positions, recent_mean_duration_s): read
            # backwards, 50 entries. Without it every queued job's representation sorted the queue's whole history.
            models.Index(fields=["queue", "status", "finished_at"], name="job_queue_recent_idx"),
        ]
        constraints = [
            # Dedupe in the database: at most one live-or-succeeded primary job per key, even under races.
            models.UniqueConstraint(
                fields=["revision", "benchmark", "benchmark_version", "config_hash"],
                condition=Q(verifies__isnull=True) & ~Q(status__in=DEDUPE_EXCLUDED_STATUSES),
                name="job_dedupe_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The services name the namespace; a row made elsewhere (fixtures, the shell) is charged to its submitter.
        if self._state.adding and self.charged_to_id is None and self.submitted_by_id is not None:
            self.charged_to_id = self.submitted_by_id
        super().save(*args, **kwargs)

    @property
    def is_verification(self) -> bool:
        return self.verifies_id is not None

    def allowed_transitions(self) -> tuple[str, ...]:
        """The statuses this job may move to next (apps.benchmarks.choices.JOB_TRANSITIONS)."""
        return job_transition_targets(self.status)

    def can_transition_to(self, target: str, *, by: str | None = None) -> bool:
        """Whether the state machine allows this job to move to `target` (by the event `by`, when given: a
        failed job may be retried to queued, a running one only requeued)."""
        return job_transition_allowed(self.status, target, by=by)

    def check_transition(self, target: str, *, by: str | None = None) -> None:
        """Raise InvalidTransition (409) unless :meth:`can_transition_to`; the message quotes the table."""
        if self.can_transition_to(target, by=by):
            return
        allowed = list(self.allowed_transitions())
        detail = ""
        if by is not None and target in allowed:
            sources = " or ".join(job_statuses_allowing(by))
            detail = f"Cannot {by} a job that is {self.status}: {by} takes a job from {sources} to {target}."
        extra = {"event": by} if by is not None else {}
        raise InvalidTransition(current=self.status, target=target, allowed=allowed, detail=detail, **extra)


class JobResult(models.Model):
    """Written exactly once per job, fenced by the attempt that produced it."""

    job = models.OneToOneField(BenchmarkJob, on_delete=models.CASCADE, related_name="result")
    attempt = models.PositiveSmallIntegerField()
    metrics = models.JSONField(default=dict)
    stderr = models.JSONField(default=dict)
    samples = models.PositiveIntegerField(default=0)
    duration_s = models.FloatField(default=0.0)
    runner = models.CharField(max_length=64)
    runner_version = models.CharField(max_length=32)
    environment = models.JSONField(default=dict)
    seed = models.IntegerField(default=0)
    verified = models.BooleanField(default=False, db_index=True)
    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices, default=VerificationStatus.UNVERIFIED, db_index=True
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"result of job {self.job_id}"


class ResultVerification(models.Model):
    """One independent re-run of a result and what it found (BOINC-style redundancy)."""

    result = models.ForeignKey(JobResult, on_delete=models.CASCADE, related_name="verifications")
    verifier_job = models.OneToOneField(BenchmarkJob, on_delete=models.CASCADE, related_name="verification_of")
    agreed = models.BooleanField(null=True, help_text="Null when the re-run itself failed.")
    metric = models.CharField(max_length=64, blank=True, default="")
    original_value = models.FloatField(null=True, blank=True)
    verifier_value = models.FloatField(null=True, blank=True)
    delta = models.FloatField(null=True, blank=True)
    tolerance = models.FloatField(default=0.0)
    original_worker = models.CharField(max_length=200, blank=True, default="")
    verifier_worker = models.CharField(max_length=200, blank=True, default="")
    note = models.CharField(max_length=500, blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"verification of {self.result_id} by job {self.verifier_job_id}"

    @property
    def same_worker(self) -> bool:
        return bool(self.original_worker) and self.original_worker == self.verifier_worker


class SubmitterProfile(models.Model):
    """Per submitter: the row locked to enforce the quota, and the verification record that decides how
    often their results are spot-checked."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="benchmark_profile"
    )
    agreements = models.PositiveIntegerField(default=0)
    disagreements = models.PositiveIntegerField(default=0)
    consecutive_agreements = models.PositiveIntegerField(default=0)
    last_disagreement_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class WorkerNode(models.Model):
    """A Celery worker seen recently: where verification re-runs can be routed, and its own record."""

    name = models.CharField(max_length=200, primary_key=True, help_text="Celery node name, e.g. w1@host.")
    hostname = models.CharField(max_length=200, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    queues = models.JSONField(default=list)
    started_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    agreements = models.PositiveIntegerField(default=0)
    disagreements = models.PositiveIntegerField(default=0)
    consecutive_agreements = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BlockedVariant(models.Model):
    """The maintainers' blocklist: no new job is queued for these variants."""

    variant = models.OneToOneField("registry.Variant", on_delete=models.CASCADE, related_name="benchmark_block")
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"blocked {self.variant_id}: {self.reason[:40]}"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for retries of that request."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=64, default="jobs.create")
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "scope", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class DispatchQueue(models.Model):
    """One row per broker queue, locked while the dispatcher decides what to send next."""

    name = models.CharField(max_length=64, primary_key=True)
    last_dispatch_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class ComputeUsage(models.Model):
    """The compute seconds charged to a namespace, per hour in which jobs finished: what makes a namespace's daily
    compute budget cost the same to check whatever the number of its jobs (SPEC §2 Fairness; issue 16).

    Written only by the database: triggers on BenchmarkJob (migration 0006; on PostgreSQL one run per statement,
    over its transition tables, so finishing a chunk of jobs adds once per namespace and hour) add a job's
    `compute_seconds` to the row of (`charged_to`, hour of `finished_at`) when it counts against the quota, and
    take it off again when any of those columns changes or the job is deleted, so every write path (the services,
    bulk updates, the admin, fixtures) keeps the invariant

        sum(seconds) per (namespace, hour) = sum(compute_seconds) of the jobs charged to it that count against the
        quota and finished in that hour.

    `hour` is whole hours since the Unix epoch (UTC). `writer` is the PostgreSQL backend (pid) whose transaction
    wrote the row (always 0 on SQLite, which has one writer at a time): each backend adds only to its own rows, so
    two workers finishing jobs of one namespace at once never wait on each other's row locks, and can never
    deadlock over them. A reader sums the rows of the hours it needs, a few per hour whatever the number of jobs.
    Rows older than two days are never read (:func:`apps.benchmarks.selectors.quota_usage_row` reads the last 24
    hours) and are pruned by the recovery beat."""

    namespace_id = models.BigIntegerField()
    hour = models.BigIntegerField()
    writer = models.IntegerField(default=0)
    seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["namespace_id", "hour", "writer"], name="compute_usage_key")]
        indexes = [models.Index(fields=["hour"], name="compute_usage_hour_idx")]

    def __str__(self) -> str:
        return f"namespace {self.namespace_id}, hour {self.hour}: {self.seconds:.3f} s"

    @staticmethod
    def hour_of(moment: datetime) -> int:
        """The `hour` a moment falls in (the triggers' floor(epoch / 3600))."""
        return math.floor(moment.timestamp() / 3600)

    @staticmethod
    def hour_start(hour: int) -> datetime:
        """The first moment of an `hour`, in UTC."""
        return datetime.fromtimestamp(hour * 3600, tz=UTC)
