"""The benchmark engine in the moderation console: benchmarks, jobs (bulk cancel and retry through the
services), results and their verifications (disputes to settle), the blocklist, workers and submitters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.types import signed_in
from apps.core.errors import DomainError

from . import services
from .choices import JobStatus, VerificationStatus
from .models import (
    Benchmark,
    BenchmarkJob,
    BenchmarkVersion,
    BlockedVariant,
    ComputeUsage,
    JobResult,
    ResultVerification,
    SubmitterProfile,
    WorkerNode,
)
from .services.verification import verification_resolve


class ReadOnlyAdminMixin:
    """State changes go through services (audited); the admin shows rows and offers actions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


VERSION_FIELDS = ("version", "runner", "dataset_uri", "dataset_sha256", "created_by", "created_at")


class BenchmarkVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = BenchmarkVersion
    extra = 0
    fields = VERSION_FIELDS
    readonly_fields = VERSION_FIELDS
    show_change_link = False


class BenchmarkAdminForm(forms.ModelForm):
    """Runs the services' rules in the form, so a bad definition comes back with its field errors."""

    class Meta:
        model = Benchmark
        fields = ["slug", *services.BENCHMARK_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("default_config", "dataset_uri", "dataset_sha256", "dataset_license", "description", "task"):
            self.fields[name].required = False

    def clean_default_config(self) -> Any:
        return self.cleaned_data.get("default_config") or {}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        merged = {f: data.get(f, getattr(self.instance, f, None)) for f in services.BENCHMARK_FIELDS}
        for field, messages_ in services.benchmark_definition_errors(merged).items():
            if field in self.fields:
                for message in messages_:
                    self.add_error(field, message)
            else:
                self.add_error(None, f"{field}: {' '.join(messages_)}")
        if self.instance.pk:
            from .choices import VERSIONED_BENCHMARK_FIELDS

            changed = [f for f in VERSIONED_BENCHMARK_FIELDS if merged.get(f) != getattr(self.instance, f)]
            same_version = merged.get("version") == self.instance.version
            if changed and same_version and not str(self.instance.version).isdigit():
                self.add_error(
                    "version", f"Changing {', '.join(changed)} changes what results mean: give a new version."
                )
        return data


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    form = BenchmarkAdminForm
    list_display = ["slug", "name", "version", "runner", "resource_class", "is_active", "updated_at"]
    list_filter = ["is_active", "resource_class", "runner", "task"]
    search_fields = ["slug", "name", "description", "runner"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [BenchmarkVersionInline]

    def save_model(self, request: HttpRequest, obj: Benchmark, form: Any, change: bool) -> None:
        # Through the services: audit, version bump, frozen spec. The form already ran their rules.
        fields = {f: form.cleaned_data[f] for f in services.BENCHMARK_FIELDS if f in form.cleaned_data}
        if change:
            saved = services.benchmark_update(
                benchmark=Benchmark.objects.get(pk=obj.pk), actor=signed_in(request.user), changes=fields
            )
        else:
            saved = services.benchmark_create(actor=signed_in(request.user), slug=form.cleaned_data["slug"], **fields)
        obj.pk, obj.version = saved.pk, saved.version


class JobStateFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("primary", "Primary jobs"),
            ("verification", "Verification re-runs"),
            ("spot", "Spot checks"),
            ("stuck", "Running with a stale lease"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BenchmarkJob]) -> QuerySet[BenchmarkJob]:
        from django.conf import settings

        value = self.value()
        if value == "primary":
            return queryset.filter(verifies__isnull=True)
        if value == "verification":
            return queryset.filter(verifies__isnull=False)
        if value == "spot":
            return queryset.filter(is_spot_check=True)
        if value == "stuck":
            stale = timezone.now() - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
            return queryset.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
        return queryset


@admin.register(BenchmarkJob)
class BenchmarkJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "variant_name",
        "benchmark",
        "benchmark_version",
        "status",
        "queue",
        "priority",
        "submitted_by",
        "attempts",
        "failure_reason",
        "worker_host",
        "created_at",
        "finished_at",
    ]
    list_filter = [
        "status",
        "queue",
        "failure_reason",
        "benchmark",
        JobStateFilter,
        "counts_against_quota",
        "created_at",
    ]
    search_fields = [
        "=id",
        "revision__variant__name",
        "revision__variant__owner__username",
        "submitted_by__username",
        "benchmark__slug",
        "worker_host",
        "failure_message",
    ]
    list_select_related = ["revision__variant__owner", "benchmark", "submitted_by"]
    readonly_fields = [f.name for f in BenchmarkJob._meta.fields]
    actions = ["cancel_jobs", "retry_jobs", "verify_jobs"]
    date_hierarchy = "created_at"
    change_list_template = "admin/benchmarks/benchmarkjob/change_list.html"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Needed to see the actions; the form itself is all read-only fields.
        return bool(request.user.has_perm("benchmarks.change_benchmarkjob"))

    @admin.display(description="variant", ordering="revision__variant__name")
    def variant_name(self, obj: BenchmarkJob) -> str:
        return f"{obj.revision.variant.full_name}@{obj.revision.number}"

    def _bulk(self, request: HttpRequest, queryset: QuerySet[BenchmarkJob], verb: str, call: Any) -> None:
        done, refused = 0, []
        for job in queryset:
            try:
                call(job)
                done += 1
            except DomainError as exc:
                refused.append(f"#{job.pk}: {exc.detail}")
        if done:
            self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Refused: " + "; ".join(refused[:20]), messages.WARNING)

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[BenchmarkJob]) -> None:
        self._bulk(
            request, queryset, "Cancelled", lambda job: services.job_cancel(job=job, actor=signed_in(request.user))
        )

    @admin.action(description="Retry selected failed jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[BenchmarkJob]) -> None:
        self._bulk(
            request, queryset, "Requeued", lambda job: services.job_retry(job=job, actor=signed_in(request.user))
        )

    @admin.action(description="Verify selected results (re-run on another worker)")
    def verify_jobs(self, request: HttpRequest, queryset: QuerySet[BenchmarkJob]) -> None:
        self._bulk(
            request,
            queryset,
            "Queued verification of",
            lambda job: services.job_verify(job=job, actor=signed_in(request.user)),
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        now = timezone.now()
        per_queue = (
            BenchmarkJob.objects.order_by()
            .values("queue")
            .annotate(
                queued=Count("id", filter=Q(status=JobStatus.QUEUED)),
                sent=Count("id", filter=Q(status=JobStatus.QUEUED, dispatched_at__isnull=False)),
                running=Count("id", filter=Q(status=JobStatus.RUNNING)),
                oldest_queued=Min("queued_at", filter=Q(status=JobStatus.QUEUED)),
                failed_24h=Count(
                    "id",
                    filter=Q(
                        status__in=[JobStatus.FAILED, JobStatus.TIMED_OUT], finished_at__gte=now - timedelta(days=1)
                    ),
                ),
            )
            .order_by("queue")
        )
        overview = []
        for row in per_queue:
            oldest = row["oldest_queued"]
            overview.append({**row, "oldest_age_s": int((now - oldest).total_seconds()) if oldest else None})
        context = {
            "queue_overview": overview,
            "workers": WorkerNode.objects.filter(stopped_at__isnull=True).order_by("-last_seen_at")[:20],
        }
        return super().changelist_view(request, extra_context={**(extra_context or {}), **context})


@admin.register(JobResult)
class JobResultAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["job", "verification_status", "verified", "runner", "runner_version", "samples", "created_at"]
    list_filter = ["verification_status", "verified", "runner"]
    search_fields = ["=job__id", "job__revision__variant__name", "job__submitted_by__username"]
    list_select_related = ["job"]
    readonly_fields = [f.name for f in JobResult._meta.fields]


@admin.register(ResultVerification)
class ResultVerificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "result",
        "verifier_job",
        "agreed",
        "metric",
        "original_value",
        "verifier_value",
        "delta",
        "tolerance",
        "original_worker",
        "verifier_worker",
        "reviewed_by",
        "created_at",
    ]
    list_filter = ["agreed", "result__verification_status", ("reviewed_at", admin.EmptyFieldListFilter)]
    search_fields = ["=result__job__id", "=verifier_job__id", "original_worker", "verifier_worker"]
    list_select_related = ["result", "verifier_job", "reviewed_by"]
    readonly_fields = [f.name for f in ResultVerification._meta.fields]
    actions = ["accept_original", "reject_original"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("benchmarks.change_resultverification"))

    def _resolve(self, request: HttpRequest, queryset: QuerySet[ResultVerification], accept: bool) -> None:
        count = 0
        for verification in queryset.filter(result__verification_status=VerificationStatus.DISPUTED):
            try:
                verification_resolve(verification=verification, actor=signed_in(request.user), accept_original=accept)
                count += 1
            except DomainError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
                return
        self.message_user(request, f"Resolved {count} disputed result(s).", messages.SUCCESS)

    @admin.action(description="Disputed: accept the original result (verified)")
    def accept_original(self, request: HttpRequest, queryset: QuerySet[ResultVerification]) -> None:
        self._resolve(request, queryset, True)

    @admin.action(description="Disputed: do not accept the original result (unverified)")
    def reject_original(self, request: HttpRequest, queryset: QuerySet[ResultVerification]) -> None:
        self._resolve(request, queryset, False)


@admin.register(BlockedVariant)
class BlockedVariantAdmin(admin.ModelAdmin):
    list_display = ["variant", "reason", "created_by", "created_at"]
    search_fields = ["variant__name", "variant__owner__username", "reason"]
    list_select_related = ["variant__owner", "created_by"]
    raw_id_fields = ["variant"]
    readonly_fields = ["created_by", "created_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: BlockedVariant, form: Any, change: bool) -> None:
        try:
            entry = services.blocklist_add(variant=obj.variant, reason=obj.reason, actor=signed_in(request.user))
        except DomainError as exc:
            self.message_user(request, f"Not saved: {exc.detail}", messages.ERROR)
            return
        obj.pk = entry.pk

    def delete_model(self, request: HttpRequest, obj: BlockedVariant) -> None:
        services.blocklist_remove(entry=obj, actor=signed_in(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BlockedVariant]) -> None:
        for entry in queryset:
            services.blocklist_remove(entry=entry, actor=signed_in(request.user))


@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "hostname",
        "pid",
        "last_seen_at",
        "stopped_at",
        "agreements",
        "disagreements",
        "consecutive_agreements",
    ]
    list_filter = [("stopped_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "hostname"]


@admin.register(SubmitterProfile)
class SubmitterProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "agreements", "disagreements", "consecutive_agreements", "last_disagreement_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(ComputeUsage)
class ComputeUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The hourly compute seconds behind the daily budgets, as the jobs table's triggers keep them (read only)."""

    list_display = ["namespace", "namespace_id", "hour_starting", "writer", "seconds"]
    ordering = ["-hour", "namespace_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ComputeUsage]:
        names = get_user_model().objects.filter(pk=OuterRef("namespace_id")).values("username")[:1]
        return super().get_queryset(request).annotate(namespace_name=Subquery(names))

    @admin.display(description="namespace", ordering="namespace_name")
    def namespace(self, obj: ComputeUsage) -> str:
        return getattr(obj, "namespace_name", None) or f"(deleted #{obj.namespace_id})"

    @admin.display(description="hour (UTC)", ordering="hour")
    def hour_starting(self, obj: ComputeUsage) -> str:
        return ComputeUsage.hour_start(obj.hour).strftime("%Y-%m-%d %H:00")
