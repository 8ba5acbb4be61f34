"""Leaderboard writes: keep the summary tables in step with results, variants, suites and contamination marks.

Everything here is derived data: `leaderboard_rebuild()` recomputes it all from jobs and results, and every
incremental update recomputes the affected rows from the source of truth instead of patching them, so that
running an update twice (hooks may fire more than once) changes nothing.

Which result a board shows (SPEC: "best verified (or latest) result"):
- per revision, among its succeeded jobs on a benchmark version (verification re-runs excluded): the best
  verified result, or, when none is verified, the latest one; that is the revision's `LeaderboardEntry`;
- per variant, among the entries of its published revisions, by the same rule: that entry is `ranked`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob, JobResult
from apps.core.errors import NotFound, PreconditionFailed, ValidationFailed
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant, VariantParent

from . import rows
from .models import (
    ContaminationMark,
    LeaderboardEntry,
    Suite,
    SuiteBenchmark,
    SuiteScore,
    metric_direction,
    primary_direction,
)

logger = logging.getLogger(__name__)

# The engine's JobResult.verification_status when a verification re-run disagreed with the result.
DISPUTED = "disputed"
DISPUTED_FLAG = {"kind": "verification_disputed", "flag": None, "benchmark": None}

ENTRY_SYNC_FIELDS = [
    "variant_name", "revision_number", "owner", "relation", "precision", "license", "task", "parameters",
    "is_public", "parents", "listed", "ranked", "contaminated", "flags", "document",
]


# --- choosing the representative result ------------------------------------------------------------------

@dataclass
class _Candidate:
    rank_score: float
    verified: bool
    at: datetime
    pk: int
    obj: Any = field(default=None, repr=False)


def choose_representative(candidates: Iterable[_Candidate]) -> _Candidate | None:
    """The best verified candidate (ties: the earliest), or else the latest one."""
    items = list(candidates)
    if not items:
        return None
    verified = [c for c in items if c.verified]
    if verified:
        return min(verified, key=lambda c: (-c.rank_score, c.at, c.pk))
    return max(items, key=lambda c: (c.at, c.pk))


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- entries ---------------------------------------------------------------------------------------------

def _lock_variant(variant_id: int) -> Variant | None:
    # One lock per variant serializes concurrent hooks, publications and marks touching its rows.
    return Variant.objects.select_for_update().select_related("owner").filter(pk=variant_id).first()


def _variant_parents(variant: Variant) -> list[list[Any]]:
    """[[parent id, "owner/name"], ...] sorted by name."""
    links = VariantParent.objects.filter(child=variant).select_related("parent__owner")
    return sorted(([link.parent_id, f"{link.parent.owner.username}/{link.parent.name}"] for link in links),
                  key=lambda p: p[1])


def _variant_columns(variant: Variant) -> dict[str, Any]:
    return {
        "variant_name": f"{variant.owner.username}/{variant.name}",
        "owner_id": variant.owner_id,
        "relation": variant.relation,
        "precision": variant.precision,
        "license": (variant.license or "").lower(),
        "task": variant.task,
        "parameters": variant.parameters,
        "is_public": variant.is_public,
    }


def _entry_recompute(*, variant: Variant, revision: Revision, benchmark: Benchmark, version: str,
                     columns: dict[str, Any] | None = None) -> LeaderboardEntry | None:
    """Write (or delete) the entry of one revision on one benchmark version from its succeeded jobs."""
    metric = benchmark.primary_metric or ""
    higher = primary_direction(benchmark)
    jobs = list(
        BenchmarkJob.objects.filter(revision=revision, benchmark=benchmark, benchmark_version=version,
                                    status=JobStatus.SUCCEEDED, verifies__isnull=True, result__isnull=False)
        .select_related("result")
    )
    # A verification re-run that agreed may be recorded on the re-run's result rather than the original's.
    confirmed = set(
        JobResult.objects.filter(job__verifies__in=[j.pk for j in jobs], verified=True)
        .values_list("job__verifies_id", flat=True)
    ) if jobs else set()
    candidates = []
    for job in jobs:
        score = _as_score(job.result.metrics.get(metric)) if isinstance(job.result.metrics, dict) else None
        if score is None:
            continue
        candidates.append(_Candidate(
            rank_score=score if higher else -score,
            verified=bool(job.result.verified or job.pk in confirmed),
            at=job.finished_at or job.result.created_at,
            pk=job.pk,
            obj=job,
        ))
    chosen = choose_representative(candidates)
    key: dict[str, Any] = {"revision": revision, "benchmark": benchmark, "benchmark_version": version}
    if chosen is None:
        LeaderboardEntry.objects.filter(**key).delete()
        return None
    job = chosen.obj
    entry, _ = LeaderboardEntry.objects.update_or_create(
        **key,
        defaults={
            "variant": variant,
            "job": job,
            "score": job.result.metrics[metric],
            "score_metric": metric,
            "rank_score": chosen.rank_score,
            "metrics": job.result.metrics,
            "verified": chosen.verified,
            "disputed": getattr(job.result, "verification_status", "") == DISPUTED,
            "result_at": chosen.at,
            "revision_number": revision.number,
            **(columns if columns is not None else _variant_columns(variant)),
        },
    )
    return entry


def _refresh_variant(variant: Variant, *, benchmark_ids: set[int] | None = None, suites: bool = True,
                     columns: dict[str, Any] | None = None) -> None:
    """Copy the variant's columns and its parents' scores onto its entries, apply contamination marks, pick
    the ranked entry per benchmark version, recompute the variant's suite scores, then give its children
    its new scores (their `delta_vs_parents`). The caller holds the variant's lock."""
    entries = list(LeaderboardEntry.objects.filter(variant=variant))
    statuses = dict(Revision.objects.filter(variant=variant).values_list("pk", "status"))
    marks = list(ContaminationMark.objects.filter(variant=variant, cleared_at__isnull=True)
                 .select_related("benchmark").order_by("flag_id", "id"))
    columns = columns if columns is not None else _variant_columns(variant)
    parents = _variant_parents(variant)
    parent_scores: dict[tuple[int, int, str], float] = {}
    if parents and entries:
        parent_scores = {
            (variant_id, bench_id, version): score for variant_id, bench_id, version, score in
            LeaderboardEntry.objects.filter(variant_id__in=[p[0] for p in parents], ranked=True,
                                            benchmark_id__in={e.benchmark_id for e in entries})
            .values_list("variant_id", "benchmark_id", "benchmark_version", "score")
        }
    groups: dict[tuple[int, str], list[LeaderboardEntry]] = defaultdict(list)
    changed: list[LeaderboardEntry] = []
    for entry in entries:
        before = {name: getattr(entry, name if name != "owner" else "owner_id") for name in ENTRY_SYNC_FIELDS}
        for name, value in columns.items():
            setattr(entry, name, value)
        entry.parents = [[pid, name, parent_scores.get((pid, entry.benchmark_id, entry.benchmark_version))]
                         for pid, name in parents]
        entry.listed = bool(variant.is_public and statuses.get(entry.revision_id) == RevisionStatus.PUBLISHED)
        hits = [m for m in marks if m.benchmark_id is None or m.benchmark_id == entry.benchmark_id]
        entry.flags = [m.flag_payload() for m in hits]
        if entry.disputed:
            entry.flags.append(DISPUTED_FLAG)
        entry.contaminated = bool(hits)
        groups[(entry.benchmark_id, entry.benchmark_version)].append(entry)
        entry._lb_before = before  # type: ignore[attr-defined]
    for group in groups.values():
        chosen = choose_representative(
            _Candidate(rank_score=e.rank_score, verified=e.verified, at=e.result_at, pk=e.pk, obj=e)
            for e in group if e.listed
        )
        for entry in group:
            entry.ranked = chosen is not None and entry is chosen.obj
    now = timezone.now()
    for entry in entries:
        entry.document = rows.entry_text(entry)
        after = {name: getattr(entry, name if name != "owner" else "owner_id") for name in ENTRY_SYNC_FIELDS}
        if after != entry._lb_before:  # type: ignore[attr-defined]
            entry.updated_at = now
            changed.append(entry)
    if changed:
        LeaderboardEntry.objects.bulk_update(changed, ENTRY_SYNC_FIELDS + ["updated_at"])
    suite_scores: dict[int, float | None] | None = None
    if suites:
        suite_scores = _suite_scores_for_variant(variant, entries, benchmark_ids=benchmark_ids, columns=columns,
                                                 parents=parents)
    _propagate_to_children(variant, entries, benchmark_ids=benchmark_ids, suite_scores=suite_scores)


