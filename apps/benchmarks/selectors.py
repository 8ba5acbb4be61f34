"""Reads on jobs and benchmarks, always starting from what the user may see."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.db.models import F, FilteredRelation, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from apps.core.compiled import CompiledQuery
from apps.core.errors import NotFound
from apps.orgs.models import Organization
from apps.orgs.selectors import org_quota_limits
from apps.registry.models import Variant
from apps.registry.querysets import revision_is_visible_to, revision_visibility_q
from apps.registry.selectors import revision_declared

from .choices import ACTIVE_JOB_STATUSES, DEDUPE_EXCLUDED_STATUSES, JobStatus
from .models import Benchmark, BenchmarkJob, BlockedVariant, ComputeUsage, JobResult

if TYPE_CHECKING:
    from apps.accounts.types import Actor, Viewer


def jobs_visible_to(user: Viewer) -> QuerySet[BenchmarkJob]:
    """Jobs on revisions the user may see (published ones; every revision for the variant's insiders)."""
    return BenchmarkJob.objects.all().visible_to(user)


def job_for_user_or_404(
    user: Viewer, job_id: int, *, for_display: bool = False, for_serializer: bool = False
) -> BenchmarkJob:
    """The job if the user may see its revision; NotFound otherwise (no one learns it exists). With
    `for_display`, with what its representation reads; with `for_serializer`, with only the columns the API's
    representation reads (:func:`jobs_for_serializer`)."""
    # One row by id, then the revision rule in its Python form (the same as `jobs_visible_to`), which costs less
    # than building the rule's SQL for one row (issue 16's profile).
    job = None
    if 0 < job_id < 2**63 and for_serializer:
        job = _JOB_FOR_SERIALIZER.first(job_id)  # compiled once: building it cost more than running it
    elif 0 < job_id < 2**63:
        base: QuerySet[BenchmarkJob] = BenchmarkJob.objects.all()
        qs = jobs_for_api(base) if for_display else base.select_related("revision__variant")
        job = qs.filter(pk=job_id).first()
    if job is None or not revision_is_visible_to(user, job.revision):
        raise NotFound(f"No job {job_id}.")
    return job


def benchmarks_visible_to(user: Viewer) -> QuerySet[Benchmark]:
    return Benchmark.objects.all().visible_to(user)


def benchmark_with_current_spec(qs: QuerySet[Benchmark]) -> QuerySet[Benchmark]:
    """Benchmarks read with the frozen spec of their current version in the same query (a submission records it:
    ``benchmark_current_spec`` then makes no query of its own)."""
    return qs.annotate(
        current_spec=FilteredRelation("versions", condition=Q(versions__version=F("version")))
    ).select_related("current_spec")  # type: ignore[misc] # the stubs know no FilteredRelation names


# A submission's benchmark by slug (unique) with its current spec: compiled once (apps.core.compiled), as the
# FilteredRelation join cost more to build and compile on every submission than to run.
_BENCHMARK_BY_SLUG: CompiledQuery[Benchmark] = CompiledQuery(
    lambda slug: benchmark_with_current_spec(Benchmark.objects.filter(slug=slug)).order_by()[:1], str
)


def benchmark_by_slug(slug: str) -> Benchmark | None:
    """The benchmark named `slug`, with its current version's frozen spec read in the same query, or None."""
    return _BENCHMARK_BY_SLUG.first(slug)


BLOCKLIST_REASON = "mc_blocklist_reason"


def blocklist_reason() -> dict[str, Any]:
    """An annotation for a variant query: the reason of the variant's newest blocklist entry (NULL if none), which
    the submission checks read instead of asking (:func:`apps.benchmarks.services.submission_problems`)."""
    entries = BlockedVariant.objects.filter(variant=OuterRef("pk")).order_by("-created_at", "-id")
    return {BLOCKLIST_REASON: Subquery(entries.values("reason")[:1])}


def jobs_for_api(qs: QuerySet[BenchmarkJob]) -> QuerySet[BenchmarkJob]:
    return qs.select_related("benchmark", "revision__variant__owner", "submitted_by", "result")


# The columns apps.benchmarks.api.serializers.JobSerializer reads, and the revision rule's Python form
# (revision status, variant and owner ids): about 50 columns instead of 160. A variant's card, a revision's
# snapshot and a benchmark's schemas are large, and compiling and reading every column was most of a job
# detail read (issue 16). A field left out here would be read by one query per job: the list's flat query
# count (test_api) catches it.
_SERIALIZED_JOB_FIELDS = (
    "id",
    "benchmark_version",
    "config",
    "status",
    "queue",
    "priority",
    "progress_done",
    "progress_total",
    "attempts",
    "max_attempts",
    "worker_host",
    "verifies",
    "is_spot_check",
    "counts_against_quota",
    "cancel_requested",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "failure_reason",
    "failure_message",
    "log_tail",
    "benchmark__slug",
    "revision__number",
    "revision__status",
    "revision__variant__name",
    "revision__variant__owner__username",
    "submitted_by__username",
    "result",
)


def jobs_for_serializer(qs: QuerySet[BenchmarkJob]) -> QuerySet[BenchmarkJob]:
    """Jobs with only what the API's JobSerializer reads (web pages use :func:`jobs_for_api`)."""
    return jobs_for_api(qs).only(*_SERIALIZED_JOB_FIELDS)


_JOB_FOR_SERIALIZER: CompiledQuery[BenchmarkJob] = CompiledQuery(
    lambda pk: jobs_for_serializer(BenchmarkJob.objects.filter(pk=pk)), int
)


def recent_mean_duration_s(queue: str) -> float | None:
    """Mean run time of the last 50 successful jobs in a queue, for queue ETAs."""
    rows = list(
        BenchmarkJob.objects.filter(
            queue=queue, status=JobStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:50]
    )
    if not rows:
        return None
    return sum((end - start).total_seconds() for start, end in rows if start and end) / len(rows)


# The fair-share order of apps.benchmarks.dispatch, in SQL: messages already sent first (in the order they
# were sent), then waiting jobs past their backoff, then those still in backoff; within each, priority,
# then the share key (the namespace's jobs in flight + the job's rank among the namespace's waiting jobs;
# a namespace is the `charged_to` of a job, apps.benchmarks.services.quota), then the namespace served longest
# ago (the newest dispatch among its jobs in flight; none first), then age. A job charged to no one
# (its namespace was deleted) counts as namespace 0. Window functions work the same on PostgreSQL and SQLite.
# Each row also carries what the queue's ETA needs: the jobs running in it now and the mean run time of its
# last 50 successes (recent_mean_duration_s), so that positions and ETAs cost one query.
_POSITIONS_SQL = """
WITH queued AS (
    SELECT id, queue, priority, COALESCE(charged_to_id, 0) AS namespace_id, dispatched_at,
           CASE WHEN dispatched_at IS NULL THEN 1 ELSE 0 END AS waiting,
           CASE WHEN not_before IS NOT NULL AND not_before > %s THEN 1 ELSE 0 END AS backoff
    FROM {table}
    WHERE status = 'queued' AND queue IN ({queues})
),
ranked_waiting AS (
    SELECT q.*,
           ROW_NUMBER() OVER (PARTITION BY queue, priority, namespace_id, waiting, backoff ORDER BY id) - 1
               AS user_rank
    FROM queued q
),
in_flight AS (
    SELECT queue, COALESCE(charged_to_id, 0) AS namespace_id, COUNT(*) AS n, MAX(dispatched_at) AS last_served
    FROM {table}
    WHERE queue IN ({queues})
      AND (status = 'running' OR (status = 'queued' AND dispatched_at IS NOT NULL))
    GROUP BY queue, COALESCE(charged_to_id, 0)
),
ordered AS (
    SELECT r.id, r.queue,
           ROW_NUMBER() OVER (
               PARTITION BY r.queue
               ORDER BY r.waiting, r.backoff, r.dispatched_at, r.priority DESC,
                        r.user_rank + COALESCE(f.n, 0),
                        CASE WHEN f.last_served IS NULL THEN 0 ELSE 1 END, f.last_served, r.id
           ) AS position
    FROM ranked_waiting r
    LEFT JOIN in_flight f ON f.queue = r.queue AND f.namespace_id = r.namespace_id
),
stats AS ({stats})
SELECT o.id, o.position, s.running, s.mean_s FROM ordered o JOIN stats s ON s.queue = o.queue
WHERE o.id IN ({ids})
"""

# One row per queue: its running jobs and the mean duration of its last 50 successes (NULL without any).
_QUEUE_STATS_SQL = """
SELECT %s AS queue,
       (SELECT COUNT(*) FROM {table} WHERE queue = %s AND status = 'running') AS running,
       (SELECT AVG(d) FROM (
            SELECT {duration} AS d FROM {table}
            WHERE queue = %s AND status = 'succeeded' AND started_at IS NOT NULL AND finished_at IS NOT NULL
            ORDER BY finished_at DESC LIMIT 50
       ) recent) AS mean_s
"""


def _duration_sql() -> str:
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM (finished_at - started_at))"
    return "(julianday(finished_at) - julianday(started_at)) * 86400.0"


