"""Queuing jobs: config validation, the pre-queue submission checks, dedupe, single and batch submission.

The row is the source of truth; only its id is sent to the broker by the fair-share dispatcher
(:mod:`apps.benchmarks.dispatch`), which a worker runs after the commit (coalesced across submissions): the
submitting request does not wait for it."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jsonschema
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record, audit_record_many
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.registry.models import Revision, Variant
from apps.registry.querysets import revision_is_visible_to
from apps.registry.selectors import revision_declared
from workers.runners.formats import SAFE_FORMATS, is_safe

from ..choices import DEDUPE_EXCLUDED_STATUSES, SubmissionCheck
from ..dispatch import jobs_dispatch_requested_on_commit
from ..models import Benchmark, BenchmarkJob, BenchmarkVersion, BlockedVariant
from ..runner_registry import runner_config_schema, runner_loadable_formats
from ..selectors import BLOCKLIST_REASON
from .definitions import benchmark_current_spec
from .quota import (
    job_namespace,
    job_namespaces,
    lock_namespace,
    namespace_usage,
    quota_enforce,
    quota_enforce_batch,
)

if TYPE_CHECKING:
    from apps.accounts.types import Actor


def canonical_config(
    benchmark: Benchmark | BenchmarkVersion, config: dict[str, Any] | None
) -> tuple[dict[str, Any], str]:
    merged = {**(benchmark.default_config or {}), **(config or {})}
    text = json.dumps(merged, sort_keys=True, separators=(",", ":"))
    return merged, hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _schema_errors(schema: dict[str, Any], config: dict[str, Any], prefix: str = "config") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    validator = _validator(json.dumps(schema, sort_keys=True))  # building a validator costs more than using it
    for problem in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        key = ".".join([prefix, *(str(p) for p in problem.absolute_path)])
        errors.setdefault(key, []).append(problem.message)
    return errors


def config_validate(benchmark: Benchmark, config: Any) -> dict[str, Any]:
    """The benchmark's defaults merged with `config`, checked against the benchmark's schema and the runner's."""
    if not isinstance(config, dict):
        raise ValidationFailed("Invalid config.", errors={"config": ["Must be a JSON object."]})
    merged, _ = canonical_config(benchmark, config)
    errors = _schema_errors(benchmark.config_schema or {}, merged)
    if not errors:
        # The runner would refuse the job later with invalid_config; say so before it takes a queue slot.
        runner_schema = runner_config_schema(benchmark.runner)
        if runner_schema:
            errors = _schema_errors(runner_schema, merged)
    if errors:
        raise ValidationFailed("The config does not match the benchmark's schema.", errors=errors)
    return merged


def submission_problems(*, revision: Revision, benchmark: Benchmark) -> dict[str, list[str]]:
    """The pre-queue checks, as the Open LLM Leaderboard makes them. Returns {field: [reason]}, empty if the
    revision may be queued. Each message starts with its check code."""
    problems: dict[str, list[str]] = {}
    variant = revision.variant

    def refuse(field: str, code: SubmissionCheck, message: str) -> None:
        problems.setdefault(field, []).append(f"{code.value}: {message}")

    if revision.status in ("rejected", "withdrawn"):
        refuse("revision", SubmissionCheck.REVISION_CLOSED, f"Revision {revision.number} is {revision.status}.")
    formats = runner_loadable_formats(benchmark.runner)
    if formats is None:
        refuse(
            "benchmark",
            SubmissionCheck.NO_LOADABLE_ARTIFACT,
            f"The runner '{benchmark.runner}' is not installed on this platform.",
        )
    elif formats:
        artifacts = list(revision.artifacts.values_list("path", "format"))
        loadable = [path for path, fmt in artifacts if fmt.lower() in formats and is_safe(path, fmt)]
        if not loadable:
            found = ", ".join(f"{path} ({fmt})" for path, fmt in artifacts) or "no artifacts"
            refuse(
                "artifacts",
                SubmissionCheck.NO_LOADABLE_ARTIFACT,
                f"Revision {revision.number} has no artifact the '{benchmark.runner}' runner can load safely "
                f"(it needs one of: {', '.join(sorted(formats & SAFE_FORMATS))}; found: {found}). "
                f"Pickle-based files are never loaded.",
            )
    # What this revision declares: a submitted or published revision's snapshot, not a newer draft's edits.
    card = (revision_declared(revision, "card") or "").strip()
    if len(card) <= settings.MC_MIN_CARD_CHARS:
        refuse(
            "card",
            SubmissionCheck.CARD_TOO_SHORT,
            f"The model card has {len(card)} characters; it needs more than {settings.MC_MIN_CARD_CHARS} "
            f"(intended use, limitations, training data, evaluation).",
        )
    if not (revision_declared(revision, "license") or "").strip():
        refuse("license", SubmissionCheck.LICENSE_MISSING, "The variant declares no licence.")
    if hasattr(variant, BLOCKLIST_REASON):
        block = getattr(variant, BLOCKLIST_REASON)  # read with the variant (selectors.blocklist_reason)
    else:
        block = BlockedVariant.objects.filter(variant=variant).values_list("reason", flat=True).first()
    if block is not None:
        refuse(
            "variant", SubmissionCheck.VARIANT_BLOCKED, f"{variant.full_name} is on the maintainers' blocklist: {block}"
        )
    return problems