def _with_parent_score(items: list[list[Any]], parent_id: int, score: float | None) -> list[list[Any]]:
    return [[pid, name, score if pid == parent_id else old] for pid, name, old in items]


def _propagate_to_children(variant: Variant, entries: list[LeaderboardEntry], *, benchmark_ids: set[int] | None,
                           suite_scores: dict[int, float | None] | None) -> None:
    """Write this variant's ranked scores (and suite scores) into its children's rows, where the boards read
    them for `delta_vs_parents` without a join. Locks go parent -> child, along the DAG, so they never cycle."""
    child_ids = list(VariantParent.objects.filter(parent=variant).values_list("child_id", flat=True))
    if not child_ids:
        return
    list(Variant.objects.select_for_update().filter(pk__in=child_ids).order_by("pk").values_list("pk"))
    ranked = {(e.benchmark_id, e.benchmark_version): e.score for e in entries if e.ranked}
    children = LeaderboardEntry.objects.filter(variant_id__in=child_ids)
    if benchmark_ids is not None:
        children = children.filter(benchmark_id__in=benchmark_ids | {e.benchmark_id for e in entries})
    now = timezone.now()
    changed = []
    for row in children:
        parents = _with_parent_score(row.parents, variant.pk, ranked.get((row.benchmark_id, row.benchmark_version)))
        if parents != row.parents:
            row.parents, row.updated_at = parents, now
            row.document = rows.entry_text(row)
            changed.append(row)
    LeaderboardEntry.objects.bulk_update(changed, ["parents", "document", "updated_at"], batch_size=1000)
    if suite_scores:
        changed_scores = []
        for score in SuiteScore.objects.filter(variant_id__in=child_ids, suite_id__in=list(suite_scores)):
            parents = _with_parent_score(score.parents, variant.pk, suite_scores[score.suite_id])
            if parents != score.parents:
                score.parents, score.updated_at = parents, now
                score.document = rows.suite_text(score)
                changed_scores.append(score)
        SuiteScore.objects.bulk_update(changed_scores, ["parents", "document", "updated_at"], batch_size=1000)


