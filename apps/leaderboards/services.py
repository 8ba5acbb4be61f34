"""Leaderboard writes: keep the summary tables in step with results, variants, suites and contamination marks.

Everything here is derived data: `leaderboard_rebuild()` recomputes it all from jobs and results, and every
incremental update recomputes the affected rows from the source of truth instead of patching them, so that
running an update twice (hooks may fire more than once) changes nothing. The updates are set-based: a batch of
finished jobs (`leaderboard_record_jobs`) costs the same number of queries as one job, and writes only the
rows that changed. Writers lock the variants whose rows they write, all at once (`_lock_variants`).

Which result a board shows (SPEC: "best verified (or latest) result"):
- per revision, among its succeeded jobs on a benchmark version (verification re-runs excluded): the best
  verified result, or, when none is verified, the latest one; that is the revision's `LeaderboardEntry`;
- per variant, among the entries of its published revisions, by the same rule: that entry is `ranked`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob, JobResult
from apps.core.bulk import bulk_update_rows
from apps.core.conditional import check_if_match
from apps.core.errors import NotFound, ValidationFailed
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
    "variant_name",
    "revision_number",
    "owner",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "is_public",
    "parents",
    "listed",
    "ranked",
    "contaminated",
    "flags",
    "document",
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


# --- locks -----------------------------------------------------------------------------------------------

# What the services read from a locked variant: its board columns and its full name, never its card.
_VARIANT_FIELDS = (
    "id",
    "owner",
    "owner__username",
    "name",
    "relation",
    "precision",
    "license",
    "task",
    "parameters",
    "is_public",
    "published_revision",
)
# Board columns a public variant shows as its last published revision declares them (Revision.metadata), so
# that an owner's unreviewed draft edits never reach the public boards or their filters.
_PUBLISHED_COLUMNS = ("relation", "precision", "license", "task", "parameters")


def _published_columns() -> dict[str, F]:
    """The snapshot's board columns and parents, read as single JSON keys (never the whole metadata, which holds
    the card)."""
    return {
        f"published_{name}": F(f"published_revision__metadata__{name}")
        for name in (*_PUBLISHED_COLUMNS, "parent_ids", "parents")
    }


def _declared_parents(variant: Variant) -> list[list[Any]] | None:
    """[[parent id, "owner/name"], ...] by name as the variant's last published revision declares them, or None
    (not published, or a snapshot without parent ids: the live links stand)."""
    if variant.published_revision_id is None:
        return None
    ids, names = getattr(variant, "published_parent_ids", None), getattr(variant, "published_parents", None)
    if not isinstance(ids, list) or not isinstance(names, list) or len(ids) != len(names):
        return None
    return sorted(([int(pid), str(name)] for pid, name in zip(ids, names, strict=True)), key=lambda p: p[1])


def _lock_variants(variant_ids: Iterable[int]) -> dict[int, Variant]:
    """Lock the variants together with their children, in one statement ordered by pk; return the variants.

    Every leaderboards write serializes on the row locks of the variants whose rows it writes: a variant's
    own (its entries and suite scores) and its children's (their `parents` columns carry its scores). All of
    them are taken at once, in one global order, so two writers can never wait on each other in a cycle.
    Locking a batch first and its children afterwards would not be safe once a writer holds several unrelated
    variants: batch A = {1, 5} and batch B = {3, 4}, with the links 5 -> 3 and 4 -> 5, would each hold the row
    the other's child step waits for. (With one variant per transaction that order was safe: it follows the
    DAG.) The one lock taken later is a child linked after this statement (`_propagate_to_children`), a rare
    case in which PostgreSQL may report a deadlock and roll one writer back instead of hanging; hooks are
    idempotent and `leaderboard_rebuild` repairs anything lost. The same holds when a caller already holds a
    variant's lock: `reviews.flag_resolve` (unpublish) locks the variant before `leaderboard_mark_contaminated`
    locks it with its children, so only a child with a smaller pk than that variant could invert the order.

    `of=("self",)`: the owner row joined for the name stays unlocked (owners are shared by many variants and
    would be locked in join order); `no_key`: like the registry's, the lock does not block inserts that only
    reference the variant (revisions, marks, child links)."""
    ids = sorted(set(variant_ids))
    if not ids:
        return {}
    children = VariantParent.objects.filter(parent_id__in=ids).values("child_id")
    locked = (
        Variant.objects.select_for_update(of=("self",), no_key=True)
        .select_related("owner")
        .only(*_VARIANT_FIELDS)
        .annotate(**_published_columns())
        .filter(Q(pk__in=ids) | Q(pk__in=children))
        .order_by("pk")
    )
    wanted = set(ids)
    return {variant.pk: variant for variant in locked if variant.pk in wanted}


def _lock_variant(variant_id: int) -> Variant | None:
    return _lock_variants([variant_id]).get(variant_id)


# --- entries ---------------------------------------------------------------------------------------------

# (revision id, benchmark id, benchmark version): the key of one LeaderboardEntry.
EntryKey = tuple[int, int, str]


def _variant_columns(variant: Variant) -> dict[str, Any]:
    """The board columns of a variant: a published one's as its last published revision declares them."""
    published = variant.published_revision_id is not None and hasattr(variant, "published_license")

    def column(name: str) -> Any:
        return getattr(variant, f"published_{name}") if published else getattr(variant, name)

    return {
        "variant_name": f"{variant.owner.username}/{variant.name}",
        "owner_id": variant.owner_id,
        "relation": column("relation") or "",
        "precision": column("precision") or "",
        "license": (column("license") or "").lower(),
        "task": column("task") or "",
        "parameters": column("parameters"),
        "is_public": variant.is_public,
    }


