"""Leaderboard entries, derived from jobs and results: the job-finished hook (`leaderboard_record_jobs`), the
refreshes after a variant or a benchmark changed, and `leaderboard_rebuild`.

Every update recomputes the affected rows from the source of truth instead of patching them, so running it twice
(hooks may fire more than once) changes nothing. The updates are set-based: a batch of finished jobs costs the
same number of queries as one job, and writes only the rows that changed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.benchmarks.choices import JobStatus, VerificationStatus
from apps.benchmarks.models import Benchmark, BenchmarkJob, JobResult
from apps.core.bulk import bulk_update_rows
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision, Variant, VariantParent

from .. import rows
from ..models import ContaminationMark, LeaderboardEntry, Suite, SuiteScore, primary_direction
from .locks import declared_parents, lock_variant, lock_variants
from .scoring import Candidate, as_score, choose_representative
from .suite_scores import suite_rebuild, suite_scores_for_variants, write_rows

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


def _job_candidates(jobs: list[BenchmarkJob], *, metric: str, higher: bool, confirmed: set[int]) -> list[Candidate]:
    candidates = []
    for job in jobs:
        score = as_score(job.result.metrics.get(metric)) if isinstance(job.result.metrics, dict) else None
        if score is None:
            continue
        candidates.append(
            Candidate(
                rank_score=score if higher else -score,
                verified=bool(job.result.verified or job.pk in confirmed),
                at=job.finished_at or job.result.created_at,
                pk=job.pk,
                obj=job,
            )
        )
    return candidates


# What a recomputation reads of a job and its result.
_CANDIDATE_FIELDS = (
    "id",
    "revision",
    "benchmark",
    "benchmark_version",
    "status",
    "verifies",
    "finished_at",
    "result__id",
    "result__job",
    "result__metrics",
    "result__verified",
    "result__verification_status",
    "result__created_at",
)


def _is_plain_finish(job: BenchmarkJob) -> bool:
    """A job whose finish can only add a candidate to its key: not a verification re-run, and, if it succeeded,
    a result no verification has touched yet (a verification changes an existing candidate's standing)."""
    if job.verifies_id is not None:
        return False
    if job.status != JobStatus.SUCCEEDED:
        return True
    result = getattr(job, "result", None)
    return result is None or (not result.verified and result.verification_status in ("", VerificationStatus.UNVERIFIED))


def _entries_recompute(
    keys: Iterable[EntryKey],
    *,
    variants: Mapping[int, Variant],
    revisions: Mapping[int, Revision],
    benchmarks: Mapping[int, Benchmark],
    finished: Mapping[EntryKey, list[BenchmarkJob]] | None = None,
) -> None:
    """Write, update or delete the entries of (revision, benchmark, version) keys from their succeeded jobs.

    Set-based: one read of the existing entries, one of the jobs and results of the keys, one of the re-runs
    that confirmed them, then at most one delete, one insert and one update, however many keys. Only keys of
    `variants` (locked by the caller) are written; an entry's other columns are `refresh_variants`'s job.

    `finished` (the job-finished hook) holds, per key, jobs that just finished, read with their results
    (`_CANDIDATE_FIELDS`). A key whose finished jobs are all plain (`_is_plain_finish`) and whose entry stands
    on the current primary metric is brought up to date from its entry and those jobs alone: a new succeeded job
    only adds a candidate, and the representative of a set grown by new candidates is the representative of
    the old one's representative and the new ones (best verified, else latest). So a finished job costs the
    same however many jobs its key has run before. Every other key (no entry yet, a verification, a changed
    metric) reads all its succeeded jobs."""
    todo = sorted(
        k for k in set(keys) if k[0] in revisions and k[1] in benchmarks and revisions[k[0]].variant_id in variants
    )
    if not todo:
        return
    where = _where_keys(todo)
    existing = {(e.revision_id, e.benchmark_id, e.benchmark_version): e for e in LeaderboardEntry.objects.filter(where)}
    incremental: dict[EntryKey, LeaderboardEntry] = {}
    jobs: dict[EntryKey, list[BenchmarkJob]] = defaultdict(list)
    for key, items in (finished or {}).items():
        entry = existing.get(key)
        if (
            key in todo
            and entry is not None
            and entry.job_id is not None
            and entry.score_metric == (benchmarks[key[1]].primary_metric or "")
            and all(_is_plain_finish(job) for job in items)
        ):
            incremental[key] = entry
            jobs[key] = [job for job in items if job.status == JobStatus.SUCCEEDED and hasattr(job, "result")]
    full = [key for key in todo if key not in incremental]
    if full:
        succeeded = (
            BenchmarkJob.objects.filter(
                _where_keys(full), status=JobStatus.SUCCEEDED, verifies__isnull=True, result__isnull=False
            )
            .select_related("result")
            .only(*_CANDIDATE_FIELDS)
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
        candidates = _job_candidates(
            jobs.get(key, []), metric=metric, higher=primary_direction(benchmark), confirmed=confirmed
        )
        entry = existing.get(key)
        standing = incremental.get(key)  # its job_id is set (see above); the test narrows the type
        if standing is not None and standing.job_id is not None:
            # The entry stands for every job of the key that finished before these.
            candidates = [c for c in candidates if c.pk != standing.job_id]
            candidates.append(Candidate(standing.rank_score, standing.verified, standing.result_at, standing.job_id))
        chosen = choose_representative(candidates)
        if chosen is None:
            if entry is not None:
                vanished.append(entry.pk)
            continue
        job = chosen.obj
        values = {"variant_id": revision.variant_id, "revision_number": revision.number, **columns[revision.variant_id]}
        if job is not None:  # None: the entry's own job is still the representative
            values |= {
                "job_id": job.pk,
                "score": job.result.metrics[metric],
                "score_metric": metric,
                "rank_score": chosen.rank_score,
                "metrics": job.result.metrics,
                "verified": chosen.verified,
                "disputed": getattr(job.result, "verification_status", "") == DISPUTED,
                "result_at": chosen.at,
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
    write_rows(
        LeaderboardEntry, vanished=vanished, created=created, changed=changed, fields=sorted(written) + ["updated_at"]
    )


def refresh_variant(variant: Variant, *, benchmark_ids: set[int] | None = None, suites: bool = True) -> None:
    """`refresh_variants` for one variant."""
    refresh_variants(
        [variant], benchmark_ids=None if benchmark_ids is None else {variant.pk: benchmark_ids}, suites=suites
    )


def refresh_variants(
    variants: Iterable[Variant], *, benchmark_ids: Mapping[int, set[int]] | None = None, suites: bool = True
) -> None:
    """Copy each variant's columns and its parents' scores onto its entries, apply contamination marks, pick
    the ranked entry per benchmark version, recompute the variant's suite scores, then give its children its
    new scores (their `delta_vs_parents`). The caller holds the variants' locks (`lock_variants`).

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
        declared = declared_parents(variant)
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
            Candidate(rank_score=e.rank_score, verified=e.verified, at=e.result_at, pk=e.pk, obj=e)
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
        suite_scores = suite_scores_for_variants(
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
        # Already held (`lock_variants` locks the children with the variants) unless linked since then.
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

    For each job (a verification re-run stands for the job it verifies; unknown ids are ignored) brings its
    revision's entry on its benchmark version up to date: from the entry and the job alone when the job only adds
    a candidate, else from every succeeded job of the key (`_entries_recompute`). Either way it is idempotent and
    also correct for failed or cancelled jobs (which simply change nothing). Set-based: one transaction and a
    constant number of queries for the whole batch, whatever its size."""
    ids = sorted({int(i) for i in job_ids})
    if not ids:
        return
    originals = BenchmarkJob.objects.filter(pk__in=ids, verifies__isnull=False).values("verifies_id")
    jobs = list(
        BenchmarkJob.objects.filter(Q(pk__in=ids, verifies__isnull=True) | Q(pk__in=originals))
        .select_related("revision", "result")
        .only(*_CANDIDATE_FIELDS, "revision__variant", "revision__number")
        .order_by()
    )
    if not jobs:
        return
    revisions = {job.revision_id: job.revision for job in jobs}
    keys = {(job.revision_id, job.benchmark_id, job.benchmark_version) for job in jobs}
    finished: dict[EntryKey, list[BenchmarkJob]] = defaultdict(list)
    verified_again: set[EntryKey] = set()  # keys of jobs a re-run among `ids` verified
    wanted = set(ids)
    for job in jobs:
        key = (job.revision_id, job.benchmark_id, job.benchmark_version)
        if job.pk in wanted:
            finished[key].append(job)
        else:
            verified_again.add(key)
    for key in verified_again:
        finished.pop(key, None)
    changed: dict[int, set[int]] = defaultdict(set)
    for revision_id, benchmark_id, _ in keys:
        changed[revisions[revision_id].variant_id].add(benchmark_id)
    with transaction.atomic():
        variants = lock_variants(changed.keys())
        if not variants:
            return
        benchmarks = Benchmark.objects.in_bulk({key[1] for key in keys})
        _entries_recompute(keys, variants=variants, revisions=revisions, benchmarks=benchmarks, finished=finished)
        refresh_variants(variants.values(), benchmark_ids=changed)


def leaderboard_record_job(job_id: int) -> None:
    """`leaderboard_record_jobs` for one job."""
    leaderboard_record_jobs([job_id])


@transaction.atomic
def leaderboard_refresh_variant(*, variant_id: int) -> None:
    """Re-derive a variant's rows after the variant or one of its revisions changed (publish, unpublish,
    license or parameter edits...)."""
    variant = lock_variant(variant_id)
    if variant is None:
        return
    refresh_variant(variant)


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
            suite_rebuild(suite)


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
            variant = lock_variant(variant_id)
            if variant is None:
                continue
            _entries_recompute(items, variants={variant.pk: variant}, revisions=revisions, benchmarks=benchmarks)
            refresh_variant(variant, suites=False)
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
            suite_rebuild(suite)
        suites += 1
    say(f"rebuilt {suites} suites")
    return {"removed": len(orphans), "entries": recomputed, "suites": suites}