def leaderboard_record_job(job_id: int) -> None:
    """JOB_FINISHED_HOOKS entry: a job finished or its verification changed; update its summary row.

    Recomputes the revision's entry for the job's benchmark version from every succeeded job, so it is
    idempotent and also correct for failed or cancelled jobs (which simply change nothing)."""
    row = BenchmarkJob.objects.filter(pk=job_id).values("verifies_id").first()
    if row is None:
        return
    target_id = row["verifies_id"] or job_id
    job = (BenchmarkJob.objects.filter(pk=target_id)
           .values("revision_id", "benchmark_id", "benchmark_version", "revision__variant_id").first())
    if job is None:
        return
    with transaction.atomic():
        variant = _lock_variant(job["revision__variant_id"])
        if variant is None:
            return
        revision = Revision.objects.get(pk=job["revision_id"])
        benchmark = Benchmark.objects.get(pk=job["benchmark_id"])
        columns = _variant_columns(variant)
        _entry_recompute(variant=variant, revision=revision, benchmark=benchmark,
                         version=job["benchmark_version"], columns=columns)
        _refresh_variant(variant, benchmark_ids={benchmark.pk}, columns=columns)


@transaction.atomic
def leaderboard_refresh_variant(*, variant_id: int) -> None:
    """Re-derive a variant's rows after the variant or one of its revisions changed (publish, unpublish,
    license or parameter edits...)."""
    variant = _lock_variant(variant_id)
    if variant is None:
        return
    _refresh_variant(variant)


def leaderboard_refresh_benchmark(*, benchmark_id: int) -> None:
    """A benchmark's definition changed: re-score its entries if the primary metric or its direction moved,
    and recompute the suites that contain it (a new version changes which entries they aggregate)."""
    benchmark = Benchmark.objects.filter(pk=benchmark_id).first()
    if benchmark is None:
        return
    metric = benchmark.primary_metric or ""
    higher = primary_direction(benchmark)
    entries = LeaderboardEntry.objects.filter(benchmark=benchmark)
    expected = F("score") if higher else -F("score")
    stale = entries.filter(~Q(score_metric=metric) | ~Q(rank_score=expected)).exists()
    if stale:
        triples = set(entries.values_list("revision_id", "benchmark_version"))
        _recompute_triples({(rev, benchmark.pk, version) for rev, version in triples})
    for suite in Suite.objects.filter(entries__benchmark=benchmark).distinct():
        with transaction.atomic():
            _suite_rebuild(suite)


