from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob


class MetricSpecSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    higher_is_better = serializers.BooleanField(default=True)
    primary = serializers.BooleanField(default=False)


class BenchmarkSerializer(serializers.ModelSerializer):
    dataset = serializers.SerializerMethodField()
    metrics = MetricSpecSerializer(many=True)

    class Meta:
        model = Benchmark
        fields = ["slug", "name", "version", "description", "task", "runner", "dataset", "metrics",
                  "config_schema", "default_config", "resource_class", "timeout_s", "max_attempts", "tolerance",
                  "is_active", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_dataset(self, obj: Benchmark) -> dict[str, Any]:
        return {"uri": obj.dataset_uri, "sha256": obj.dataset_sha256, "license": obj.dataset_license,
                "size_bytes": obj.dataset_size_bytes}


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()
    eta_s = serializers.FloatField(allow_null=True)


class ResultSerializer(serializers.Serializer):
    metrics = serializers.DictField(child=serializers.FloatField())
    stderr = serializers.DictField(child=serializers.FloatField())
    samples = serializers.IntegerField()
    duration_s = serializers.FloatField()
    runner = serializers.CharField()
    runner_version = serializers.CharField()
    environment = serializers.DictField()
    verified = serializers.BooleanField()


class FailureSerializer(serializers.Serializer):
    reason = serializers.CharField()
    message = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    variant = serializers.SerializerMethodField()
    revision = serializers.IntegerField(source="revision.number", read_only=True)
    benchmark = serializers.CharField(source="benchmark.slug", read_only=True)
    submitted_by = serializers.CharField(source="submitted_by.username", read_only=True)
    progress = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField(help_text="Alias of failure.")

    class Meta:
        model = BenchmarkJob
        fields = ["id", "variant", "revision", "benchmark", "benchmark_version", "config", "status", "queue",
                  "priority", "progress", "queue_position", "attempts", "max_attempts", "submitted_by",
                  "worker_host", "created_at", "started_at", "finished_at", "result", "failure", "error",
                  "log_tail"]
        read_only_fields = fields

    def get_variant(self, obj: BenchmarkJob) -> str:
        return obj.revision.variant.full_name

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: BenchmarkJob) -> dict[str, Any]:
        total = obj.progress_total
        done = min(obj.progress_done, total) if total else obj.progress_done
        if obj.status == JobStatus.SUCCEEDED:
            percent = 100.0
        else:
            percent = round(100.0 * done / total, 1) if total else 0.0
        eta = None
        if obj.status == JobStatus.RUNNING and obj.started_at and done and total:
            from django.utils import timezone

            elapsed = (timezone.now() - obj.started_at).total_seconds()
            eta = round(elapsed / done * (total - done), 1)
        elif obj.status == JobStatus.QUEUED:
            eta = self._queue_eta(obj)
        return {"done": done, "total": total, "percent": percent, "eta_s": eta}

    def _queue_eta(self, obj: BenchmarkJob) -> float | None:
        durations: dict[str, float | None] = self.context.setdefault("_queue_durations", {})
        if obj.queue not in durations:
            from apps.benchmarks.selectors import recent_mean_duration_s

            durations[obj.queue] = recent_mean_duration_s(obj.queue)
        mean = durations[obj.queue]
        if mean is None:
            return None
        return round(mean * (getattr(obj, "jobs_ahead", 0) + 1), 1)

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_queue_position(self, obj: BenchmarkJob) -> int | None:
        if obj.status != JobStatus.QUEUED:
            return None
        return int(getattr(obj, "jobs_ahead", 0)) + 1

    @extend_schema_field(ResultSerializer(allow_null=True))
    def get_result(self, obj: BenchmarkJob) -> dict[str, Any] | None:
        result = getattr(obj, "result", None)
        if result is None:
            return None
        return {"metrics": result.metrics, "stderr": result.stderr, "samples": result.samples,
                "duration_s": result.duration_s, "runner": result.runner, "runner_version": result.runner_version,
                "environment": result.environment, "verified": result.verified}

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_failure(self, obj: BenchmarkJob) -> dict[str, str] | None:
        if not obj.failure_reason:
            return None
        return {"reason": obj.failure_reason, "message": obj.failure_message}

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_error(self, obj: BenchmarkJob) -> dict[str, str] | None:
        return self.get_failure(obj)


class JobCreateSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=200, help_text="owner/name")
    revision = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1,
                                        help_text="Defaults to the current revision.")
    benchmark = serializers.SlugField(max_length=64)
    config = serializers.DictField(required=False, default=dict)
    priority = serializers.IntegerField(required=False, default=0, min_value=-100, max_value=100,
                                        help_text="Maintainers only; ignored for others.")