def _ensure_visible(actor: Actor, revision: Revision) -> None:
    """Queuing a job needs sight of the revision: a draft of a published variant is its insiders' alone."""
    if not revision_is_visible_to(actor, revision):
        raise NotFound(f"{revision.variant.full_name} has no revision {revision.number}.")


def ensure_runner_open(actor: Actor, benchmark: Benchmark) -> None:
    """Some runners are maintainers' tools (MC_MAINTAINER_ONLY_RUNNERS: noop, for pipeline drills)."""
    if benchmark.runner in settings.MC_MAINTAINER_ONLY_RUNNERS and not is_maintainer(actor):
        raise PermissionDenied(
            f"Jobs on the benchmark '{benchmark.slug}' (runner {benchmark.runner}) are for maintainers only."
        )


def _dedupe_matches(revision: Revision, benchmark: Benchmark, config_hash: str) -> QuerySet[BenchmarkJob]:
    # No ORDER BY: the dedupe constraint allows one match at most, and "ORDER BY id LIMIT 1" tempts
    # PostgreSQL into walking the primary key backwards through every job when there is no match.
    return (
        BenchmarkJob.objects.filter(
            revision=revision,
            benchmark=benchmark,
            benchmark_version=benchmark.version,
            config_hash=config_hash,
            verifies__isnull=True,
        )
        .exclude(status__in=DEDUPE_EXCLUDED_STATUSES)
        .order_by()
    )


def _dedupe_match(revision: Revision, benchmark: Benchmark, config_hash: str) -> BenchmarkJob | None:
    matches = list(_dedupe_matches(revision, benchmark, config_hash)[:1])
    return matches[0] if matches else None


