from __future__ import annotations

from typing import Any

from django.db.models import Manager
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.benchmarks.choices import JobStatus, ResourceClass
from apps.benchmarks.models import Benchmark, BenchmarkJob, BlockedVariant
from apps.core.serializers import FieldsBuiltOnce


class MetricSpecSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    higher_is_better = serializers.BooleanField(default=True)
    primary = serializers.BooleanField(default=False)


class DatasetSerializer(serializers.Serializer):
    uri = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="A path under the project, file://…, or a URI workers can reach.",
    )
    sha256 = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    license = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    size_bytes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0, max_value=2**62)


class BenchmarkSerializer(serializers.ModelSerializer):
    dataset = serializers.SerializerMethodField()
    metrics = MetricSpecSerializer(many=True)
    queue = serializers.CharField(read_only=True)
    versions = serializers.SerializerMethodField()

    class Meta:
        model = Benchmark
        fields = [
            "slug",
            "name",
            "version",
            "versions",
            "description",
            "task",
            "runner",
            "dataset",
            "metrics",
            "config_schema",
            "default_config",
            "resource_class",
            "queue",
            "timeout_s",
            "max_attempts",
            "tolerance",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(DatasetSerializer)
    def get_dataset(self, obj: Benchmark) -> dict[str, Any]:
        return {
            "uri": obj.dataset_uri,
            "sha256": obj.dataset_sha256,
            "license": obj.dataset_license,
            "size_bytes": obj.dataset_size_bytes,
        }

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_versions(self, obj: Benchmark) -> list[str]:
        return [v.version for v in obj.versions.all()]


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """JSON that must be an object (the serializer's validate_<field> refuses anything else, null included)."""


class BenchmarkWriteSerializer(serializers.Serializer):
    """Create (all required fields) or PATCH (any subset) a benchmark."""

    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    version = serializers.CharField(max_length=32, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    task = serializers.CharField(max_length=64, required=False, allow_blank=True)
    runner = serializers.CharField(max_length=200)
    dataset = DatasetSerializer(required=False)
    metrics = MetricSpecSerializer(many=True, allow_empty=False)
    config_schema = JSONObjectField(required=False, help_text="A JSON Schema (draft 2020-12) object.")
    default_config = JSONObjectField(required=False)
    resource_class = serializers.ChoiceField(choices=ResourceClass.choices, required=False)
    timeout_s = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 3600)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=10)
    tolerance = serializers.FloatField(required=False, min_value=0, max_value=1e12)
    is_active = serializers.BooleanField(required=False)

    def validate_config_schema(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON Schema object.")
        return value

    def validate_default_config(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value

    def to_service_fields(self, current: Benchmark | None = None) -> dict[str, Any]:
        data = dict(self.validated_data)
        dataset = data.pop("dataset", None)
        if dataset is not None:
            given = self.initial_data.get("dataset") if isinstance(self.initial_data, dict) else None
            keys = set(given) if isinstance(given, dict) else set(dataset)
            for key in ("uri", "sha256", "license", "size_bytes"):
                if current is None or key in keys:
                    data[f"dataset_{key}"] = dataset.get(key)
        if "metrics" in data:
            data["metrics"] = [dict(m) for m in data["metrics"]]
        return data


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
    seed = serializers.IntegerField()
    verified = serializers.BooleanField()
    verification_status = serializers.CharField()
    bundle = serializers.CharField(help_text="URL of the reproducibility bundle.")


class FailureSerializer(serializers.Serializer):
    reason = serializers.CharField()
    message = serializers.CharField()
    infrastructure = serializers.BooleanField(help_text="The submitter may re-run it without using quota.")


# DRF's representation of a model's DateTimeField (ISO 8601 in the current time zone, UTC as "Z").
_DATETIME = serializers.DateTimeField()


class JobListSerializer(serializers.ListSerializer):
    """Computes the page's queue positions in one go (a constant number of queries per page)."""

    def to_representation(self, data: Any) -> list[Any]:
        from apps.benchmarks.selectors import queue_positions

        items = list(data.all() if isinstance(data, Manager) else data)
        queue_positions(items)
        child = self.child
        assert child is not None  # a ListSerializer always has its child
        return [child.to_representation(item) for item in items]


class JobSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    variant = serializers.SerializerMethodField()
    revision = serializers.IntegerField(source="revision.number", read_only=True)
    benchmark = serializers.CharField(source="benchmark.slug", read_only=True)
    submitted_by = serializers.CharField(source="submitted_by.username", read_only=True)
    progress = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField(help_text="Alias of failure.")
    verifies: serializers.PrimaryKeyRelatedField[BenchmarkJob] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The job whose result this one re-runs, if any."
    )

    class Meta:
        model = BenchmarkJob
        list_serializer_class = JobListSerializer
        fields = [
            "id",
            "variant",
            "revision",
            "benchmark",
            "benchmark_version",
            "config",
            "status",
            "queue",
            "priority",
            "progress",
            "queue_position",
            "attempts",
            "max_attempts",
            "submitted_by",
            "worker_host",
            "verifies",
            "is_spot_check",
            "counts_against_quota",
            "cancel_requested",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
            "result",
            "failure",
            "error",
            "log_tail",
        ]
        read_only_fields = fields

    def to_representation(self, instance: BenchmarkJob) -> dict[str, Any]:
        if not hasattr(instance, "queue_position"):
            from apps.benchmarks.selectors import queue_positions

            queue_positions([instance])
        return self.represent(instance)

    def represent(self, job: BenchmarkJob) -> dict[str, Any]:
        """What DRF's field-by-field `to_representation` gives (Meta.fields, in order), written out: a job list or
        a batch of 500 spent a quarter of its time in DRF's per-field machinery (issue 16). Kept equal to DRF's own
        output by apps/benchmarks/tests/test_job_representation.py, which compares the two for jobs in every
        state; a field added to Meta.fields must be added here too (that test names it)."""
        when = _DATETIME.to_representation
        return {
            "id": job.pk,
            "variant": self.get_variant(job),
            "revision": job.revision.number,
            "benchmark": job.benchmark.slug,
            "benchmark_version": job.benchmark_version,
            "config": job.config,
            "status": job.status,
            "queue": job.queue,
            "priority": job.priority,
            "progress": self.get_progress(job),
            "queue_position": self.get_queue_position(job),
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "submitted_by": job.submitted_by.username,
            "worker_host": job.worker_host,
            "verifies": job.verifies_id,
            "is_spot_check": job.is_spot_check,
            "counts_against_quota": job.counts_against_quota,
            "cancel_requested": job.cancel_requested,
            "created_at": when(job.created_at) if job.created_at is not None else None,
            "queued_at": when(job.queued_at) if job.queued_at is not None else None,
            "started_at": when(job.started_at) if job.started_at is not None else None,
            "finished_at": when(job.finished_at) if job.finished_at is not None else None,
            "result": self.get_result(job),
            "failure": self.get_failure(job),
            "error": self.get_error(job),
            "log_tail": job.log_tail,
        }

    def get_variant(self, obj: BenchmarkJob) -> str:
        return obj.revision.variant.full_name

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj: BenchmarkJob) -> dict[str, Any]:
        total = obj.progress_total
        done = min(obj.progress_done, total) if total else obj.progress_done
        percent = 100.0 if obj.status == JobStatus.SUCCEEDED else (round(100.0 * done / total, 1) if total else 0.0)
        eta = None
        if obj.status == JobStatus.RUNNING and obj.started_at and done and total:
            elapsed = (timezone.now() - obj.started_at).total_seconds()
            eta = round(max(0.0, elapsed / done * (total - done)), 1)
        elif obj.status == JobStatus.QUEUED:
            eta = getattr(obj, "queue_eta_s", None)
        return {"done": done, "total": total, "percent": percent, "eta_s": eta}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_queue_position(self, obj: BenchmarkJob) -> int | None:
        return getattr(obj, "queue_position", None) if obj.status == JobStatus.QUEUED else None

    @extend_schema_field(ResultSerializer(allow_null=True))
    def get_result(self, obj: BenchmarkJob) -> dict[str, Any] | None:
        result = getattr(obj, "result", None) if obj.status == JobStatus.SUCCEEDED else None
        if result is None:
            return None
        return {
            "metrics": result.metrics,
            "stderr": result.stderr,
            "samples": result.samples,
            "duration_s": result.duration_s,
            "runner": result.runner,
            "runner_version": result.runner_version,
            "environment": result.environment,
            "seed": result.seed,
            "verified": result.verified,
            "verification_status": result.verification_status,
            "bundle": reverse("job-bundle", kwargs={"pk": obj.pk}),
        }

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_failure(self, obj: BenchmarkJob) -> dict[str, Any] | None:
        if not obj.failure_reason:
            return None
        from apps.benchmarks.choices import INFRASTRUCTURE_FAILURES

        return {
            "reason": obj.failure_reason,
            "message": obj.failure_message,
            "infrastructure": obj.failure_reason in INFRASTRUCTURE_FAILURES,
        }

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_error(self, obj: BenchmarkJob) -> dict[str, Any] | None:
        return self.get_failure(obj)


class JobCreateSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=200, help_text="owner/name")
    revision = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Defaults to the current revision."
    )
    benchmark = serializers.SlugField(max_length=64)
    config = serializers.DictField(required=False, default=dict)
    priority = serializers.IntegerField(
        required=False, default=0, min_value=-100, max_value=100, help_text="Maintainers only; ignored for others."
    )


class BlockedVariantSerializer(serializers.ModelSerializer):
    variant = serializers.CharField(source="variant.full_name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = BlockedVariant
        fields = ["id", "variant", "reason", "created_by", "created_at"]
        read_only_fields = fields


class BlockedVariantCreateSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=200, help_text="owner/name")
    reason = serializers.CharField(max_length=500)


class JobBatchItemSerializer(serializers.Serializer):
    variant = serializers.CharField(max_length=200, help_text="owner/name")
    revision = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Defaults to the current revision."
    )
    benchmark = serializers.SlugField(max_length=64)
    config = serializers.DictField(required=False, default=dict)


class JobBatchSerializer(serializers.Serializer):
    # DRF hands max_length on to the ListSerializer that many=True makes; the stubs do not list it.
    jobs = JobBatchItemSerializer(many=True, allow_empty=False, max_length=500)  # type: ignore[call-arg]
    priority = serializers.IntegerField(
        required=False, default=0, min_value=-100, max_value=100, help_text="Maintainers only; ignored for others."
    )


class JobBatchResultSerializer(serializers.Serializer):
    created = serializers.ListField(
        child=serializers.BooleanField(), help_text="Per item: a new job (true) or an existing one (false)."
    )
    jobs = JobSerializer(many=True)
