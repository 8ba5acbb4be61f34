"""Suite scores, derived from the ranked entries: recomputed for a set of variants (after their entries
changed) or for a whole suite (after the suite or one of its benchmarks changed); and the bulk writes of a
recomputation, which the entries share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Prefetch, Q
from django.utils import timezone

from apps.core.bulk import bulk_update_rows

from .. import rows
from ..models import LeaderboardEntry, Suite, SuiteBenchmark, SuiteScore
from .scoring import SuiteComponent, suite_aggregate


def suite_items(suite: Suite) -> list[SuiteBenchmark]:
    return list(suite.entries.select_related("benchmark").order_by("position", "id"))


def _score_row(
    suite: Suite, variant_id: int, agg: dict[str, Any], columns: dict[str, Any], parents: list[list[Any]]
) -> SuiteScore:
    score = SuiteScore(
        suite=suite,
        variant_id=variant_id,
        listed=True,
        variant_name=columns["variant_name"],
        owner_id=columns["owner_id"],
        relation=columns["relation"],
        precision=columns["precision"],
        license=columns["license"],
        task=columns["task"],
        parameters=columns["parameters"],
        parents=parents,
        **agg,
    )
    score.document = rows.suite_text(score)
    return score


# SuiteScore columns a recompute writes (the key, the pk and the timestamp aside).
_SUITE_SCORE_FIELDS = [
    f.attname
    for f in SuiteScore._meta.concrete_fields
    if f.attname not in ("id", "suite_id", "variant_id", "updated_at")
]


def suite_scores_for_variants(
    variant_ids: list[int],
    entries: Mapping[int, list[LeaderboardEntry]],
    *,
    benchmark_ids: Mapping[int, set[int]] | None,
    columns: Mapping[int, dict[str, Any]],
    parents: Mapping[int, list[list[Any]]],
) -> dict[int, dict[int, float | None]]:
    """Recompute each variant's score in every suite touching its `benchmark_ids` (all suites when None).
    Returns {variant id: {suite id: new score, or None when the variant left that suite's board}}.

    One read of the suites with their benchmarks, one of the variants' current scores, one of their parents'
    scores (a parent recomputed here gives its new one), then at most one delete, one insert, one update."""
    touching: set[int] = set() if benchmark_ids is None else set().union(*benchmark_ids.values())
    if benchmark_ids is not None and not touching:
        return {pk: {} for pk in variant_ids}
    suites_qs = (
        Suite.objects.all()
        if benchmark_ids is None
        else Suite.objects.filter(entries__benchmark_id__in=touching).distinct()
    )
    suites = list(
        suites_qs.prefetch_related(
            Prefetch(
                "entries",
                queryset=SuiteBenchmark.objects.select_related("benchmark").order_by("position", "id"),
                to_attr="lb_items",
            )
        )
    )
    plan: dict[int, list[Suite]] = {
        pk: [
            s
            for s in suites
            if benchmark_ids is None or any(item.benchmark_id in benchmark_ids.get(pk, ()) for item in s.lb_items)
        ]
        for pk in variant_ids
    }
    suite_ids = {s.pk for items in plan.values() for s in items}
    if not suite_ids:
        return {pk: {} for pk in variant_ids}

    aggregates: dict[int, dict[int, dict[str, Any] | None]] = {}
    for pk, planned in plan.items():
        ranked = {(e.benchmark_id, e.benchmark_version): e for e in entries.get(pk, []) if e.ranked}

        def lookup(
            item: SuiteBenchmark,
            ranked: dict[tuple[int, str], LeaderboardEntry] = ranked,
        ) -> SuiteComponent | None:
            entry = ranked.get((item.benchmark_id, item.benchmark.version))
            if entry is None:
                return None
            return SuiteComponent(
                score=entry.score,
                metrics=entry.metrics,
                verified=entry.verified,
                contaminated=entry.contaminated,
                flags=entry.flags,
                revision_number=entry.revision_number,
                score_metric=entry.score_metric,
            )

        aggregates[pk] = {
            suite.pk: suite_aggregate(suite.lb_items, lookup)  # type: ignore[attr-defined]
            for suite in planned
        }
    parent_ids = {pid for pk, planned in plan.items() if planned for pid, _ in parents.get(pk, [])}
    parent_scores: dict[tuple[int, int], float | None] = {}
    if parent_ids:
        parent_scores = {
            (suite_id, variant_id): score
            for suite_id, variant_id, score in SuiteScore.objects.filter(
                suite_id__in=suite_ids, variant_id__in=parent_ids
            ).values_list("suite_id", "variant_id", "score")
        }
        for pid in parent_ids & set(aggregates):
            for suite_id, agg in aggregates[pid].items():
                parent_scores[(suite_id, pid)] = None if agg is None else agg["score"]
    existing = {
        (s.suite_id, s.variant_id): s
        for s in SuiteScore.objects.filter(suite_id__in=suite_ids, variant_id__in=variant_ids).order_by("pk")
    }
    result: dict[int, dict[int, float | None]] = {}
    created: list[SuiteScore] = []
    changed: list[SuiteScore] = []
    vanished: list[int] = []
    now = timezone.now()
    for pk, planned in plan.items():
        result[pk] = {}
        for suite in planned:
            agg = aggregates[pk][suite.pk]
            current = existing.get((suite.pk, pk))
            if agg is None:
                if current is not None:
                    vanished.append(current.pk)
                result[pk][suite.pk] = None
                continue
            row = _score_row(
                suite,
                pk,
                agg,
                columns[pk],
                [[pid, name, parent_scores.get((suite.pk, pid))] for pid, name in parents.get(pk, [])],
            )
            result[pk][suite.pk] = agg["score"]
            if current is None:
                created.append(row)
            elif any(getattr(current, name) != getattr(row, name) for name in _SUITE_SCORE_FIELDS):
                for name in _SUITE_SCORE_FIELDS:
                    setattr(current, name, getattr(row, name))
                current.updated_at = now
                changed.append(current)
    write_rows(
        SuiteScore, vanished=vanished, created=created, changed=changed, fields=_SUITE_SCORE_FIELDS + ["updated_at"]
    )
    return result


def suite_rebuild(suite: Suite) -> int:
    """Recompute every score of one suite from the ranked entries (after the suite or a benchmark changed)."""
    items = suite_items(suite)
    keys = Q(pk__in=[])
    for item in items:
        keys |= Q(benchmark_id=item.benchmark_id, benchmark_version=item.benchmark.version)
    per_variant: dict[int, dict[int, SuiteComponent]] = defaultdict(dict)
    columns: dict[int, dict[str, Any]] = {}
    ranked_rows = LeaderboardEntry.objects.filter(keys, ranked=True).values_list(
        "variant_id",
        "benchmark_id",
        "score",
        "metrics",
        "verified",
        "contaminated",
        "flags",
        "revision_number",
        "score_metric",
        "variant_name",
        "owner_id",
        "relation",
        "precision",
        "license",
        "task",
        "parameters",
        "parents",
    )
    for (
        variant_id,
        bench_id,
        score,
        metrics,
        verified,
        contaminated,
        flags,
        rev,
        metric,
        name,
        owner_id,
        relation,
        precision,
        license_,
        task,
        parameters,
        parents,
    ) in ranked_rows.iterator(chunk_size=5000):
        per_variant[variant_id][bench_id] = SuiteComponent(score, metrics, verified, contaminated, flags, rev, metric)
        columns[variant_id] = {
            "variant_name": name,
            "owner_id": owner_id,
            "relation": relation,
            "precision": precision,
            "license": license_,
            "task": task,
            "parameters": parameters,
            "parents": parents,
        }
    SuiteScore.objects.filter(suite=suite).delete()
    aggregates: dict[int, dict[str, Any]] = {}
    for variant_id, comps in per_variant.items():

        def lookup(item: SuiteBenchmark, comps: dict[int, SuiteComponent] = comps) -> SuiteComponent | None:
            return comps.get(item.benchmark_id)

        agg = suite_aggregate(items, lookup)
        if agg is not None:
            aggregates[variant_id] = agg
    batch = []
    for variant_id, agg in aggregates.items():
        cols = columns[variant_id]
        parents = [
            [pid, name, aggregates[pid]["score"] if pid in aggregates else None] for pid, name, *_ in cols["parents"]
        ]
        batch.append(_score_row(suite, variant_id, agg, cols, parents))
    SuiteScore.objects.bulk_create(batch, batch_size=2000)
    return len(batch)


def write_rows(
    model: Any, *, vanished: Iterable[int], created: list[Any], changed: list[Any], fields: list[str]
) -> None:
    """The bulk writes of a recomputation: delete the rows that vanished, insert the new ones, update the
    changed ones (only `fields`)."""
    vanished = list(vanished)
    if vanished:
        model.objects.filter(pk__in=vanished).delete()
    if created:
        model.objects.bulk_create(created, batch_size=1000)
    if changed:
        bulk_update_rows(model, changed, fields)