def _recompute_triples(triples: set[tuple[int, int, str]]) -> int:
    """Recompute the entries of (revision, benchmark, version) triples, one variant transaction at a time."""
    revisions = {r.pk: r for r in Revision.objects.filter(pk__in={t[0] for t in triples})}
    benchmarks = {b.pk: b for b in Benchmark.objects.filter(pk__in={t[1] for t in triples})}
    by_variant: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    for triple in triples:
        if triple[0] in revisions and triple[1] in benchmarks:
            by_variant[revisions[triple[0]].variant_id].append(triple)
    for variant_id, items in by_variant.items():
        with transaction.atomic():
            variant = _lock_variant(variant_id)
            if variant is None:
                continue
            columns = _variant_columns(variant)
            for rev_id, bench_id, version in items:
                _entry_recompute(variant=variant, revision=revisions[rev_id], benchmark=benchmarks[bench_id],
                                 version=version, columns=columns)
            _refresh_variant(variant, suites=False, columns=columns)
    return sum(len(items) for items in by_variant.values())


def leaderboard_rebuild(*, stdout: Callable[[str], Any] | None = None) -> dict[str, int]:
    """Recompute every entry and suite score from jobs and results (`manage.py leaderboard_rebuild`)."""
    say = stdout or (lambda _msg: None)
    triples = set(
        BenchmarkJob.objects.filter(status=JobStatus.SUCCEEDED, verifies__isnull=True, result__isnull=False)
        .values_list("revision_id", "benchmark_id", "benchmark_version").distinct()
    )
    orphans = [
        pk for pk, *triple in LeaderboardEntry.objects.values_list(
            "pk", "revision_id", "benchmark_id", "benchmark_version")
        if tuple(triple) not in triples
    ]
    for start in range(0, len(orphans), 1000):
        LeaderboardEntry.objects.filter(pk__in=orphans[start:start + 1000]).delete()
    say(f"removed {len(orphans)} entries without a succeeded job")
    recomputed = _recompute_triples(triples)
    say(f"recomputed {recomputed} entries")
    suites = 0
    for suite in Suite.objects.all():
        with transaction.atomic():
            _suite_rebuild(suite)
        suites += 1
    say(f"rebuilt {suites} suites")
    return {"removed": len(orphans), "entries": recomputed, "suites": suites}


# --- suites ----------------------------------------------------------------------------------------------

@dataclass
class _Component:
    score: float
    metrics: dict[str, Any]
    verified: bool
    contaminated: bool
    flags: list[dict[str, Any]]
    revision_number: int
    score_metric: str


def suite_aggregate(items: list[SuiteBenchmark], lookup: Callable[[SuiteBenchmark], _Component | None],
                    ) -> dict[str, Any] | None:
    """The weighted mean of normalized scores; a benchmark without a result counts as 0 and is listed as
    missing. None when the variant has no result on any of the suite's benchmarks."""
    total_weight = sum(item.weight for item in items) or 1.0
    acc = 0.0
    components: dict[str, Any] = {}
    missing: list[str] = []
    flags: list[dict[str, Any]] = []
    revision_number = 0
    for item in items:
        slug = item.benchmark.slug
        comp = lookup(item)
        metric = item.metric_name
        value = None
        if comp is not None:
            value = comp.score if metric == comp.score_metric else _as_score(comp.metrics.get(metric))
        if comp is None or value is None:
            missing.append(slug)
            continue
        normalized = item.normalize(value)
        acc += item.weight * normalized
        components[slug] = {"score": value, "normalized": round(normalized, 4), "weight": item.weight,
                            "revision": comp.revision_number, "verified": comp.verified,
                            "version": item.benchmark.version}
        revision_number = max(revision_number, comp.revision_number)
        for flag in comp.flags:
            if flag not in flags:
                flags.append(flag)
    if not components:
        return None
    return {
        "score": round(acc / total_weight, 4),
        "complete": not missing,
        "missing": missing,
        "components": components,
        "verified": not missing and all(c["verified"] for c in components.values()),
        "contaminated": bool(flags),
        "flags": flags,
        "revision_number": revision_number,
    }