def job_submit(
    *, actor: Actor, revision: Revision, benchmark: Benchmark, config: dict[str, Any] | None = None, priority: int = 0
) -> tuple[BenchmarkJob, bool]:
    """Queue a benchmark job, or return the job with the same revision, benchmark version and canonical config
    (unless it failed or was cancelled). Returns (job, created).

    Refusals: 400 for a bad config or a failed submission check (each with its reason), 429 over quota.
    The row is the source of truth; only its id is sent to the broker, after commit, by the fair-share
    dispatcher."""
    if priority and not is_maintainer(actor):
        raise PermissionDenied("Only maintainers set a job's priority.")
    _ensure_visible(actor, revision)
    if not benchmark.is_active:
        raise ValidationFailed("Benchmark is retired.", errors={"benchmark": ["This benchmark is not active."]})
    ensure_runner_open(actor, benchmark)
    merged = config_validate(benchmark, config or {})
    _, config_hash = canonical_config(benchmark, merged)
    problems = submission_problems(revision=revision, benchmark=benchmark)
    if problems:
        raise ValidationFailed(
            "The submission checks refused this revision.",
            errors=problems,
            checks=sorted({m.split(":", 1)[0] for ms in problems.values() for m in ms}),
        )
    now = timezone.now()
    namespace = job_namespace(actor, revision.variant)
    try:
        with transaction.atomic():
            lock_namespace(namespace)
            # The dedupe match and the quota's usage in one statement, read after the lock was granted.
            usage = namespace_usage(namespace, now, dedupe=(revision.pk, benchmark.pk, benchmark.version, config_hash))
            if usage["existing"] is not None:
                return BenchmarkJob.objects.get(pk=usage["existing"]), False
            quota_enforce(namespace, now, usage=usage)
            job = BenchmarkJob.objects.create(
                revision=revision,
                benchmark=benchmark,
                benchmark_version=benchmark.version,
                spec=benchmark_current_spec(benchmark),
                config=merged,
                config_hash=config_hash,
                queue=benchmark.queue,
                priority=priority,
                submitted_by=actor,
                charged_to=namespace,
                max_attempts=benchmark.max_attempts,
                queued_at=now,
            )
            audit_record(
                actor=actor,
                verb="job.submit",
                target=job,
                after={
                    "status": job.status,
                    "benchmark": benchmark.slug,
                    "version": benchmark.version,
                    "revision": revision.pk,
                    "config": merged,
                    "priority": priority,
                    "charged_to": namespace.username,
                },
            )
            jobs_dispatch_requested_on_commit(job.queue)
    except IntegrityError:
        # Another submitter made the same key a moment ago: the dedupe constraint caught the race, this
        # transaction (or savepoint) was rolled back, and their job is the answer.
        existing = _dedupe_match(revision, benchmark, config_hash)
        if existing is None:
            raise
        return existing, False
    return job, True


BATCH_MAX = 500


def _read_block_reasons(variants: list[Variant]) -> None:
    """Give the variants of a batch that were read without `selectors.blocklist_reason` their reason in one
    query (the newest blocklist entry's, None when not blocked), instead of one query each in
    `submission_problems`."""
    missing = {id(v): v for v in variants if not hasattr(v, BLOCKLIST_REASON)}
    if len(missing) < 2:
        return
    reasons: dict[int, str] = {}
    for variant_id, reason in (
        BlockedVariant.objects.filter(variant_id__in={v.pk for v in missing.values()})
        .order_by("-created_at", "-id")
        .values_list("variant_id", "reason")
    ):
        reasons.setdefault(variant_id, reason)
    for variant in missing.values():
        setattr(variant, BLOCKLIST_REASON, reasons.get(variant.pk))


def jobs_submit_batch(
    *, actor: Actor, items: list[tuple[Revision, Benchmark, dict[str, Any] | None]], priority: int = 0
) -> list[tuple[BenchmarkJob, bool]]:
    """Submit many jobs at once (a sweep of configs, many variants on one benchmark): the rules of job_submit
    applied to every item, all or nothing, in one transaction. Returns (job, created) per item, in order;
    an item matching an existing job (or an earlier item of the batch) gets that job.

    Refusals name the item: errors like ``{"jobs.3.config.limit": [...]}``; the quota must hold for the whole
    batch (429 says how many would fit)."""
    if priority and not is_maintainer(actor):
        raise PermissionDenied("Only maintainers set a job's priority.")
    if not 1 <= len(items) <= BATCH_MAX:
        raise ValidationFailed("Bad batch.", errors={"jobs": [f"Give between 1 and {BATCH_MAX} jobs."]})
    for revision in {id(r): r for r, _, _ in items}.values():
        _ensure_visible(actor, revision)
    for benchmark in {b.pk: b for _, b, _ in items}.values():
        ensure_runner_open(actor, benchmark)
    _read_block_reasons([revision.variant for revision, _, _ in items])
    errors: dict[str, list[str]] = {}
    checked: dict[tuple[int, int], dict[str, list[str]]] = {}
    prepared: list[tuple[Revision, Benchmark, dict[str, Any], str]] = []
    for index, (revision, benchmark, config) in enumerate(items):
        try:
            if not benchmark.is_active:
                raise ValidationFailed("Benchmark is retired.", errors={"benchmark": ["This benchmark is not active."]})
            merged = config_validate(benchmark, config or {})
        except ValidationFailed as exc:
            for field, messages in (exc.errors or {}).items():
                errors.setdefault(f"jobs.{index}.{field}", []).extend(messages)
            continue
        pair = (revision.pk, benchmark.pk)
        if pair not in checked:
            checked[pair] = submission_problems(revision=revision, benchmark=benchmark)
        for field, messages in checked[pair].items():
            errors.setdefault(f"jobs.{index}.{field}", []).extend(messages)
        prepared.append((revision, benchmark, merged, canonical_config(benchmark, merged)[1]))
    if errors:
        raise ValidationFailed("Some jobs of the batch were refused; none was queued.", errors=errors)
    now = timezone.now()
    try:
        existing, new = _submit_batch_locked(actor, prepared, priority, now)
    except IntegrityError:
        raise Conflict(
            "Another submission of one of these jobs landed at the same moment; send the batch again "
            "(the jobs already queued come back instead of being made twice)."
        ) from None
    out: list[tuple[BenchmarkJob, bool]] = []
    handed_out: set[tuple[int, int, str, str]] = set()
    for revision, benchmark, _, config_hash in prepared:
        key = (revision.pk, benchmark.pk, benchmark.version, config_hash)
        if key in existing:
            out.append((existing[key], False))
        else:
            out.append((new[key], key not in handed_out))
            handed_out.add(key)
    return out


