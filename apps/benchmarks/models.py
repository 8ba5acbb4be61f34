"""Benchmarks, suites, jobs and results."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .choices import FailureReason, JobStatus, ResourceClass, queue_for


class Benchmark(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    version = models.CharField(max_length=32, default="1")
    description = models.TextField(blank=True, default="")
    task = models.CharField(max_length=64, blank=True, default="")
    runner = models.CharField(max_length=64)
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
    tolerance = models.FloatField(default=0.01)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"

    @property
    def queue(self) -> str:
        return queue_for(self.resource_class)

    @property
    def primary_metric(self) -> str | None:
        for metric in self.metrics:
            if metric.get("primary"):
                return str(metric["name"])
        return str(self.metrics[0]["name"]) if self.metrics else None


class BenchmarkJob(models.Model):
    revision = models.ForeignKey("registry.Revision", on_delete=models.PROTECT, related_name="jobs")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="jobs")
    benchmark_version = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    config_hash = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    queue = models.CharField(max_length=32, default="bench.cpu")
    priority = models.IntegerField(default=0)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    verifies = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="verifications")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    counts_against_quota = models.BooleanField(default=True)

    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Backoff: not dispatched before this.")
    dispatched_at = models.DateTimeField(null=True, blank=True)
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

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "queue", "priority", "id"]),
            models.Index(fields=["submitted_by", "status"]),
            models.Index(fields=["revision", "benchmark", "config_hash"]),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"


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
    verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"result of job {self.job_id}"