def _suite_items(suite: Suite) -> list[SuiteBenchmark]:
    return list(suite.entries.select_related("benchmark").order_by("position", "id"))


def _score_row(suite: Suite, variant_id: int, agg: dict[str, Any], columns: dict[str, Any],
               parents: list[list[Any]]) -> SuiteScore:
    score = SuiteScore(
        suite=suite, variant_id=variant_id, listed=True,
        variant_name=columns["variant_name"], owner_id=columns["owner_id"], relation=columns["relation"],
        precision=columns["precision"], license=columns["license"], task=columns["task"],
        parameters=columns["parameters"], parents=parents, **agg,
    )
    score.document = rows.suite_text(score)
    return score


def _suite_scores_for_variant(variant: Variant, entries: list[LeaderboardEntry], *,
                              benchmark_ids: set[int] | None, columns: dict[str, Any],
                              parents: list[list[Any]]) -> dict[int, float | None]:
    """Recompute the variant's score in every suite touching `benchmark_ids` (all suites when None).
    Returns {suite id: new score, or None when the variant left that suite's board}."""
    suites = list(Suite.objects.all() if benchmark_ids is None
                  else Suite.objects.filter(entries__benchmark_id__in=benchmark_ids).distinct())
    ranked = {(e.benchmark_id, e.benchmark_version): e for e in entries if e.ranked}
    parent_scores: dict[tuple[int, int], float] = {}
    if parents and suites:
        parent_scores = {
            (suite_id, variant_id): score for suite_id, variant_id, score in
            SuiteScore.objects.filter(suite__in=suites, variant_id__in=[p[0] for p in parents])
            .values_list("suite_id", "variant_id", "score")
        }
    result: dict[int, float | None] = {}

    def lookup(item: SuiteBenchmark) -> _Component | None:
        entry = ranked.get((item.benchmark_id, item.benchmark.version))
        if entry is None:
            return None
        return _Component(score=entry.score, metrics=entry.metrics, verified=entry.verified,
                          contaminated=entry.contaminated, flags=entry.flags,
                          revision_number=entry.revision_number, score_metric=entry.score_metric)

    for suite in suites:
        agg = suite_aggregate(_suite_items(suite), lookup)
        if agg is None:
            SuiteScore.objects.filter(suite=suite, variant=variant).delete()
            result[suite.pk] = None
            continue
        row = _score_row(suite, variant.pk, agg, columns,
                         [[pid, name, parent_scores.get((suite.pk, pid))] for pid, name in parents])
        defaults = {f.attname: getattr(row, f.attname) for f in SuiteScore._meta.concrete_fields
                    if f.attname not in ("id", "suite_id", "variant_id", "updated_at")}
        SuiteScore.objects.update_or_create(suite=suite, variant=variant, defaults=defaults)
        result[suite.pk] = agg["score"]
    return result


def _suite_rebuild(suite: Suite) -> int:
    """Recompute every score of one suite from the ranked entries (after the suite or a benchmark changed)."""
    items = _suite_items(suite)
    keys = Q(pk__in=[])
    for item in items:
        keys |= Q(benchmark_id=item.benchmark_id, benchmark_version=item.benchmark.version)
    per_variant: dict[int, dict[int, _Component]] = defaultdict(dict)
    columns: dict[int, dict[str, Any]] = {}
    ranked_rows = LeaderboardEntry.objects.filter(keys, ranked=True).values_list(
        "variant_id", "benchmark_id", "score", "metrics", "verified", "contaminated", "flags", "revision_number",
        "score_metric", "variant_name", "owner_id", "relation", "precision", "license", "task", "parameters",
        "parents")
    for (variant_id, bench_id, score, metrics, verified, contaminated, flags, rev, metric, name, owner_id,
         relation, precision, license_, task, parameters, parents) in ranked_rows.iterator(chunk_size=5000):
        per_variant[variant_id][bench_id] = _Component(score, metrics, verified, contaminated, flags, rev, metric)
        columns[variant_id] = {"variant_name": name, "owner_id": owner_id, "relation": relation,
                               "precision": precision, "license": license_, "task": task, "parameters": parameters,
                               "parents": parents}
    SuiteScore.objects.filter(suite=suite).delete()
    aggregates: dict[int, dict[str, Any]] = {}
    for variant_id, comps in per_variant.items():
        def lookup(item: SuiteBenchmark, comps: dict[int, _Component] = comps) -> _Component | None:
            return comps.get(item.benchmark_id)

        agg = suite_aggregate(items, lookup)
        if agg is not None:
            aggregates[variant_id] = agg
    batch = []
    for variant_id, agg in aggregates.items():
        cols = columns[variant_id]
        parents = [[pid, name, aggregates[pid]["score"] if pid in aggregates else None]
                   for pid, name, *_ in cols["parents"]]
        batch.append(_score_row(suite, variant_id, agg, cols, parents))
    SuiteScore.objects.bulk_create(batch, batch_size=2000)
    return len(batch)