@transaction.atomic
def _submit_batch_locked(
    actor: Actor, prepared: list[tuple[Revision, Benchmark, dict[str, Any], str]], priority: int, now: datetime
) -> tuple[dict[Any, BenchmarkJob], dict[Any, BenchmarkJob]]:
    # Each item is charged to its own namespace (the actor's, or an organization's the actor works in): the
    # namespaces' rows are locked in one order (by id), so two batches never wait on each other in a cycle.
    namespaces = job_namespaces(actor, {r.variant_id: r.variant for r, _, _, _ in prepared}.values())
    for namespace in sorted({n.pk: n for n in namespaces.values()}.values(), key=lambda n: n.pk):
        lock_namespace(namespace)
    existing = {
        (j.revision_id, j.benchmark_id, j.benchmark_version, j.config_hash): j
        for j in BenchmarkJob.objects.filter(
            revision_id__in={r.pk for r, _, _, _ in prepared},
            benchmark_id__in={b.pk for _, b, _, _ in prepared},
            config_hash__in={h for _, _, _, h in prepared},
            verifies__isnull=True,
        )
        .exclude(status__in=DEDUPE_EXCLUDED_STATUSES)
        .order_by()
    }
    new: dict[tuple[int, int, str, str], BenchmarkJob] = {}
    for revision, benchmark, merged, config_hash in prepared:
        key = (revision.pk, benchmark.pk, benchmark.version, config_hash)
        if key not in existing and key not in new:
            new[key] = BenchmarkJob(
                revision=revision,
                benchmark=benchmark,
                benchmark_version=benchmark.version,
                spec=benchmark_current_spec(benchmark),
                config=merged,
                config_hash=config_hash,
                queue=benchmark.queue,
                priority=priority,
                submitted_by=actor,
                charged_to=namespaces[revision.variant_id],
                max_attempts=benchmark.max_attempts,
                queued_at=now,
            )
    if new:
        adding: dict[int, int] = {}
        for job in new.values():
            charged = namespaces[job.revision.variant_id].pk
            adding[charged] = adding.get(charged, 0) + 1
        for namespace in sorted({n.pk: n for n in namespaces.values()}.values(), key=lambda n: n.pk):
            if adding.get(namespace.pk):
                quota_enforce_batch(namespace, adding[namespace.pk], now)
        created = BenchmarkJob.objects.bulk_create(list(new.values()))
        audit_record_many(
            actor=actor,
            verb="job.submit",
            events=[
                (
                    job,
                    None,
                    {
                        "status": job.status,
                        "benchmark": job.benchmark.slug,
                        "version": job.benchmark_version,
                        "revision": job.revision_id,
                        "config": job.config,
                        "priority": priority,
                        "batch": len(created),
                        "charged_to": namespaces[job.revision.variant_id].username,
                    },
                )
                for job in created
            ],
        )
        for queue in {job.queue for job in created}:
            jobs_dispatch_requested_on_commit(queue)
    return existing, new
