"""Suite representations, and the leaderboard row (SPEC §3: rank, variant, revision, score, metrics, verified,
delta_vs_parents, flags).

Board rows are built once, when they change, by `..rows` and stored as JSON documents in the summary tables:
a board page is the hottest read of the platform. The Serializer classes below describe the same shape for
the OpenAPI schema; a test keeps both in step."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..models import Suite, SuiteBenchmark, metric_direction
from ..rows import entry_row, suite_row

__all__ = ["entry_row", "suite_row"]  # the row builders live in ..rows; the web pages import them from here


class SuiteBenchmarkSerializer(serializers.Serializer):
    benchmark = serializers.SlugField(max_length=64, help_text="Benchmark slug.")
    benchmark_version = serializers.CharField(read_only=True, help_text="The version the suite aggregates.")
    metric = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="Defaults to the benchmark's primary metric."
    )
    higher_is_better = serializers.BooleanField(read_only=True)
    weight = serializers.FloatField(required=False, default=1.0, min_value=0.0)
    baseline = serializers.FloatField(
        required=False, default=0.0, help_text="Score of a random or trivial model: normalized to 0."
    )
    best = serializers.FloatField(
        required=False,
        default=1.0,
        help_text="Best possible score: normalized to 100. Below baseline for lower-is-better metrics.",
    )

    def to_representation(self, item: SuiteBenchmark) -> dict[str, Any]:
        metric = item.metric_name
        return {
            "benchmark": item.benchmark.slug,
            "benchmark_version": item.benchmark.version,
            "metric": metric,
            "higher_is_better": metric_direction(item.benchmark, metric),
            "weight": item.weight,
            "baseline": item.baseline,
            "best": item.best,
        }


class SuiteSerializer(serializers.ModelSerializer):
    benchmarks = SuiteBenchmarkSerializer(many=True, source="entries")
    leaderboard = serializers.SerializerMethodField()

    class Meta:
        model = Suite
        fields = ["slug", "name", "description", "version", "benchmarks", "leaderboard", "created_at", "updated_at"]
        read_only_fields = fields

    def get_leaderboard(self, suite: Suite) -> str:
        return f"/api/v1/leaderboards/suites/{suite.slug}/"


class SuiteCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    # ListSerializer takes max_length (DRF >= 3.14); the stubs do not know it yet.
    benchmarks = SuiteBenchmarkSerializer(many=True, allow_empty=False, max_length=100)  # type: ignore[call-arg]


class SuiteUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    benchmarks = SuiteBenchmarkSerializer(
        many=True,
        allow_empty=False,
        max_length=100,  # type: ignore[call-arg]
        required=False,
    )


# --- board rows ------------------------------------------------------------------------------------------


class FlagSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="contamination (a confirmed flag) or verification_disputed.")
    flag = serializers.IntegerField(allow_null=True, help_text="The moderation flag, for contamination.")
    benchmark = serializers.CharField(allow_null=True, help_text="Null: the mark covers every benchmark.")


class _RowSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    variant = serializers.CharField(help_text="owner/name")
    revision = serializers.IntegerField()
    score = serializers.FloatField()
    verified = serializers.BooleanField()
    delta_vs_parents = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="{parent full name: this score minus the parent's}, null when the parent has no public result.",
    )
    flags = FlagSerializer(many=True)
    contaminated = serializers.BooleanField()
    relation = serializers.CharField()
    precision = serializers.CharField()
    license = serializers.CharField()
    task = serializers.CharField()
    parameters = serializers.IntegerField(allow_null=True)


class LeaderboardRowSerializer(_RowSerializer):
    metrics = serializers.DictField(help_text="Every metric of the result.")
    job = serializers.IntegerField(allow_null=True)
    result_at = serializers.DateTimeField()


class SuiteComponentSerializer(serializers.Serializer):
    score = serializers.FloatField()
    normalized = serializers.FloatField()
    weight = serializers.FloatField()
    revision = serializers.IntegerField()
    verified = serializers.BooleanField()
    version = serializers.CharField()


class SuiteRowSerializer(_RowSerializer):
    metrics = serializers.DictField(
        child=serializers.FloatField(), help_text="{benchmark slug: normalized score 0..100}"
    )
    components = serializers.DictField(child=SuiteComponentSerializer())
    complete = serializers.BooleanField()
    missing = serializers.ListField(
        child=serializers.CharField(), help_text="Suite benchmarks without a result (counted as 0)."
    )


class BoardInfoSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.CharField()
    metric = serializers.CharField(allow_null=True)
    higher_is_better = serializers.BooleanField()


class _BoardPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


class LeaderboardPageSerializer(_BoardPageSerializer):
    benchmark = BoardInfoSerializer()
    results = LeaderboardRowSerializer(many=True)


class SuiteBoardInfoSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    benchmarks = SuiteBenchmarkSerializer(many=True)


class SuiteBoardPageSerializer(_BoardPageSerializer):
    suite = SuiteBoardInfoSerializer()
    results = SuiteRowSerializer(many=True)
