"""Leaderboard reads. Boards show only `ranked` rows (published variant, published revision), for everyone:
a leaderboard is public, so there is no per-user view of it. Each read is a fixed number of queries."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from apps.benchmarks.models import Benchmark
from apps.core.errors import NotFound

from .models import LeaderboardEntry, Suite, SuiteBenchmark, SuiteScore

ENTRY_ROW_FIELDS = (
    "id",
    "variant_id",
    "variant_name",
    "revision_number",
    "score",
    "metrics",
    "verified",
    "contaminated",
    "flags",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "result_at",
    "job_id",
    "parents",
)
SUITE_ROW_FIELDS = (
    "id",
    "variant_id",
    "variant_name",
    "revision_number",
    "score",
    "components",
    "verified",
    "contaminated",
    "flags",
    "complete",
    "missing",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "parents",
)


def benchmark_by_slug(slug: str) -> Benchmark:
    found = list(Benchmark.objects.filter(slug=slug).only("id", "slug", "name", "version", "metrics").order_by()[:1])
    benchmark = found[0] if found else None
    if benchmark is None:
        raise NotFound(f"No benchmark '{slug}'.")
    return benchmark


def suite_by_slug(slug: str) -> Suite:
    suite = suites_with_benchmarks().filter(slug=slug).first()
    if suite is None:
        raise NotFound(f"No suite '{slug}'.")
    return suite


def suites_with_benchmarks() -> QuerySet[Suite]:
    return Suite.objects.prefetch_related(
        Prefetch("entries", queryset=SuiteBenchmark.objects.select_related("benchmark").order_by("position", "id"))
    )


def board_entries(*, benchmark: Benchmark, version: str) -> QuerySet[LeaderboardEntry]:
    """The ranked rows of one benchmark version, best first (rank_score already respects higher_is_better);
    equal scores rank the earlier id first. Served by the partial index `lb_entry_board`."""
    return LeaderboardEntry.objects.filter(benchmark=benchmark, benchmark_version=version, ranked=True).order_by(
        "-rank_score", "id"
    )


def suite_board_scores(*, suite: Suite) -> QuerySet[SuiteScore]:
    return SuiteScore.objects.filter(suite=suite, listed=True).order_by("-score", "id")


def _deltas(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["delta_vs_parents"] = {
            name: None if parent_score is None else round(row["score"] - parent_score, 6)
            for _, name, parent_score in row["parents"]
        }
    return rows


def entry_rows_with_deltas(rows: list[dict[str, Any]], *, benchmark: Benchmark, version: str) -> list[dict[str, Any]]:
    """Add `delta_vs_parents` to board rows: this row's score minus each parent's ranked score on the same
    benchmark version (None when the parent has no public result there). The parents' scores are kept on
    the row by the services, so this costs no query."""
    return _deltas(rows)


def suite_rows_with_deltas(rows: list[dict[str, Any]], *, suite: Suite) -> list[dict[str, Any]]:
    """Same as entry_rows_with_deltas, on suite scores."""
    return _deltas(rows)