def _validate_suite_benchmarks(raw: list[dict[str, Any]]) -> list[SuiteBenchmark]:
    """Turn [{benchmark, weight, baseline, best, metric}] into unsaved SuiteBenchmark rows, or raise."""
    errors: dict[str, list[str]] = {}
    if not raw:
        raise ValidationFailed("A suite needs at least one benchmark.",
                               errors={"benchmarks": ["Give at least one benchmark."]})
    slugs = [str(item.get("benchmark", "")) for item in raw]
    known = {b.slug: b for b in Benchmark.objects.filter(slug__in=slugs)}
    seen: set[str] = set()
    items: list[SuiteBenchmark] = []
    for i, item in enumerate(raw):
        where = f"benchmarks.{i}"
        slug = slugs[i]
        benchmark = known.get(slug)
        if benchmark is None:
            errors.setdefault(f"{where}.benchmark", []).append(f"No benchmark '{slug}'.")
            continue
        if slug in seen:
            errors.setdefault(f"{where}.benchmark", []).append(f"'{slug}' is listed twice.")
            continue
        seen.add(slug)
        metric = item.get("metric") or benchmark.primary_metric or ""
        higher = metric_direction(benchmark, metric)
        if higher is None:
            names = ", ".join(m.get("name", "?") for m in benchmark.metrics) or "none"
            errors.setdefault(f"{where}.metric", []).append(f"'{slug}' has no metric '{metric}' (it has: {names}).")
            continue
        weight = float(item.get("weight", 1.0))
        baseline = float(item.get("baseline", 0.0))
        best = float(item.get("best", 1.0))
        if not (weight > 0 and math.isfinite(weight)):
            errors.setdefault(f"{where}.weight", []).append("Must be a positive number.")
        if not (math.isfinite(baseline) and math.isfinite(best)):
            errors.setdefault(f"{where}.best", []).append("Bounds must be finite numbers.")
        elif higher and not best > baseline:
            errors.setdefault(f"{where}.best", []).append(
                f"'{metric}' is higher-is-better: best must be above baseline ({baseline}).")
        elif not higher and not best < baseline:
            errors.setdefault(f"{where}.best", []).append(
                f"'{metric}' is lower-is-better: best must be below baseline ({baseline}).")
        items.append(SuiteBenchmark(benchmark=benchmark, position=i,
                                    metric="" if metric == benchmark.primary_metric else metric,
                                    weight=weight, baseline=baseline, best=best))
    if errors:
        raise ValidationFailed("Invalid suite benchmarks.", errors=errors)
    return items


def _suite_snapshot(suite: Suite) -> dict[str, Any]:
    return {
        "slug": suite.slug, "name": suite.name, "version": suite.version,
        "benchmarks": [{"benchmark": i.benchmark.slug, "metric": i.metric_name, "weight": i.weight,
                        "baseline": i.baseline, "best": i.best} for i in _suite_items(suite)],
    }


@transaction.atomic
def suite_create(*, actor: Any, slug: str, name: str, benchmarks: list[dict[str, Any]],
                 description: str = "") -> Suite:
    """Maintainers: define a suite, then score every variant already on its benchmarks' boards."""
    if Suite.objects.filter(slug__iexact=slug).exists():
        raise ValidationFailed("Slug taken.", errors={"slug": [f"A suite '{slug}' already exists."]})
    items = _validate_suite_benchmarks(benchmarks)
    suite = Suite.objects.create(slug=slug, name=name, description=description, created_by=actor)
    for item in items:
        item.suite = suite
    SuiteBenchmark.objects.bulk_create(items)
    _suite_rebuild(suite)
    audit_record(actor=actor, verb="suite.create", target=suite, after=_suite_snapshot(suite))
    return suite