def _variant_links(variant_ids: Iterable[int]) -> tuple[dict[int, list[list[Any]]], dict[int, list[int]]]:
    """One read of the lineage of several variants: ({variant: [[parent id, "owner/name"], ...] sorted by
    name}, {variant: [child ids]})."""
    ids = set(variant_ids)
    parents: dict[int, list[list[Any]]] = defaultdict(list)
    children: dict[int, list[int]] = defaultdict(list)
    links = VariantParent.objects.filter(Q(child_id__in=ids) | Q(parent_id__in=ids)).values_list(
        "child_id", "parent_id", "parent__owner__username", "parent__name"
    )
    for child_id, parent_id, owner, name in links:
        if child_id in ids:
            parents[child_id].append([parent_id, f"{owner}/{name}"])
        if parent_id in ids:
            children[parent_id].append(child_id)
    for items in parents.values():
        items.sort(key=lambda p: p[1])
    return parents, children


def _where_keys(keys: Iterable[EntryKey]) -> Q:
    """Rows of BenchmarkJob or LeaderboardEntry (same field names) on exactly these keys: one condition per
    benchmark version, which holds few distinct values in a batch."""
    revisions: dict[tuple[int, str], set[int]] = defaultdict(set)
    for revision_id, benchmark_id, version in keys:
        revisions[(benchmark_id, version)].add(revision_id)
    where = Q(pk__in=[])
    for (benchmark_id, version), ids in sorted(revisions.items()):
        where |= Q(benchmark_id=benchmark_id, benchmark_version=version, revision_id__in=sorted(ids))
    return where


def _job_candidates(jobs: list[BenchmarkJob], *, metric: str, higher: bool, confirmed: set[int]) -> list[_Candidate]:
    candidates = []
    for job in jobs:
        score = _as_score(job.result.metrics.get(metric)) if isinstance(job.result.metrics, dict) else None
        if score is None:
            continue
        candidates.append(
            _Candidate(
                rank_score=score if higher else -score,
                verified=bool(job.result.verified or job.pk in confirmed),
                at=job.finished_at or job.result.created_at,
                pk=job.pk,
                obj=job,
            )
        )
    return candidates


