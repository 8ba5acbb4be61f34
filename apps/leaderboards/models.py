"""Suites, and the leaderboard summary tables that reads use instead of aggregating over jobs.

`LeaderboardEntry` and `SuiteScore` are a read model: they are derived from jobs, results, variants and
contamination marks by `services.py`, and `manage.py leaderboard_rebuild` recomputes them from scratch."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.conditional import etag_for


def metric_direction(benchmark: Any, metric: str) -> bool | None:
    """higher_is_better of a benchmark metric, or None when the benchmark has no such metric."""
    for spec in benchmark.metrics or []:
        if spec.get("name") == metric:
            return bool(spec.get("higher_is_better", True))
    return None


def primary_direction(benchmark: Any) -> bool:
    metric = benchmark.primary_metric
    direction = metric_direction(benchmark, metric) if metric else None
    return True if direction is None else direction


class Suite(models.Model):
    """A named, weighted set of benchmarks with one normalized aggregate score (Open LLM Leaderboard style)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Bumped by the service every time the benchmarks, weights or normalization bounds change.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"

    @property
    def etag(self) -> str:
        """Changes whenever the suite does: detail GETs send it, PATCH honours If-Match against it."""
        stamp = self.updated_at.isoformat() if self.updated_at else ""
        return etag_for(f"{self.pk}:{self.version}:{stamp}")