def queue_positions(jobs: Iterable[BenchmarkJob]) -> None:
    """Set `queue_position` and `queue_eta_s` on each queued job of a page, in the dispatcher's fair-share
    order. One query per page, whatever its size (none when no job of it is queued)."""
    jobs = list(jobs)
    queued = [j for j in jobs if j.status == JobStatus.QUEUED]
    for job in jobs:
        job.queue_position = None  # type: ignore[attr-defined]
        job.queue_eta_s = None  # type: ignore[attr-defined]
    if not queued:
        return
    queues = sorted({j.queue for j in queued})
    table = connection.ops.quote_name(BenchmarkJob._meta.db_table)
    stats = _QUEUE_STATS_SQL.format(table=table, duration=_duration_sql())
    sql = _POSITIONS_SQL.format(
        table=table,
        queues=", ".join(["%s"] * len(queues)),
        stats=" UNION ALL ".join([stats] * len(queues)),
        ids=", ".join(["%s"] * len(queued)),
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params: list[Any] = [now, *queues, *queues, *[q for q in queues for _ in range(3)], *[j.pk for j in queued]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = {pk: (position, running, mean) for pk, position, running, mean in cursor.fetchall()}
    for job in queued:
        position, running, mean = rows.get(job.pk, (None, 0, None))
        job.queue_position = position  # type: ignore[attr-defined]
        if position is None or mean is None:
            continue
        # Jobs run `parallel` at a time (the slots busy now); this one starts after the rounds ahead of it
        # and then takes one mean run time.
        parallel = max(1, int(running or 0))
        job.queue_eta_s = round(  # type: ignore[attr-defined]
            float(mean) * (math.ceil((position - 1) / parallel) + 1), 1
        )


def job_with_results(job_id: int) -> BenchmarkJob:
    """One job as the API represents it."""
    return jobs_for_serializer(BenchmarkJob.objects.filter(pk=job_id)).get()


def quota_limits(namespace: Actor) -> tuple[int, int]:
    """(jobs queued or running at once, compute seconds per rolling day) allowed to a namespace: an
    organization's account gets the organization's limits (set by maintainers, else MC_ORG_*), a user their
    own limits where set, else the platform's defaults."""
    if namespace.is_organization:
        org = Organization.objects.filter(account_id=namespace.pk).first()
        if org is not None:
            return org_quota_limits(org)
    max_active = (
        namespace.max_active_jobs if namespace.max_active_jobs is not None else settings.MC_DEFAULT_MAX_ACTIVE_JOBS
    )
    daily = (
        namespace.daily_compute_seconds
        if namespace.daily_compute_seconds is not None
        else settings.MC_DEFAULT_DAILY_COMPUTE_SECONDS
    )
    return int(max_active), int(daily)


# The totals of `quota_usage`: the jobs of `counting_against_quota(namespace)` queued or running, and their compute
# seconds since a moment. The count is a range read of job_charged_active_idx. The seconds come from the hourly rows
# of ComputeUsage (kept by the jobs table's triggers) for the whole hours after the moment's hour, plus the jobs
# themselves (job_charged_window_idx) from the moment to the end of its hour: at most an hour of jobs and a few rows
# per hour, whatever the number of jobs the namespace finished that day (summing those jobs took 4 ms at 10,000).
# A submission reads its dedupe match in the same statement (the rule of `services.submission._dedupe_matches`,
# which the service's race path still runs).
_QUOTA_USAGE_COLUMNS = (
    "status",
    "finished_at",
    "compute_seconds",
    "charged_to",
    "counts_against_quota",
    "id",
    "revision",
    "benchmark",
    "benchmark_version",
    "config_hash",
    "verifies",
)
_USAGE_COLUMNS = ("namespace_id", "hour", "seconds")
_QUOTA_USAGE_SQL = """
SELECT (SELECT COUNT(*) FROM {table}
        WHERE {charged_to} = %s AND {status} IN ({statuses}) AND {counts_against_quota}),
       (SELECT COALESCE(SUM({seconds}), 0) FROM {usage} WHERE {namespace_id} = %s AND {hour} > %s)
       + (SELECT COALESCE(SUM({compute_seconds}), 0) FROM {table}
          WHERE {charged_to} = %s AND {finished_at} >= %s AND {finished_at} < %s AND {counts_against_quota})
"""
_DEDUPE_MATCH_SQL = """,
       (SELECT {id} FROM {table}
        WHERE {revision} = %s AND {benchmark} = %s AND {benchmark_version} = %s AND {config_hash} = %s
          AND {verifies} IS NULL AND NOT ({status} IN ({excluded})) LIMIT 1)
"""


@functools.cache
def _quota_usage_sql(vendor: str, dedupe: bool) -> str:
    """The statement of `quota_usage_row`, built once per database vendor (its quoting) and shape."""
    quote = connection.ops.quote_name
    columns = {
        f.name: quote(str(f.column)) for f in BenchmarkJob._meta.concrete_fields if f.name in _QUOTA_USAGE_COLUMNS
    }
    columns.update(
        {f.name: quote(str(f.column)) for f in ComputeUsage._meta.concrete_fields if f.name in _USAGE_COLUMNS}
    )
    table = quote(BenchmarkJob._meta.db_table)
    sql = _QUOTA_USAGE_SQL.format(
        table=table,
        usage=quote(ComputeUsage._meta.db_table),
        statuses=", ".join(["%s"] * len(ACTIVE_JOB_STATUSES)),
        **columns,
    )
    if dedupe:
        excluded = ", ".join(["%s"] * len(DEDUPE_EXCLUDED_STATUSES))
        sql += _DEDUPE_MATCH_SQL.format(table=table, excluded=excluded, **columns)
    return sql


def quota_usage_row(
    namespace_id: int, since: datetime, dedupe: tuple[int, int, str, str] | None = None
) -> tuple[int, float, int | None]:
    """(jobs queued or running, compute seconds finished since `since`, unrounded) charged to a namespace, and with
    `dedupe` = (revision id, benchmark id, benchmark version, config hash) the id of the job a submission of that
    key would return instead of queuing one (not a verification, and not failed, cancelled or timed out), else
    None: one statement of indexed reads. Written once as SQL: the ORM took longer to build and compile these
    aggregates than the database took to run them (issue 16's profiles of `/api/v1/me/` and of a submission)."""
    hour = ComputeUsage.hour_of(since)  # the hour `since` falls in; ComputeUsage has the ones after it
    params: list[Any] = [
        namespace_id,
        *ACTIVE_JOB_STATUSES,
        namespace_id,
        hour,
        namespace_id,
        connection.ops.adapt_datetimefield_value(since),
        connection.ops.adapt_datetimefield_value(ComputeUsage.hour_start(hour + 1)),
    ]
    if dedupe is not None:
        params += [*dedupe, *(str(status) for status in DEDUPE_EXCLUDED_STATUSES)]
    sql = _quota_usage_sql(connection.vendor, dedupe is not None)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0] or 0), float(row[1] or 0.0), (int(row[2]) if dedupe is not None and row[2] is not None else None)