def _entries_recompute(
    keys: Iterable[EntryKey],
    *,
    variants: Mapping[int, Variant],
    revisions: Mapping[int, Revision],
    benchmarks: Mapping[int, Benchmark],
) -> None:
    """Write, update or delete the entries of (revision, benchmark, version) keys from their succeeded jobs.

    Set-based: one read of the jobs and results of all keys, one of the re-runs that confirmed them, one of
    the existing entries, then at most one delete, one insert and one update, however many keys. Only keys of
    `variants` (locked by the caller) are written; an entry's other columns are `_refresh_variants`'s job."""
    todo = sorted(
        k for k in set(keys) if k[0] in revisions and k[1] in benchmarks and revisions[k[0]].variant_id in variants
    )
    if not todo:
        return
    where = _where_keys(todo)
    jobs: dict[EntryKey, list[BenchmarkJob]] = defaultdict(list)
    succeeded = (
        BenchmarkJob.objects.filter(where, status=JobStatus.SUCCEEDED, verifies__isnull=True, result__isnull=False)
        .select_related("result")
        .only(
            "id",
            "revision",
            "benchmark",
            "benchmark_version",
            "finished_at",
            "result__id",
            "result__job",
            "result__metrics",
            "result__verified",
            "result__verification_status",
            "result__created_at",
        )
        .order_by()
    )
    for job in succeeded:
        jobs[(job.revision_id, job.benchmark_id, job.benchmark_version)].append(job)
    job_ids = [job.pk for items in jobs.values() for job in items]
    # A verification re-run that agreed may be recorded on the re-run's result rather than the original's.
    confirmed = (
        {
            pk
            for pk in JobResult.objects.filter(job__verifies__in=job_ids, verified=True).values_list(
                "job__verifies_id", flat=True
            )
            if pk is not None
        }
        if job_ids
        else set()
    )
    existing = {(e.revision_id, e.benchmark_id, e.benchmark_version): e for e in LeaderboardEntry.objects.filter(where)}
    columns = {pk: _variant_columns(variant) for pk, variant in variants.items()}
    now = timezone.now()
    created: list[LeaderboardEntry] = []
    changed: list[LeaderboardEntry] = []
    vanished: list[int] = []
    written: set[str] = set()
    for key in todo:
        revision_id, benchmark_id, version = key
        benchmark, revision = benchmarks[benchmark_id], revisions[revision_id]
        metric = benchmark.primary_metric or ""
        chosen = choose_representative(
            _job_candidates(jobs.get(key, []), metric=metric, higher=primary_direction(benchmark), confirmed=confirmed)
        )
        entry = existing.get(key)
        if chosen is None:
            if entry is not None:
                vanished.append(entry.pk)
            continue
        job = chosen.obj
        values = {
            "variant_id": revision.variant_id,
            "job_id": job.pk,
            "score": job.result.metrics[metric],
            "score_metric": metric,
            "rank_score": chosen.rank_score,
            "metrics": job.result.metrics,
            "verified": chosen.verified,
            "disputed": getattr(job.result, "verification_status", "") == DISPUTED,
            "result_at": chosen.at,
            "revision_number": revision.number,
            **columns[revision.variant_id],
        }
        if entry is None:
            created.append(
                LeaderboardEntry(
                    revision_id=revision_id, benchmark_id=benchmark_id, benchmark_version=version, **values
                )
            )
            continue
        diff = {name for name, value in values.items() if getattr(entry, name) != value}
        if diff:
            for name in diff:
                setattr(entry, name, values[name])
            entry.updated_at = now
            written |= diff
            changed.append(entry)
    _write_rows(
        LeaderboardEntry, vanished=vanished, created=created, changed=changed, fields=sorted(written) + ["updated_at"]
    )