@transaction.atomic
def suite_update(*, suite: Suite, actor: Any, if_match: str | None = None, name: str | None = None,
                 description: str | None = None, benchmarks: list[dict[str, Any]] | None = None) -> Suite:
    """Maintainers: edit a suite. New benchmarks, weights or bounds bump its version and rescore it."""
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    if if_match is not None and if_match.strip() not in ("*", suite.etag, f"W/{suite.etag}"):
        raise PreconditionFailed("The suite changed since you read it (If-Match does not match its ETag).")
    before = _suite_snapshot(suite)
    if name is not None:
        suite.name = name
    if description is not None:
        suite.description = description
    if benchmarks is not None:
        items = _validate_suite_benchmarks(benchmarks)
        old = [(i.benchmark_id, i.metric_name, i.weight, i.baseline, i.best) for i in _suite_items(suite)]
        new = [(i.benchmark_id, i.metric_name, i.weight, i.baseline, i.best) for i in items]
        if old != new:
            suite.entries.all().delete()
            for item in items:
                item.suite = suite
            SuiteBenchmark.objects.bulk_create(items)
            suite.version += 1
    suite.save()
    if suite.version != before["version"]:
        _suite_rebuild(suite)
    audit_record(actor=actor, verb="suite.update", target=suite, before=before, after=_suite_snapshot(suite))
    return suite


@transaction.atomic
def suite_definition_changed(*, suite: Suite, actor: Any, created: bool = False) -> Suite:
    """The Django admin created a suite or edited its benchmarks in place: score it (bumping the version of
    an existing suite) and audit."""
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    if not created:
        suite.version += 1
        suite.save(update_fields=["version", "updated_at"])
    _suite_rebuild(suite)
    audit_record(actor=actor, verb="suite.create" if created else "suite.update", target=suite,
                 after=_suite_snapshot(suite))
    return suite


# --- contamination ---------------------------------------------------------------------------------------

@transaction.atomic
def leaderboard_mark_contaminated(*, variant_id: int, flag_id: int, benchmark_slug: str | None,
                                  actor: Any) -> ContaminationMark:
    """A contamination flag was confirmed: mark the variant's results on `benchmark_slug` (or, when None,
    on every benchmark) on every board and suite. Idempotent per (flag, variant, benchmark)."""
    variant = _lock_variant(variant_id)
    if variant is None:
        raise NotFound(f"No variant {variant_id}.")
    benchmark = None
    if benchmark_slug is not None:
        benchmark = Benchmark.objects.filter(slug=benchmark_slug).first()
        if benchmark is None:
            raise ValidationFailed("Unknown benchmark.", errors={"benchmark": [f"No benchmark '{benchmark_slug}'."]})
    mark, created = ContaminationMark.objects.get_or_create(
        flag_id=flag_id, variant=variant, benchmark=benchmark, defaults={"created_by": actor_or_none(actor)})
    if not created and mark.cleared_at is not None:
        mark.cleared_at = None
        mark.cleared_by = None
        mark.save(update_fields=["cleared_at", "cleared_by"])
    _refresh_variant(variant)
    audit_record(actor=actor, verb="leaderboard.contamination_mark", target=mark,
                 after={"flag": flag_id, "variant": variant.full_name, "benchmark": benchmark_slug})
    return mark


@transaction.atomic
def leaderboard_clear_contamination(*, flag_id: int, actor: Any) -> int:
    """A confirmed contamination flag was reversed: lift its marks. Returns how many marks were cleared."""
    marks = list(ContaminationMark.objects.select_for_update(of=("self",))
                 .filter(flag_id=flag_id, cleared_at__isnull=True).select_related("benchmark"))
    now = timezone.now()
    for variant_id in sorted({m.variant_id for m in marks}):
        variant = _lock_variant(variant_id)
        for mark in (m for m in marks if m.variant_id == variant_id):
            mark.cleared_at = now
            mark.cleared_by = actor_or_none(actor)
            mark.save(update_fields=["cleared_at", "cleared_by"])
            audit_record(actor=actor, verb="leaderboard.contamination_clear", target=mark,
                         before={"flag": flag_id, "benchmark": mark.benchmark.slug if mark.benchmark else None},
                         after={"cleared": True})
        if variant is not None:
            _refresh_variant(variant)
    return len(marks)


def actor_or_none(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None
