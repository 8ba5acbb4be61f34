"""Maintainers manage suites in the admin; the summary tables are read-only there (they are derived)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from .models import ContaminationMark, LeaderboardEntry, Suite, SuiteBenchmark, SuiteScore
from .services import leaderboard_refresh_variant, suite_definition_changed


class SuiteBenchmarkInline(admin.TabularInline):
    model = SuiteBenchmark
    extra = 1
    fields = ("position", "benchmark", "metric", "weight", "baseline", "best")


@admin.register(Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "version", "benchmark_count", "updated_at")
    search_fields = ("slug", "name", "description")
    list_filter = ("updated_at",)
    readonly_fields = ("version", "created_by", "created_at", "updated_at")
    inlines = [SuiteBenchmarkInline]

    @admin.display(description="benchmarks")
    def benchmark_count(self, obj: Suite) -> int:
        return obj.entries.count()

    def save_model(self, request: Any, obj: Suite, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Inline edits bypass the API's service: bump the version, rescore and audit through the service.
        if not change or any(fs.has_changed() for fs in formsets):
            suite_definition_changed(suite=form.instance, actor=request.user, created=not change)


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(LeaderboardEntry)
class LeaderboardEntryAdmin(_ReadOnlyAdmin):
    list_display = (
        "variant_name",
        "revision_number",
        "benchmark",
        "benchmark_version",
        "score",
        "verified",
        "contaminated",
        "listed",
        "ranked",
        "result_at",
    )
    list_filter = (
        "benchmark",
        "benchmark_version",
        "ranked",
        "listed",
        "verified",
        "contaminated",
        "relation",
        "precision",
    )
    search_fields = ("variant_name", "license", "task")
    list_select_related = ("benchmark",)
    actions = ["recompute"]

    @admin.action(description="Re-derive the selected variants' rows")
    def recompute(self, request: Any, queryset: Any) -> None:
        variant_ids = set(queryset.values_list("variant_id", flat=True))
        for variant_id in variant_ids:
            leaderboard_refresh_variant(variant_id=variant_id)
        self.message_user(request, f"Refreshed {len(variant_ids)} variant(s).", messages.SUCCESS)


@admin.register(SuiteScore)
class SuiteScoreAdmin(_ReadOnlyAdmin):
    list_display = ("variant_name", "suite", "score", "complete", "verified", "contaminated", "listed")
    list_filter = ("suite", "complete", "verified", "contaminated", "relation")
    search_fields = ("variant_name",)
    list_select_related = ("suite",)


@admin.register(ContaminationMark)
class ContaminationMarkAdmin(_ReadOnlyAdmin):
    list_display = ("flag_id", "variant", "benchmark", "created_by", "created_at", "cleared_at")
    list_filter = ("cleared_at", "benchmark")
    search_fields = ("variant__name", "variant__owner__username", "flag_id")
    list_select_related = ("variant__owner", "benchmark", "created_by")