def _write_rows(
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


def _refresh_variant(variant: Variant, *, benchmark_ids: set[int] | None = None, suites: bool = True) -> None:
    """`_refresh_variants` for one variant."""
    _refresh_variants(
        [variant], benchmark_ids=None if benchmark_ids is None else {variant.pk: benchmark_ids}, suites=suites
    )


def _refresh_variants(
    variants: Iterable[Variant], *, benchmark_ids: Mapping[int, set[int]] | None = None, suites: bool = True
) -> None:
    """Copy each variant's columns and its parents' scores onto its entries, apply contamination marks, pick
    the ranked entry per benchmark version, recompute the variant's suite scores, then give its children its
    new scores (their `delta_vs_parents`). The caller holds the variants' locks (`_lock_variants`).

    `benchmark_ids` maps a variant to the benchmarks whose results changed: only the suites containing them
    are recomputed (None: every suite). A constant number of queries however many variants: the variants'
    entries, revision statuses, marks and links are each read once, a parent refreshed in the same call
    passes its new scores in memory, and each table is written with one bulk statement."""
    by_id = {variant.pk: variant for variant in variants}
    if not by_id:
        return
    ids = sorted(by_id)
    columns = {pk: _variant_columns(variant) for pk, variant in by_id.items()}
    parents, children = _variant_links(ids)
    for pk, variant in by_id.items():
        # A public row names the parents its published revision declares, not those of a newer draft.
        declared = _declared_parents(variant)
        if declared is not None:
            parents[pk] = declared
    entries = list(LeaderboardEntry.objects.filter(variant_id__in=ids).order_by("pk"))
    statuses = dict(Revision.objects.filter(variant_id__in=ids).values_list("pk", "status"))
    marks: dict[int, list[ContaminationMark]] = defaultdict(list)
    for mark in (
        ContaminationMark.objects.filter(variant_id__in=ids, cleared_at__isnull=True)
        .select_related("benchmark")
        .order_by("flag_id", "id")
    ):
        marks[mark.variant_id].append(mark)
    # First what does not depend on the parents: columns, listing, flags, and so the ranked entries.
    groups: dict[tuple[int, int, str], list[LeaderboardEntry]] = defaultdict(list)
    by_variant: dict[int, list[LeaderboardEntry]] = defaultdict(list)
    for entry in entries:
        variant = by_id[entry.variant_id]
        entry._lb_before = {  # type: ignore[attr-defined]
            name: getattr(entry, name if name != "owner" else "owner_id") for name in ENTRY_SYNC_FIELDS
        }
        for name, value in columns[variant.pk].items():
            setattr(entry, name, value)
        entry.listed = bool(variant.is_public and statuses.get(entry.revision_id) == RevisionStatus.PUBLISHED)
        hits = [m for m in marks[variant.pk] if m.benchmark_id is None or m.benchmark_id == entry.benchmark_id]
        entry.flags = [m.flag_payload() for m in hits]
        if entry.disputed:
            entry.flags.append(DISPUTED_FLAG)
        entry.contaminated = bool(hits)
        groups[(variant.pk, entry.benchmark_id, entry.benchmark_version)].append(entry)
        by_variant[variant.pk].append(entry)
    for group in groups.values():
        chosen = choose_representative(
            _Candidate(rank_score=e.rank_score, verified=e.verified, at=e.result_at, pk=e.pk, obj=e)
            for e in group
            if e.listed
        )
        for entry in group:
            entry.ranked = chosen is not None and entry is chosen.obj
    # Then the parents' ranked scores: a parent refreshed here gives its new ones, any other its stored ones.
    ranked = {(e.variant_id, e.benchmark_id, e.benchmark_version): e.score for e in entries if e.ranked}
    stored = {pid for pk in by_variant for pid, _ in parents.get(pk, []) if pid not in by_id}
    if stored:
        ranked.update(
            {
                (variant_id, bench_id, version): score
                for variant_id, bench_id, version, score in LeaderboardEntry.objects.filter(
                    variant_id__in=stored, ranked=True, benchmark_id__in={e.benchmark_id for e in entries}
                ).values_list("variant_id", "benchmark_id", "benchmark_version", "score")
            }
        )
    now = timezone.now()
    changed: list[LeaderboardEntry] = []
    for entry in entries:
        entry.parents = [
            [pid, name, ranked.get((pid, entry.benchmark_id, entry.benchmark_version))]
            for pid, name in parents.get(entry.variant_id, [])
        ]
        entry.document = rows.entry_text(entry)
        after = {name: getattr(entry, name if name != "owner" else "owner_id") for name in ENTRY_SYNC_FIELDS}
        if after != entry._lb_before:  # type: ignore[attr-defined]
            entry.updated_at = now
            changed.append(entry)
    if changed:
        bulk_update_rows(LeaderboardEntry, changed, ENTRY_SYNC_FIELDS + ["updated_at"])
    suite_scores: dict[int, dict[int, float | None]] | None = None
    if suites:
        suite_scores = _suite_scores_for_variants(
            ids, by_variant, benchmark_ids=benchmark_ids, columns=columns, parents=parents
        )
    _propagate_to_children(ids, by_variant, children=children, benchmark_ids=benchmark_ids, suite_scores=suite_scores)


def _with_parent_score(items: list[list[Any]], parent_id: int, score: float | None) -> list[list[Any]]:
    return [[pid, name, score if pid == parent_id else old] for pid, name, old in items]


def _propagate_to_children(
    variant_ids: list[int],
    entries: Mapping[int, list[LeaderboardEntry]],
    *,
    children: Mapping[int, list[int]],
    benchmark_ids: Mapping[int, set[int]] | None,
    suite_scores: Mapping[int, dict[int, float | None]] | None,
) -> None:
    """Write the variants' ranked scores (and new suite scores) into their children's rows, where the boards
    read them for `delta_vs_parents` without a join.

    A child refreshed in the same call already has its parents' new scores on its entries; its suite scores
    outside the suites recomputed for it still get them here. Per parent, children's entries are rewritten on
    the benchmarks the parent has entries on or whose results changed (all of them in a full refresh)."""
    refreshed = set(variant_ids)
    parents_of: dict[int, list[int]] = defaultdict(list)
    for pid in variant_ids:
        for child_id in children.get(pid, []):
            parents_of[child_id].append(pid)
    if not parents_of:
        return
    others = sorted(set(parents_of) - refreshed)
    now = timezone.now()
    if others:
        # Already held (`_lock_variants` locks the children with the variants) unless linked since then.
        list(
            Variant.objects.select_for_update(of=("self",), no_key=True)
            .filter(pk__in=others)
            .order_by("pk")
            .values_list("pk")
        )
        ranked = {
            pid: {(e.benchmark_id, e.benchmark_version): e.score for e in entries.get(pid, []) if e.ranked}
            for pid in variant_ids
        }
        # None: every board (a full refresh).
        scope: dict[int, set[int]] | None = (
            None
            if benchmark_ids is None
            else {
                pid: benchmark_ids.get(pid, set()) | {e.benchmark_id for e in entries.get(pid, [])}
                for pid in variant_ids
            }
        )
        rows_qs = LeaderboardEntry.objects.filter(variant_id__in=others)
        if scope is not None:
            rows_qs = rows_qs.filter(benchmark_id__in=set().union(*scope.values()))
        changed = []
        for row in rows_qs.order_by("pk"):
            parents = row.parents
            for pid in parents_of[row.variant_id]:
                if scope is None or row.benchmark_id in scope[pid]:
                    parents = _with_parent_score(
                        parents, pid, ranked[pid].get((row.benchmark_id, row.benchmark_version))
                    )
            if parents != row.parents:
                row.parents, row.updated_at = parents, now
                row.document = rows.entry_text(row)
                changed.append(row)
        bulk_update_rows(LeaderboardEntry, changed, ["parents", "document", "updated_at"])
    suite_ids = {sid for pid in variant_ids for sid in (suite_scores or {}).get(pid, {})}
    if suite_scores and suite_ids:
        changed_scores = []
        for score in SuiteScore.objects.filter(variant_id__in=list(parents_of), suite_id__in=suite_ids).order_by("pk"):
            parents = score.parents
            for pid in parents_of[score.variant_id]:
                if score.suite_id in suite_scores.get(pid, {}):
                    parents = _with_parent_score(parents, pid, suite_scores[pid][score.suite_id])
            if parents != score.parents:
                score.parents, score.updated_at = parents, now
                score.document = rows.suite_text(score)
                changed_scores.append(score)
        bulk_update_rows(SuiteScore, changed_scores, ["parents", "document", "updated_at"])


def leaderboard_record_jobs(job_ids: Iterable[int]) -> None:
    """JOB_FINISHED_HOOKS entry: jobs finished or their verification changed; update their summary rows.

    For each job (a verification re-run stands for the job it verifies; unknown ids are ignored) recomputes
    its revision's entry on its benchmark version from every succeeded job, so it is idempotent and also
    correct for failed or cancelled jobs (which simply change nothing). Set-based: one transaction and a
    constant number of queries for the whole batch, whatever its size."""
    ids = sorted({int(i) for i in job_ids})
    if not ids:
        return
    originals = BenchmarkJob.objects.filter(pk__in=ids, verifies__isnull=False).values("verifies_id")
    jobs = list(
        BenchmarkJob.objects.filter(Q(pk__in=ids, verifies__isnull=True) | Q(pk__in=originals))
        .select_related("revision")
        .only("id", "revision", "benchmark", "benchmark_version", "revision__variant", "revision__number")
        .order_by()
    )
    if not jobs:
        return
    revisions = {job.revision_id: job.revision for job in jobs}
    keys = {(job.revision_id, job.benchmark_id, job.benchmark_version) for job in jobs}
    changed: dict[int, set[int]] = defaultdict(set)
    for revision_id, benchmark_id, _ in keys:
        changed[revisions[revision_id].variant_id].add(benchmark_id)
    with transaction.atomic():
        variants = _lock_variants(changed.keys())
        if not variants:
            return
        benchmarks = Benchmark.objects.in_bulk({key[1] for key in keys})
        _entries_recompute(keys, variants=variants, revisions=revisions, benchmarks=benchmarks)
        _refresh_variants(variants.values(), benchmark_ids=changed)


def leaderboard_record_job(job_id: int) -> None:
    """`leaderboard_record_jobs` for one job."""
    leaderboard_record_jobs([job_id])


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


def _recompute_triples(triples: set[EntryKey]) -> int:
    """Recompute the entries of (revision, benchmark, version) triples, one variant transaction at a time."""
    revisions = {r.pk: r for r in Revision.objects.filter(pk__in={t[0] for t in triples})}
    benchmarks = {b.pk: b for b in Benchmark.objects.filter(pk__in={t[1] for t in triples})}
    by_variant: dict[int, list[EntryKey]] = defaultdict(list)
    for triple in triples:
        if triple[0] in revisions and triple[1] in benchmarks:
            by_variant[revisions[triple[0]].variant_id].append(triple)
    for variant_id, items in by_variant.items():
        with transaction.atomic():
            variant = _lock_variant(variant_id)
            if variant is None:
                continue
            _entries_recompute(items, variants={variant.pk: variant}, revisions=revisions, benchmarks=benchmarks)
            _refresh_variant(variant, suites=False)
    return sum(len(items) for items in by_variant.values())


def leaderboard_rebuild(*, stdout: Callable[[str], Any] | None = None) -> dict[str, int]:
    """Recompute every entry and suite score from jobs and results (`manage.py leaderboard_rebuild`)."""
    say = stdout or (lambda _msg: None)
    triples = set(
        BenchmarkJob.objects.filter(status=JobStatus.SUCCEEDED, verifies__isnull=True, result__isnull=False)
        .values_list("revision_id", "benchmark_id", "benchmark_version")
        .distinct()
    )
    orphans = [
        pk
        for pk, *triple in LeaderboardEntry.objects.values_list(
            "pk", "revision_id", "benchmark_id", "benchmark_version"
        )
        if tuple(triple) not in triples
    ]
    for start in range(0, len(orphans), 1000):
        LeaderboardEntry.objects.filter(pk__in=orphans[start : start + 1000]).delete()
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


def suite_aggregate(
    items: list[SuiteBenchmark],
    lookup: Callable[[SuiteBenchmark], _Component | None],
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
        components[slug] = {
            "score": value,
            "normalized": round(normalized, 4),
            "weight": item.weight,
            "revision": comp.revision_number,
            "verified": comp.verified,
            "version": item.benchmark.version,
        }
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


def _suite_scores_for_variants(
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
        ]  # type: ignore[attr-defined]
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
        ) -> _Component | None:
            entry = ranked.get((item.benchmark_id, item.benchmark.version))
            if entry is None:
                return None
            return _Component(
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
    _write_rows(
        SuiteScore, vanished=vanished, created=created, changed=changed, fields=_SUITE_SCORE_FIELDS + ["updated_at"]
    )
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
        per_variant[variant_id][bench_id] = _Component(score, metrics, verified, contaminated, flags, rev, metric)
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

        def lookup(item: SuiteBenchmark, comps: dict[int, _Component] = comps) -> _Component | None:
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


def _validate_suite_benchmarks(raw: list[dict[str, Any]]) -> list[SuiteBenchmark]:
    """Turn [{benchmark, weight, baseline, best, metric}] into unsaved SuiteBenchmark rows, or raise."""
    errors: dict[str, list[str]] = {}
    if not raw:
        raise ValidationFailed(
            "A suite needs at least one benchmark.", errors={"benchmarks": ["Give at least one benchmark."]}
        )
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
                f"'{metric}' is higher-is-better: best must be above baseline ({baseline})."
            )
        elif not higher and not best < baseline:
            errors.setdefault(f"{where}.best", []).append(
                f"'{metric}' is lower-is-better: best must be below baseline ({baseline})."
            )
        items.append(
            SuiteBenchmark(
                benchmark=benchmark,
                position=i,
                metric="" if metric == benchmark.primary_metric else metric,
                weight=weight,
                baseline=baseline,
                best=best,
            )
        )
    if errors:
        raise ValidationFailed("Invalid suite benchmarks.", errors=errors)
    return items


def _suite_snapshot(suite: Suite) -> dict[str, Any]:
    return {
        "slug": suite.slug,
        "name": suite.name,
        "version": suite.version,
        "benchmarks": [
            {
                "benchmark": i.benchmark.slug,
                "metric": i.metric_name,
                "weight": i.weight,
                "baseline": i.baseline,
                "best": i.best,
            }
            for i in _suite_items(suite)
        ],
    }


@transaction.atomic
def suite_create(*, actor: Any, slug: str, name: str, benchmarks: list[dict[str, Any]], description: str = "") -> Suite:
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
def suite_update(
    *,
    suite: Suite,
    actor: Any,
    if_match: str | None = None,
    name: str | None = None,
    description: str | None = None,
    benchmarks: list[dict[str, Any]] | None = None,
) -> Suite:
    """Maintainers: edit a suite. New benchmarks, weights or bounds bump its version and rescore it."""
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    check_if_match(if_match, suite.etag, what="The suite")
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
    audit_record(
        actor=actor, verb="suite.create" if created else "suite.update", target=suite, after=_suite_snapshot(suite)
    )
    return suite


# --- contamination ---------------------------------------------------------------------------------------


@transaction.atomic
def leaderboard_mark_contaminated(
    *, variant_id: int, flag_id: int, benchmark_slug: str | None, actor: Any
) -> ContaminationMark:
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
        flag_id=flag_id, variant=variant, benchmark=benchmark, defaults={"created_by": actor_or_none(actor)}
    )
    if not created and mark.cleared_at is not None:
        mark.cleared_at = None
        mark.cleared_by = None
        mark.save(update_fields=["cleared_at", "cleared_by"])
    _refresh_variant(variant)
    audit_record(
        actor=actor,
        verb="leaderboard.contamination_mark",
        target=mark,
        after={"flag": flag_id, "variant": variant.full_name, "benchmark": benchmark_slug},
    )
    return mark


@transaction.atomic
def leaderboard_clear_contamination(*, flag_id: int, actor: Any) -> int:
    """A confirmed contamination flag was reversed: lift its marks. Returns how many marks were cleared."""
    marks = list(
        ContaminationMark.objects.select_for_update(of=("self",))
        .filter(flag_id=flag_id, cleared_at__isnull=True)
        .select_related("benchmark")
    )
    now = timezone.now()
    # All the variants (and their children) at once, in one statement: see `_lock_variants`.
    variants = _lock_variants(m.variant_id for m in marks)
    for mark in sorted(marks, key=lambda m: m.variant_id):
        mark.cleared_at = now
        mark.cleared_by = actor_or_none(actor)
        mark.save(update_fields=["cleared_at", "cleared_by"])
        audit_record(
            actor=actor,
            verb="leaderboard.contamination_clear",
            target=mark,
            before={"flag": flag_id, "benchmark": mark.benchmark.slug if mark.benchmark else None},
            after={"cleared": True},
        )
    _refresh_variants(variants.values())
    return len(marks)


def actor_or_none(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None