class SuiteBenchmark(models.Model):
    """One benchmark of a suite: its weight and the bounds its score is normalized between.

    `baseline` is the score of a random or trivial model (normalized to 0) and `best` the best possible
    score (normalized to 100). For a lower-is-better metric `best` is below `baseline`, which inverts the
    scale with the same formula."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="entries")
    benchmark = models.ForeignKey("benchmarks.Benchmark", on_delete=models.PROTECT, related_name="suite_entries")
    position = models.PositiveSmallIntegerField(default=0)
    metric = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Metric to aggregate; empty means the benchmark's primary metric.",
    )
    weight = models.FloatField(default=1.0)
    baseline = models.FloatField(default=0.0)
    best = models.FloatField(default=1.0)

    class Meta:
        ordering = ["suite_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "benchmark"], name="suite_benchmark_unique"),
            models.CheckConstraint(condition=Q(weight__gt=0), name="suite_benchmark_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.suite_id}:{self.benchmark_id}"

    @property
    def metric_name(self) -> str:
        return self.metric or self.benchmark.primary_metric or ""

    def normalize(self, value: float) -> float:
        """(value - baseline) / (best - baseline) * 100, clipped to [0, 100]."""
        span = self.best - self.baseline
        if span == 0:
            return 0.0
        return min(max((value - self.baseline) / span * 100.0, 0.0), 100.0)


class LeaderboardEntry(models.Model):
    """The representative succeeded result of one revision on one benchmark version.

    Exactly one entry per (variant, benchmark, version) is `ranked`: the one the leaderboard shows. Filter
    columns are copied from the variant so that a filtered top-100 reads one table through one index."""

    variant = models.ForeignKey("registry.Variant", on_delete=models.CASCADE, related_name="+")
    revision = models.ForeignKey("registry.Revision", on_delete=models.CASCADE, related_name="+")
    benchmark = models.ForeignKey("benchmarks.Benchmark", on_delete=models.CASCADE, related_name="+")
    benchmark_version = models.CharField(max_length=32)
    job = models.ForeignKey(
        "benchmarks.BenchmarkJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    score = models.FloatField(help_text="The benchmark's primary metric.")
    score_metric = models.CharField(max_length=64, help_text="Which metric `score` is (the primary one).")
    # score when higher is better, -score otherwise: every board reads one index in one direction.
    rank_score = models.FloatField()
    metrics = models.JSONField(default=dict)
    verified = models.BooleanField(default=False)
    disputed = models.BooleanField(default=False, help_text="A verification re-run disagreed with this result.")
    contaminated = models.BooleanField(default=False)
    flags = models.JSONField(default=list, blank=True)
    result_at = models.DateTimeField()
    listed = models.BooleanField(default=False, help_text="Published variant and published revision.")
    ranked = models.BooleanField(default=False, help_text="The row this variant shows on the board.")

    # Denormalized from the variant (kept in sync by services.leaderboard_refresh_variant).
    variant_name = models.CharField(max_length=200)
    revision_number = models.PositiveIntegerField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    relation = models.CharField(max_length=16)
    precision = models.CharField(max_length=8, blank=True, default="")
    license = models.CharField(max_length=64, blank=True, default="")
    task = models.CharField(max_length=64, blank=True, default="")
    parameters = models.BigIntegerField(null=True, blank=True)
    is_public = models.BooleanField(default=False)
    # [[parent variant id, "owner/name", the parent's ranked score on this board or null], ...]: kept up to
    # date by the services (both ways: a parent's new score is written into its children's rows), so a board
    # page computes delta_vs_parents without a join or a second query.
    parents = models.JSONField(default=list, blank=True)
    # The row as the API shows it, minus its rank (rows.entry_document), rewritten with every change above:
    # a board page is then one indexed read of 100 short texts that the API passes through undecoded.
    document = models.TextField(default="{}")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["benchmark_id", "benchmark_version", "-rank_score", "id"]
        verbose_name_plural = "leaderboard entries"
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "benchmark", "benchmark_version"], name="lb_entry_revision_benchmark_version_unique"
            ),
        ]
        indexes = [
            # The board: WHERE benchmark AND version AND ranked ORDER BY rank_score DESC, id LIMIT n.
            models.Index(
                fields=["benchmark", "benchmark_version", "-rank_score", "id"],
                condition=Q(ranked=True),
                name="lb_entry_board",
            ),
            models.Index(fields=["variant", "benchmark", "benchmark_version"], name="lb_entry_variant"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_name}@{self.revision_number} on {self.benchmark_id} v{self.benchmark_version}"


class SuiteScore(models.Model):
    """A variant's normalized, weighted suite score over its ranked entries at the benchmarks' current versions.

    A benchmark the variant has no result on counts as 0 (the baseline) and is listed in `missing`."""

    suite = models.ForeignKey(Suite, on_delete=models.CASCADE, related_name="scores")
    variant = models.ForeignKey("registry.Variant", on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    complete = models.BooleanField(default=False)
    missing = models.JSONField(default=list, blank=True)
    components = models.JSONField(default=dict, blank=True)
    verified = models.BooleanField(default=False, help_text="Complete, and every component verified.")
    contaminated = models.BooleanField(default=False)
    flags = models.JSONField(default=list, blank=True)
    revision_number = models.PositiveIntegerField(help_text="The newest revision among the components.")
    listed = models.BooleanField(default=False)

    variant_name = models.CharField(max_length=200)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    relation = models.CharField(max_length=16)
    precision = models.CharField(max_length=8, blank=True, default="")
    license = models.CharField(max_length=64, blank=True, default="")
    task = models.CharField(max_length=64, blank=True, default="")
    parameters = models.BigIntegerField(null=True, blank=True)
    parents = models.JSONField(default=list, blank=True)
    document = models.TextField(default="{}", help_text="The row as the API shows it, minus its rank.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["suite_id", "-score", "id"]
        constraints = [models.UniqueConstraint(fields=["suite", "variant"], name="suite_score_unique")]
        indexes = [
            models.Index(fields=["suite", "-score", "id"], condition=Q(listed=True), name="suite_score_board"),
            models.Index(fields=["variant"], name="suite_score_variant"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_name} on {self.suite_id}: {self.score:.2f}"


class ContaminationMark(models.Model):
    """A confirmed contamination flag: marks the variant's results (on one benchmark, or all) on every board."""

    flag_id = models.BigIntegerField(db_index=True, help_text="The reviews.Flag that was confirmed.")
    variant = models.ForeignKey("registry.Variant", on_delete=models.CASCADE, related_name="+")
    benchmark = models.ForeignKey(
        "benchmarks.Benchmark",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: every benchmark.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["flag_id", "variant", "benchmark"], name="contamination_mark_unique"),
            models.UniqueConstraint(
                fields=["flag_id", "variant"], condition=Q(benchmark__isnull=True), name="contamination_mark_all_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"flag {self.flag_id} on variant {self.variant_id}"

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    def flag_payload(self) -> dict[str, Any]:
        return {
            "kind": "contamination",
            "flag": self.flag_id,
            "benchmark": self.benchmark.slug if self.benchmark is not None else None,
        }