def quota_usage(namespace: Actor | int) -> tuple[int, float]:
    """(jobs queued or running, compute seconds used in the last 24 hours) charged to a namespace (a user or
    an organization's account, or its id), in one statement of two indexed reads (``/api/v1/me/`` and
    ``/api/v1/orgs/{org}/`` show them on every call)."""
    namespace_id = namespace if isinstance(namespace, int) else namespace.pk
    active, used, _ = quota_usage_row(namespace_id, timezone.now() - timedelta(days=1))
    return active, round(used, 3)


def quota_status(*, user: Actor) -> dict[str, Any]:
    """A user's own quota (``/api/v1/me/``): the jobs charged to their personal namespace."""
    max_active, daily = quota_limits(user)
    active, used = quota_usage(user)
    return {
        "max_active_jobs": max_active,
        "daily_compute_seconds": daily,
        "active_jobs": active,
        "compute_seconds_today": used,
    }


def org_quota_usage(account_id: int) -> dict[str, Any]:
    """An organization's use of its quota, for ``GET /api/v1/orgs/{org}/`` (apps.orgs.hooks)."""
    active, used = quota_usage(account_id)
    return {"queued_or_running": active, "compute_seconds_used": used}


def job_bundle(job: BenchmarkJob) -> dict[str, Any]:
    """The reproducibility bundle bound to a job's score: everything needed to run it again and compare."""
    from apps.registry.models import Artifact

    result: JobResult = job.result
    spec = job.spec
    benchmark = job.benchmark
    variant = job.revision.variant
    source = spec if spec is not None else benchmark
    artifacts = [
        {"path": a.path, "format": a.format, "sha256": a.sha256, "size_bytes": a.size_bytes, "uri": a.uri}
        for a in Artifact.objects.filter(revision_id=job.revision_id).order_by("path")
    ]
    environment = dict(result.environment or {})
    verifications = [
        {
            "verifier_job": v.verifier_job_id,
            "agreed": v.agreed,
            "metric": v.metric,
            "delta": v.delta,
            "tolerance": v.tolerance,
            "worker": v.verifier_worker,
            "created_at": v.created_at.isoformat(),
        }
        for v in result.verifications.order_by("id")
    ]
    return {
        "bundle_version": 1,
        "job": {
            "id": job.pk,
            "status": job.status,
            "attempt": result.attempt,
            "worker": job.worker_host,
            "submitted_by": job.submitted_by.username,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "verifies": job.verifies_id,
        },
        "variant": variant.full_name,
        "revision": job.revision.number,
        "precision": revision_declared(job.revision, "precision") or None,
        "dtype": revision_declared(job.revision, "precision") or None,
        "benchmark": {
            "slug": benchmark.slug,
            "version": job.benchmark_version,
            "task": benchmark.task,
            "metrics": source.metrics,
            "config_schema": source.config_schema,
            "default_config": source.default_config,
            "tolerance": benchmark.tolerance,
        },
        "dataset": {
            "uri": source.dataset_uri,
            "sha256": source.dataset_sha256 or None,
            "license": source.dataset_license,
            "size_bytes": source.dataset_size_bytes,
        },
        "runner": {"key": source.runner, "name": result.runner, "version": result.runner_version},
        "config": job.config,
        "seed": result.seed,
        "artifacts": artifacts,
        "result": {
            "metrics": result.metrics,
            "stderr": result.stderr,
            "samples": result.samples,
            "duration_s": result.duration_s,
            "verified": result.verified,
            "verification_status": result.verification_status,
        },
        "verifications": verifications,
        "environment": environment,
    }


def verified_results(variant: Variant, user: Viewer) -> list[dict[str, Any]]:
    """Verified benchmark results of the variant on revisions the user may see, newest first, one per benchmark:
    the model-index of the registry's card export (registered in ``apps.registry.hooks`` by ``subscribers``)."""
    rows = JobResult.objects.filter(verified=True, job__status="succeeded", job__revision__variant=variant)
    visible = revision_visibility_q(user, "job__revision__")
    if visible is not None:
        rows = rows.filter(visible)
    rows = rows.select_related("job__benchmark", "job__revision").order_by(
        "-job__revision__number", "-job__finished_at", "-id"
    )
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for row in rows:
        bench = row.job.benchmark
        key = (bench.slug, row.job.benchmark_version)
        if key in seen:
            continue
        seen.add(key)
        out.append(
            {
                "benchmark": bench.slug,
                "benchmark_name": bench.name,
                "benchmark_version": key[1],
                "task": bench.task,
                "metrics": dict(row.metrics),
                "job_id": row.job_id,
                "revision": row.job.revision.number,
                "primary_metric": bench.primary_metric,
            }
        )
    return out
