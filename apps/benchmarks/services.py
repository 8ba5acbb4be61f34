"""Benchmark engine writes: benchmarks and their versions, the blocklist, and the job lifecycle
(submit, claim, progress, complete, fail, cancel, retry, verify). Every state change is audited.

Fair-share dispatch and recovery live in :mod:`apps.benchmarks.dispatch`; re-runs that verify results in
:mod:`apps.benchmarks.verification`."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record, audit_record_many
from apps.core.bulk import bulk_update_rows
from apps.core.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ValidationFailed,
)
from apps.registry.models import Revision, Variant
from apps.registry.querysets import revision_is_visible_to
from apps.registry.selectors import revision_declared
from workers.runners.base import SHA256_RE

from . import hooks
from .choices import (
    ACTIVE_JOB_STATUSES,
    DEDUPE_EXCLUDED_STATUSES,
    INFRASTRUCTURE_FAILURES,
    JOB_TRANSITIONS,
    RETRYABLE_FAILURES,
    VERSIONED_BENCHMARK_FIELDS,
    FailureReason,
    JobStatus,
    ResourceClass,
    SubmissionCheck,
)
from .dispatch import jobs_dispatch_on_commit
from .models import (
    Benchmark,
    BenchmarkJob,
    BenchmarkVersion,
    BlockedVariant,
    JobResult,
    SubmitterProfile,
)
from .runner_registry import registered_runners, runner_class, runner_config_schema, runner_loadable_formats

logger = logging.getLogger(__name__)

BENCHMARK_FIELDS = (
    "name",
    "version",
    "description",
    "task",
    "runner",
    "dataset_uri",
    "dataset_sha256",
    "dataset_license",
    "dataset_size_bytes",
    "metrics",
    "config_schema",
    "default_config",
    "resource_class",
    "timeout_s",
    "max_attempts",
    "tolerance",
    "is_active",
)
SAFE_ARTIFACT_FORMATS = frozenset({"safetensors", "onnx", "gguf"})
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


# ---------------------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------------------


def _require_maintainer(actor: Any, what: str) -> None:
    if not is_maintainer(actor):
        raise PermissionDenied(f"Only maintainers {what}.")


def _validate_benchmark(data: dict[str, Any]) -> dict[str, list[str]]:
    """Field rules shared by create and update; returns {field: [messages]}."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    runner = data.get("runner", "")
    if not runner:
        err("runner", "A runner key is required.")
    elif runner_class(runner) is None:
        known = ", ".join(sorted(registered_runners())) or "none"
        err("runner", f"'{runner}' is not a registered runner (registered: {known}).")

    schema = data.get("config_schema")
    schema_ok = False
    if not isinstance(schema, dict):
        err("config_schema", "Must be a JSON Schema object.")
    else:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
            schema_ok = True
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            err("config_schema", f"Not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}")
        if schema_ok and schema.get("type", "object") != "object":
            err("config_schema", "The job config is a JSON object: the schema's type must be 'object'.")
            schema_ok = False

    default_config = data.get("default_config")
    if not isinstance(default_config, dict):
        err("default_config", "Must be a JSON object.")
    elif schema_ok:
        for problem in jsonschema.Draft202012Validator(schema).iter_errors(default_config):
            where = "/".join(str(p) for p in problem.absolute_path) or "(config)"
            err("default_config", f"Does not match config_schema at {where}: {problem.message}")

    metrics = data.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        err("metrics", "Give at least one metric: [{name, higher_is_better, primary}].")
    else:
        names = [m.get("name") for m in metrics if isinstance(m, dict)]
        if len(names) != len(metrics) or not all(isinstance(n, str) and n for n in names):
            err("metrics", "Every metric needs a name.")
        elif len(set(names)) != len(names):
            err("metrics", "Metric names must be unique.")
        primaries = [m for m in metrics if isinstance(m, dict) and m.get("primary")]
        if len(primaries) > 1:
            err("metrics", "At most one metric is primary.")

    sha = data.get("dataset_sha256") or ""
    if sha and not SHA256_RE.match(sha):
        err("dataset_sha256", "Must be 64 lowercase hex characters.")
    if data.get("resource_class") not in ResourceClass.values:
        err("resource_class", f"One of: {', '.join(ResourceClass.values)}.")
    if not 1 <= int(data.get("timeout_s") or 0) <= 7 * 24 * 3600:
        err("timeout_s", "Between 1 and 604800 seconds.")
    if not 1 <= int(data.get("max_attempts") or 0) <= 10:
        err("max_attempts", "Between 1 and 10.")
    tolerance = data.get("tolerance")
    if not isinstance(tolerance, (int, float)) or tolerance < 0 or not math.isfinite(tolerance):
        err("tolerance", "A finite number >= 0.")
    if not data.get("version"):
        err("version", "A version is required.")
    return errors


def benchmark_definition_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """The field rules of a benchmark definition, for forms that want to show them before saving."""
    return _validate_benchmark(data)


def _normalize_metrics(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {
            "name": m["name"],
            "higher_is_better": bool(m.get("higher_is_better", True)),
            "primary": bool(m.get("primary", False)),
        }
        for m in metrics
    ]
    if out and not any(m["primary"] for m in out):
        out[0]["primary"] = True  # the first metric ranks unless one is marked
    return out


def _snapshot(benchmark: Benchmark, actor: Any) -> BenchmarkVersion:
    spec, _ = BenchmarkVersion.objects.update_or_create(
        benchmark=benchmark,
        version=benchmark.version,
        defaults={
            "runner": benchmark.runner,
            "dataset_uri": benchmark.dataset_uri,
            "dataset_sha256": benchmark.dataset_sha256,
            "dataset_license": benchmark.dataset_license,
            "dataset_size_bytes": benchmark.dataset_size_bytes,
            "metrics": benchmark.metrics,
            "config_schema": benchmark.config_schema,
            "default_config": benchmark.default_config,
            "created_by": actor if getattr(actor, "is_authenticated", False) else None,
        },
    )
    return spec


def benchmark_current_spec(benchmark: Benchmark) -> BenchmarkVersion:
    """The frozen spec of the benchmark's current version, made on first use (benchmarks created outside the
    services, e.g. by an older seed, have none yet)."""
    cached: BenchmarkVersion | None = getattr(benchmark, "_mc_spec", None)
    if cached is not None and cached.version == benchmark.version:
        return cached
    spec = BenchmarkVersion.objects.filter(benchmark=benchmark, version=benchmark.version).first()
    if spec is None:
        BenchmarkVersion.objects.bulk_create(
            [
                BenchmarkVersion(
                    benchmark=benchmark,
                    version=benchmark.version,
                    runner=benchmark.runner,
                    dataset_uri=benchmark.dataset_uri,
                    dataset_sha256=benchmark.dataset_sha256,
                    dataset_license=benchmark.dataset_license,
                    dataset_size_bytes=benchmark.dataset_size_bytes,
                    metrics=benchmark.metrics,
                    config_schema=benchmark.config_schema,
                    default_config=benchmark.default_config,
                )
            ],
            ignore_conflicts=True,
        )
        spec = BenchmarkVersion.objects.get(benchmark=benchmark, version=benchmark.version)
    benchmark._mc_spec = spec  # type: ignore[attr-defined]
    return spec


@transaction.atomic
def benchmark_create(
    *,
    actor: Any,
    slug: str,
    name: str,
    runner: str,
    metrics: list[dict[str, Any]],
    config_schema: dict[str, Any] | None = None,
    default_config: dict[str, Any] | None = None,
    version: str = "1",
    description: str = "",
    task: str = "",
    dataset_uri: str = "",
    dataset_sha256: str = "",
    dataset_license: str = "",
    dataset_size_bytes: int | None = None,
    resource_class: str = ResourceClass.CPU,
    timeout_s: int = 600,
    max_attempts: int = 3,
    tolerance: float = 0.01,
    is_active: bool = True,
) -> Benchmark:
    """Define a benchmark (maintainers). Its first version's spec is frozen at once."""
    _require_maintainer(actor, "define benchmarks")
    data = {
        "name": name,
        "version": version,
        "description": description,
        "task": task,
        "runner": runner,
        "dataset_uri": dataset_uri,
        "dataset_sha256": (dataset_sha256 or "").lower(),
        "dataset_license": dataset_license,
        "dataset_size_bytes": dataset_size_bytes,
        "metrics": metrics,
        "config_schema": {"type": "object"} if config_schema is None else config_schema,
        "default_config": default_config or {},
        "resource_class": resource_class,
        "timeout_s": timeout_s,
        "max_attempts": max_attempts,
        "tolerance": tolerance,
        "is_active": is_active,
    }
    errors = _validate_benchmark(data)
    if Benchmark.objects.filter(slug__iexact=slug).exists():
        errors.setdefault("slug", []).append(f"A benchmark '{slug}' already exists.")
    if errors:
        raise ValidationFailed("The benchmark definition is invalid.", errors=errors)
    data["metrics"] = _normalize_metrics(metrics)
    benchmark = Benchmark.objects.create(slug=slug, created_by=actor, **data)
    _snapshot(benchmark, actor)
    audit_record(
        actor=actor,
        verb="benchmark.create",
        target=benchmark,
        after={"slug": slug, "version": version, "runner": runner},
    )
    return benchmark


def _bump(version: str) -> str | None:
    return str(int(version) + 1) if version.isdigit() else None


@transaction.atomic
def benchmark_update(*, benchmark: Benchmark, actor: Any, changes: dict[str, Any]) -> Benchmark:
    """Change a benchmark (maintainers). A change to what a result means (runner, dataset, metrics, config
    schema or defaults) starts a new version: results belong to one version, so old results stay with the old
    one. Numeric versions are bumped automatically; others need an explicit new `version`."""
    _require_maintainer(actor, "change benchmarks")
    benchmark = Benchmark.objects.select_for_update(no_key=True).get(pk=benchmark.pk)
    unknown = set(changes) - set(BENCHMARK_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", errors={f: ["Not a benchmark field."] for f in sorted(unknown)})
    before = {f: getattr(benchmark, f) for f in BENCHMARK_FIELDS}
    data = {**before, **changes}
    if "dataset_sha256" in changes:
        data["dataset_sha256"] = (changes["dataset_sha256"] or "").lower()
    errors = _validate_benchmark(data)
    if errors:
        raise ValidationFailed("The benchmark definition is invalid.", errors=errors)
    data["metrics"] = _normalize_metrics(data["metrics"])
    meaning_changed = [f for f in VERSIONED_BENCHMARK_FIELDS if data[f] != before[f]]
    version_given = "version" in changes and changes["version"] != before["version"]
    if meaning_changed and not version_given:
        bumped = _bump(before["version"])
        if bumped is None:
            raise ValidationFailed(
                "This change needs a new version.",
                errors={
                    "version": [
                        f"Changing {', '.join(meaning_changed)} changes what results mean; give a new "
                        f"version (the current one, '{before['version']}', is not numeric)."
                    ]
                },
            )
        data["version"] = bumped
    new_version = data["version"] != before["version"]
    if new_version and BenchmarkVersion.objects.filter(benchmark=benchmark, version=data["version"]).exists():
        raise ValidationFailed(
            "Version already used.",
            errors={
                "version": [
                    f"Version '{data['version']}' was used before; results of a version never mix with another's."
                ]
            },
        )
    for field in BENCHMARK_FIELDS:
        setattr(benchmark, field, data[field])
    benchmark.save()
    if new_version:
        _snapshot(benchmark, actor)
    after = {f: getattr(benchmark, f) for f in BENCHMARK_FIELDS if getattr(benchmark, f) != before[f]}
    audit_record(
        actor=actor,
        verb="benchmark.version" if new_version else "benchmark.update",
        target=benchmark,
        before={f: before[f] for f in after},
        after=after,
    )
    return benchmark


# ---------------------------------------------------------------------------------------------------------
# Blocklist
# ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def blocklist_add(*, variant: Variant, reason: str, actor: Any) -> BlockedVariant:
    """Put a variant on the maintainers' blocklist: no new job is queued for it."""
    _require_maintainer(actor, "edit the blocklist")
    if not reason.strip():
        raise ValidationFailed("A reason is required.", errors={"reason": ["Say why the variant is blocked."]})
    if BlockedVariant.objects.filter(variant=variant).exists():
        raise Conflict(f"{variant.full_name} is already blocked.")
    entry = BlockedVariant.objects.create(variant=variant, reason=reason.strip(), created_by=actor)
    audit_record(actor=actor, verb="benchmark.blocklist.add", target=variant, after={"reason": entry.reason})
    return entry


@transaction.atomic
def blocklist_remove(*, entry: BlockedVariant, actor: Any) -> None:
    """Take a variant off the blocklist."""
    _require_maintainer(actor, "edit the blocklist")
    variant = entry.variant
    audit_record(actor=actor, verb="benchmark.blocklist.remove", target=variant, before={"reason": entry.reason})
    entry.delete()


# ---------------------------------------------------------------------------------------------------------
# Submission
# ---------------------------------------------------------------------------------------------------------


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
        loadable = [
            path
            for path, fmt in artifacts
            if fmt.lower() in formats
            and fmt.lower() in SAFE_ARTIFACT_FORMATS
            and not path.lower().endswith(PICKLE_SUFFIXES)
        ]
        if not loadable:
            found = ", ".join(f"{path} ({fmt})" for path, fmt in artifacts) or "no artifacts"
            refuse(
                "artifacts",
                SubmissionCheck.NO_LOADABLE_ARTIFACT,
                f"Revision {revision.number} has no artifact the '{benchmark.runner}' runner can load safely "
                f"(it needs one of: {', '.join(sorted(formats & SAFE_ARTIFACT_FORMATS))}; found: {found}). "
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
    block = BlockedVariant.objects.filter(variant=variant).values_list("reason", flat=True).first()
    if block is not None:
        refuse(
            "variant", SubmissionCheck.VARIANT_BLOCKED, f"{variant.full_name} is on the maintainers' blocklist: {block}"
        )
    return problems


def quota_limits(user: Any) -> tuple[int, int]:
    max_active = user.max_active_jobs if user.max_active_jobs is not None else settings.MC_DEFAULT_MAX_ACTIVE_JOBS
    daily = (
        user.daily_compute_seconds
        if user.daily_compute_seconds is not None
        else settings.MC_DEFAULT_DAILY_COMPUTE_SECONDS
    )
    return int(max_active), int(daily)


def _lock_submitter(user: Any) -> SubmitterProfile:
    """Lock the submitter's own row: concurrent submissions of one user queue up here, so the quota count
    below sees every job admitted before it (50 parallel submissions against a quota of 5 admit exactly 5).

    Locks here are FOR NO KEY UPDATE: they serialize writers of the row without blocking other transactions'
    inserts that merely reference it (PostgreSQL checks foreign keys with FOR KEY SHARE)."""
    profile = SubmitterProfile.objects.select_for_update(no_key=True).filter(user=user).first()
    if profile is None:
        SubmitterProfile.objects.bulk_create([SubmitterProfile(user=user)], ignore_conflicts=True)
        profile = SubmitterProfile.objects.select_for_update(no_key=True).get(user=user)
    return profile


def _active_retry_after(user: Any, now: datetime) -> int:
    from .selectors import recent_mean_duration_s

    running = list(
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(status=JobStatus.RUNNING)
        .values_list("queue", "started_at")
    )
    queues = {q for q, _ in running} or set(
        BenchmarkJob.objects.counting_against_quota(user).active().values_list("queue", flat=True).distinct()
    )
    means = [m for m in (recent_mean_duration_s(q) for q in queues) if m is not None]
    mean = max(means) if means else None
    if mean is None:
        return 60
    if running:
        soonest = min(mean - (now - started).total_seconds() for _, started in running if started)
        return max(1, math.ceil(soonest))
    return max(1, math.ceil(mean))


def _compute_retry_after(user: Any, now: datetime, used: float, budget: int) -> int:
    window_start = now - timedelta(days=1)
    rows = (
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(finished_at__gte=window_start, compute_seconds__gt=0)
        .order_by("finished_at")
        .values_list("finished_at", "compute_seconds")
    )
    remaining = used
    for finished_at, seconds in rows:
        remaining -= seconds
        if remaining < budget:
            return max(1, math.ceil((finished_at + timedelta(days=1) - now).total_seconds()))
    return 24 * 3600


def quota_enforce(user: Any, now: datetime | None = None) -> None:
    """Raise QuotaExceeded (429) naming the limit hit and when it frees. Call with the submitter row locked."""
    now = now or timezone.now()
    max_active, budget = quota_limits(user)
    # Two indexed range reads rather than one aggregate with FILTERs: that one reads every job the user ever
    # submitted, on each submission.
    mine = BenchmarkJob.objects.counting_against_quota(user)
    agg = {
        "active": mine.filter(status__in=ACTIVE_JOB_STATUSES).count(),
        "used": mine.filter(finished_at__gte=now - timedelta(days=1)).aggregate(
            used=Coalesce(Sum("compute_seconds"), 0.0)
        )["used"],
    }
    if agg["active"] >= max_active:
        retry_after = _active_retry_after(user, now)
        raise QuotaExceeded(
            f"You have {agg['active']} jobs queued or running; the limit is {max_active}. "
            f"A slot should free in about {retry_after} s.",
            limit="max_active_jobs",
            retry_after=retry_after,
            max_active_jobs=max_active,
            active_jobs=agg["active"],
        )
    _compute_refusal(user, now, float(agg["used"]), budget)


def quota_enforce_compute(user: Any, now: datetime) -> None:
    """The daily compute-seconds budget alone (429 when spent)."""
    _, budget = quota_limits(user)
    used = (
        BenchmarkJob.objects.counting_against_quota(user)
        .filter(finished_at__gte=now - timedelta(days=1))
        .aggregate(used=Coalesce(Sum("compute_seconds"), 0.0))["used"]
    )
    _compute_refusal(user, now, float(used), budget)


def _compute_refusal(user: Any, now: datetime, used: float, budget: int) -> None:
    if used >= budget:
        retry_after = _compute_retry_after(user, now, used, budget)
        raise QuotaExceeded(
            f"You used {used:.0f} of your {budget} compute seconds in the last 24 hours.",
            limit="daily_compute_seconds",
            retry_after=retry_after,
            daily_compute_seconds=budget,
            compute_seconds_used=round(used, 3),
        )


def _ensure_visible(actor: Any, revision: Revision) -> None:
    """Queuing a job needs sight of the revision: a draft of a published variant is its insiders' alone."""
    if not revision_is_visible_to(actor, revision):
        raise NotFound(f"{revision.variant.full_name} has no revision {revision.number}.")


def _ensure_runner_open(actor: Any, benchmark: Benchmark) -> None:
    """Some runners are maintainers' tools (MC_MAINTAINER_ONLY_RUNNERS: noop, for pipeline drills)."""
    if benchmark.runner in settings.MC_MAINTAINER_ONLY_RUNNERS and not is_maintainer(actor):
        raise PermissionDenied(
            f"Jobs on the benchmark '{benchmark.slug}' (runner {benchmark.runner}) are for maintainers only."
        )


def _dedupe_match(revision: Revision, benchmark: Benchmark, config_hash: str) -> BenchmarkJob | None:
    # No ORDER BY: the dedupe constraint allows one match at most, and "ORDER BY id LIMIT 1" tempts
    # PostgreSQL into walking the primary key backwards through every job when there is no match.
    matches = list(
        BenchmarkJob.objects.filter(
            revision=revision,
            benchmark=benchmark,
            benchmark_version=benchmark.version,
            config_hash=config_hash,
            verifies__isnull=True,
        )
        .exclude(status__in=DEDUPE_EXCLUDED_STATUSES)
        .order_by()[:1]
    )
    return matches[0] if matches else None


def job_submit(
    *, actor: Any, revision: Revision, benchmark: Benchmark, config: dict[str, Any] | None = None, priority: int = 0
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
    _ensure_runner_open(actor, benchmark)
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
    try:
        with transaction.atomic():
            _lock_submitter(actor)
            existing = _dedupe_match(revision, benchmark, config_hash)
            if existing is not None:
                return existing, False
            quota_enforce(actor, now)
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
                },
            )
            jobs_dispatch_on_commit(job.queue)
    except IntegrityError:
        # Another submitter made the same key a moment ago: the dedupe constraint caught the race, this
        # transaction (or savepoint) was rolled back, and their job is the answer.
        existing = _dedupe_match(revision, benchmark, config_hash)
        if existing is None:
            raise
        return existing, False
    return job, True


BATCH_MAX = 500


def jobs_submit_batch(
    *, actor: Any, items: list[tuple[Revision, Benchmark, dict[str, Any] | None]], priority: int = 0
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
        _ensure_runner_open(actor, benchmark)
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
        key = (revision.pk, benchmark.pk)
        if key not in checked:
            checked[key] = submission_problems(revision=revision, benchmark=benchmark)
        for field, messages in checked[key].items():
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
    actor: Any, prepared: list[tuple[Revision, Benchmark, dict[str, Any], str]], priority: int, now: datetime
) -> tuple[dict[Any, BenchmarkJob], dict[Any, BenchmarkJob]]:
    _lock_submitter(actor)
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
                max_attempts=benchmark.max_attempts,
                queued_at=now,
            )
    if new:
        max_active, _ = quota_limits(actor)
        active = BenchmarkJob.objects.counting_against_quota(actor).filter(status__in=ACTIVE_JOB_STATUSES).count()
        if active + len(new) > max_active:
            raise QuotaExceeded(
                f"This batch adds {len(new)} jobs to your {active} queued or running; the limit is {max_active}"
                f" ({max(0, max_active - active)} would fit).",
                limit="max_active_jobs",
                retry_after=_active_retry_after(actor, now),
                max_active_jobs=max_active,
                active_jobs=active,
            )
        quota_enforce_compute(actor, now)
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
                    },
                )
                for job in created
            ],
        )
        for queue in {job.queue for job in created}:
            jobs_dispatch_on_commit(queue)
    return existing, new


# ---------------------------------------------------------------------------------------------------------
# Execution (called by workers)
# ---------------------------------------------------------------------------------------------------------


def _claim_fields(now: datetime, worker: str) -> dict[str, Any]:
    return {
        "status": JobStatus.RUNNING,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "heartbeat_at": now,
        "worker_host": worker[:200],
        "progress_done": 0,
        "failure_reason": "",
        "failure_message": "",
    }


def _claimed(job_id: int, verb: str, before: str, extra: dict[str, Any] | None = None) -> BenchmarkJob:
    job = BenchmarkJob.objects.select_related("benchmark", "spec").get(pk=job_id)
    audit_record(
        actor=None,
        verb=verb,
        target=job,
        before={"status": before},
        after={"status": JobStatus.RUNNING, "attempt": job.attempts, "worker": job.worker_host, **(extra or {})},
    )
    return job


def job_claim(*, job_id: int, worker: str) -> BenchmarkJob | None:
    """Compare-and-set queued -> running, recording worker, attempt and heartbeat (the lease). Returns None when
    the job is not this worker's to run: already claimed (a duplicate delivery), cancelled, in backoff, or a
    verification that another live worker should run. A redelivered message for a job still marked running by a
    dead attempt (stale heartbeat) takes the job over rather than being dropped."""
    claimed = jobs_claim(job_ids=[job_id], worker=worker)
    return claimed[0] if claimed else None


def jobs_claim(*, job_ids: list[int], worker: str) -> list[BenchmarkJob]:
    """Claim several jobs at once (a chunk of short jobs sent in one message), each as :func:`job_claim` would:
    the plain case (queued, due, not a verification, not cancelled) in one compare-and-set statement and one audit
    append for the lot; the others (verifications, redeliveries of running jobs) one by one. Returns the jobs
    this worker now owns, in the order given."""
    ids = list(dict.fromkeys(int(i) for i in job_ids))
    if not ids:
        return []
    now = timezone.now()
    worker = worker[:200]
    with transaction.atomic():
        # Lock the plainly claimable rows first: on PostgreSQL a row another claimer holds is waited for and
        # looked at again once it commits, so exactly the rows still claimable come back, and stay ours.
        plain = list(
            BenchmarkJob.objects.select_for_update(no_key=True)
            .filter(pk__in=ids, status=JobStatus.QUEUED, cancel_requested=False, exclude_worker="")
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .values_list("pk", flat=True)
        )
        moved = (
            BenchmarkJob.objects.filter(pk__in=plain, status=JobStatus.QUEUED).update(**_claim_fields(now, worker))
            if plain
            else 0
        )
        mine = BenchmarkJob.objects.select_related("benchmark", "spec").filter(pk__in=plain)
        if moved != len(plain):
            # Only where SELECT .. FOR UPDATE locks nothing (SQLite): the rows this UPDATE moved carry this
            # claim's instant and worker.
            mine = mine.filter(status=JobStatus.RUNNING, started_at=now, worker_host=worker)
        claimed = {job.pk: job for job in mine} if moved else {}
        audit_record_many(
            actor=None,
            verb="job.start",
            events=[
                (
                    job,
                    {"status": JobStatus.QUEUED},
                    {"status": JobStatus.RUNNING, "attempt": job.attempts, "worker": job.worker_host},
                )
                for job in claimed.values()
            ],
        )
    for job_id in ids:
        if job_id not in claimed:
            job = _claim_contended(job_id, worker, now)
            if job is not None:
                claimed[job_id] = job
    return [claimed[i] for i in ids if i in claimed]


@transaction.atomic
def _claim_contended(job_id: int, worker: str, now: datetime) -> BenchmarkJob | None:
    from .dispatch import live_workers

    job = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk=job_id).first()
    if job is None:
        return None
    if job.status == JobStatus.QUEUED and not job.cancel_requested:
        if job.not_before and job.not_before > now:
            return None  # an early redelivery during backoff: the dispatcher sends it again when it is due
        same_worker = bool(job.exclude_worker) and job.exclude_worker == worker
        if same_worker and job.dispatch_count <= settings.MC_VERIFY_MAX_HANDBACKS:
            others = [w for w in live_workers(job.queue, now=now) if w.name != worker]
            if others:
                # A verification must not run where the original ran while another worker can take it:
                # hand it back, and the dispatcher sends it to that worker's private queue.
                BenchmarkJob.objects.filter(pk=job.pk).update(dispatched_at=None, target_worker="")
                jobs_dispatch_on_commit(job.queue)
                return None
        BenchmarkJob.objects.filter(pk=job.pk).update(**_claim_fields(now, worker))
        return _claimed(job.pk, "job.start", JobStatus.QUEUED, {"same_worker_as_original": same_worker})
    stale_before = now - timedelta(seconds=settings.MC_JOB_STALE_AFTER_S)
    if job.status == JobStatus.RUNNING and job.heartbeat_at and job.heartbeat_at < stale_before:
        if job.cancel_requested or job.attempts >= job.max_attempts:
            _fail_locked(
                job,
                attempt=job.attempts,
                reason=FailureReason.WORKER_LOST,
                now=now,
                message=f"Attempt {job.attempts} lost its worker ({job.worker_host}) and no attempts are left.",
            )
            return None
        previous = job.worker_host
        BenchmarkJob.objects.filter(pk=job.pk).update(**_claim_fields(now, worker))
        return _claimed(job.pk, "job.takeover", JobStatus.RUNNING, {"abandoned_worker": previous})
    return None


def job_progress(*, job_id: int, attempt: int, done: int, total: int) -> bool:
    """Record progress (and refresh the lease). Returns True when the job must stop: cancelled, or the attempt
    was fenced off (another attempt owns the job now)."""
    updated = BenchmarkJob.objects.filter(
        pk=job_id, attempts=attempt, status=JobStatus.RUNNING, cancel_requested=False
    ).update(progress_done=max(0, done), progress_total=max(0, total), heartbeat_at=timezone.now())
    return not updated


def jobs_heartbeat(*, attempts: dict[int, int]) -> set[int]:
    """Refresh the leases of several running attempts ({job id: attempt}) in one statement. Returns the ids that
    must stop: cancelled, or fenced off (another attempt owns the job now)."""
    if not attempts:
        return set()
    owned = Q(pk__in=[])
    for job_id, attempt in attempts.items():
        owned |= Q(pk=job_id, attempts=attempt)
    live = BenchmarkJob.objects.filter(owned, status=JobStatus.RUNNING, cancel_requested=False)
    if live.update(heartbeat_at=timezone.now()) == len(attempts):
        return set()
    return set(attempts) - set(live.values_list("pk", flat=True))


def _fenced(job_id: int, attempt: int) -> BenchmarkJob | None:
    job = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk=job_id).first()
    if job is None or job.status != JobStatus.RUNNING or job.attempts != attempt:
        return None
    return job


def _elapsed(job: BenchmarkJob, now: datetime) -> float:
    return max(0.0, (now - job.started_at).total_seconds()) if job.started_at else 0.0


@dataclass(frozen=True)
class Completion:
    """What a worker reports for one attempt that ran to the end (see :func:`jobs_complete`)."""

    job_id: int
    attempt: int
    metrics: dict[str, float]
    stderr: dict[str, float]
    samples: int
    duration_s: float
    runner: str
    runner_version: str
    environment: dict[str, Any]
    log_tail: str = ""
    seed: int = 0
    progress: tuple[int, int] | None = None


def job_complete(
    *,
    job_id: int,
    attempt: int,
    metrics: dict[str, float],
    stderr: dict[str, float],
    samples: int,
    duration_s: float,
    runner: str,
    runner_version: str,
    environment: dict[str, Any],
    log_tail: str = "",
    seed: int = 0,
    progress: tuple[int, int] | None = None,
) -> BenchmarkJob | None:
    """Write the result exactly once. A late or duplicate attempt writes nothing and returns None; a job
    cancelled while its last batch ran ends cancelled, without a result. `progress` is the last (done, total)
    the runner reported (written here rather than by a separate update)."""
    done = jobs_complete(
        [
            Completion(
                job_id=job_id,
                attempt=attempt,
                metrics=metrics,
                stderr=stderr,
                samples=samples,
                duration_s=duration_s,
                runner=runner,
                runner_version=runner_version,
                environment=environment,
                log_tail=log_tail,
                seed=seed,
                progress=progress,
            )
        ]
    )
    return done.get(job_id)


@transaction.atomic
def jobs_complete(completions: list[Completion]) -> dict[int, BenchmarkJob]:
    """Write the results of several attempts in one transaction, each exactly once as :func:`job_complete`
    does: the rows are locked and fenced by attempt together, results, statuses and audit events are written in
    bulk, and the job-finished subscribers get the whole set after the commit. Returns {job id: job} for the
    attempts that were still current (succeeded, or cancelled when a cancel arrived during the last batch)."""
    by_id = {c.job_id: c for c in completions}
    if not by_id:
        return {}
    now = timezone.now()
    locked = BenchmarkJob.objects.select_for_update(no_key=True).filter(pk__in=list(by_id)).order_by("pk")
    current = [job for job in locked if job.status == JobStatus.RUNNING and job.attempts == by_id[job.pk].attempt]
    out: dict[int, BenchmarkJob] = {}
    succeeded: list[BenchmarkJob] = []
    for job in current:
        c = by_id[job.pk]
        if job.cancel_requested:
            out[job.pk] = _fail_locked(
                job,
                attempt=c.attempt,
                reason=FailureReason.CANCELLED,
                now=now,
                message="Cancelled while running; the result was discarded.",
                log_tail=c.log_tail,
            )
            continue
        job.status = JobStatus.SUCCEEDED
        job.finished_at = now
        if c.progress is not None:
            job.progress_total = max(0, c.progress[1])
        job.progress_done = max(job.progress_done, job.progress_total, c.progress[0] if c.progress else 0)
        job.compute_seconds += _elapsed(job, now)
        job.log_tail = c.log_tail[-8000:]
        succeeded.append(job)
        out[job.pk] = job
    if not succeeded:
        return out
    results = JobResult.objects.bulk_create(
        [
            JobResult(
                job=job,
                attempt=by_id[job.pk].attempt,
                metrics=by_id[job.pk].metrics,
                stderr=by_id[job.pk].stderr,
                samples=by_id[job.pk].samples,
                duration_s=by_id[job.pk].duration_s,
                runner=by_id[job.pk].runner,
                runner_version=by_id[job.pk].runner_version,
                environment=by_id[job.pk].environment,
                seed=by_id[job.pk].seed,
            )
            for job in succeeded
        ]
    )
    bulk_update_rows(
        BenchmarkJob,
        succeeded,
        ["status", "finished_at", "progress_done", "progress_total", "compute_seconds", "log_tail"],
    )
    audit_record_many(
        actor=None,
        verb="job.succeed",
        events=[
            (
                job,
                {"status": JobStatus.RUNNING},
                {"status": JobStatus.SUCCEEDED, "attempt": by_id[job.pk].attempt, "metrics": by_id[job.pk].metrics},
            )
            for job in succeeded
        ],
    )
    from .verification import results_recorded

    results_recorded(list(zip(succeeded, results, strict=True)))
    hooks.job_finished_on_commit([job.pk for job in succeeded])
    return out


def _backoff(attempt: int) -> timedelta:
    base = float(settings.MC_JOB_RETRY_BACKOFF_S)
    return timedelta(seconds=min(base * 2 ** max(attempt - 1, 0), float(settings.MC_JOB_RETRY_BACKOFF_MAX_S)))


def _fail_locked(
    job: BenchmarkJob, *, attempt: int, reason: str, message: str, now: datetime, log_tail: str = ""
) -> BenchmarkJob:
    before = job.status
    job.compute_seconds += _elapsed(job, now)
    job.failure_reason = reason
    job.failure_message = message[:4000]
    if log_tail:
        job.log_tail = log_tail[-8000:]
    if reason == FailureReason.CANCELLED or job.cancel_requested:
        job.status = JobStatus.CANCELLED
        if reason != FailureReason.CANCELLED:
            job.failure_message = f"Cancelled; the last attempt ended with {reason}: {message}"[:4000]
            job.failure_reason = FailureReason.CANCELLED
    elif reason in RETRYABLE_FAILURES and job.attempts < job.max_attempts:
        job.status = JobStatus.QUEUED
        job.not_before = now + _backoff(job.attempts)
        job.queued_at = now
        job.dispatched_at = None
        job.target_worker = ""
    elif reason == FailureReason.TIMEOUT:
        job.status = JobStatus.TIMED_OUT
    else:
        job.status = JobStatus.FAILED
    if job.status != JobStatus.QUEUED:
        job.finished_at = now
    job.save()
    audit_record(
        actor=None,
        verb="job.retry" if job.status == JobStatus.QUEUED else f"job.{job.status}",
        target=job,
        before={"status": before},
        after={
            "status": job.status,
            "attempt": attempt,
            "reason": reason,
            "not_before": job.not_before.isoformat() if job.status == JobStatus.QUEUED else None,
        },
    )
    if job.status != JobStatus.QUEUED:
        from .verification import verification_failed

        if job.verifies_id:
            verification_failed(job=job)
        hooks.job_finished_on_commit(job.pk)
    return job


@transaction.atomic
def job_fail(*, job_id: int, attempt: int, reason: str, message: str, log_tail: str = "") -> BenchmarkJob | None:
    """Record a failed attempt (fenced by attempt): requeue with exponential backoff when attempts remain and
    the failure may be transient, else end the job with its reason code."""
    job = _fenced(job_id, attempt)
    if job is None:
        return None
    return _fail_locked(job, attempt=attempt, reason=reason, message=message, now=timezone.now(), log_tail=log_tail)


# ---------------------------------------------------------------------------------------------------------
# Cancel, retry
# ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def job_cancel(*, job: BenchmarkJob, actor: Any) -> BenchmarkJob:
    """Owner or maintainer: a queued job is cancelled at once, a running one at its next checkpoint (and it
    writes nothing after that)."""
    job = BenchmarkJob.objects.select_for_update(no_key=True).get(pk=job.pk)
    if job.submitted_by_id != actor.pk and not is_maintainer(actor):
        raise PermissionDenied("Only the submitter or a maintainer may cancel this job.")
    if job.status not in ACTIVE_JOB_STATUSES or job.cancel_requested:
        raise InvalidTransition(
            current=job.status,
            target=JobStatus.CANCELLED,
            allowed=[] if job.cancel_requested else list(JOB_TRANSITIONS.get(job.status, ())),
        )
    before = job.status
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.failure_reason = FailureReason.CANCELLED
        job.failure_message = f"Cancelled by {actor.username} before it started."
        job.finished_at = timezone.now()
    job.save()
    audit_record(
        actor=actor,
        verb="job.cancel",
        target=job,
        before={"status": before},
        after={"status": job.status, "cancel_requested": True},
    )
    if job.status == JobStatus.CANCELLED:
        if job.verifies_id:
            from .verification import verification_failed

            verification_failed(job=job)
        hooks.job_finished_on_commit(job.pk)
        jobs_dispatch_on_commit(job.queue)  # its broker slot, if it had one, is free again
    return job


@transaction.atomic
def job_retry(*, job: BenchmarkJob, actor: Any) -> BenchmarkJob:
    """Run a failed or timed-out job again with a fresh attempt budget. Maintainers may retry any such job; a
    submitter may re-run their own job when it failed for an infrastructure reason (worker_lost,
    artifact_unavailable). Neither counts against the submitter's quota."""
    job = BenchmarkJob.objects.select_for_update(no_key=True).select_related("benchmark").get(pk=job.pk)
    maintainer = is_maintainer(actor)
    if not maintainer and job.submitted_by_id != actor.pk:
        raise PermissionDenied("Only maintainers may retry other people's jobs.")
    _ensure_runner_open(actor, job.benchmark)
    if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
        raise InvalidTransition(
            current=job.status, target=JobStatus.QUEUED, allowed=list(JOB_TRANSITIONS.get(job.status, ()))
        )
    if not maintainer and (job.status != JobStatus.FAILED or job.failure_reason not in INFRASTRUCTURE_FAILURES):
        raise PermissionDenied(
            "You may re-run a job that failed for an infrastructure reason "
            f"({', '.join(INFRASTRUCTURE_FAILURES)}); this one ended {job.status}"
            f"{' with ' + job.failure_reason if job.failure_reason else ''}. "
            "Ask a maintainer, or fix the cause and submit again."
        )
    if job.verifies_id is None:
        newer = (
            BenchmarkJob.objects.filter(
                revision_id=job.revision_id,
                benchmark_id=job.benchmark_id,
                benchmark_version=job.benchmark_version,
                config_hash=job.config_hash,
                verifies__isnull=True,
            )
            .exclude(status__in=DEDUPE_EXCLUDED_STATUSES)
            .exclude(pk=job.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if newer is not None:
            raise Conflict(
                f"Job {newer} already runs (or ran) the same revision, benchmark version and config.",
                existing_job=newer,
            )
    before = {"status": job.status, "reason": job.failure_reason, "attempts": job.attempts}
    now = timezone.now()
    job.status = JobStatus.QUEUED
    job.max_attempts = job.attempts + job.benchmark.max_attempts
    job.counts_against_quota = False
    job.cancel_requested = False
    job.queued_at = now
    job.not_before = None
    job.dispatched_at = None
    job.target_worker = ""
    job.finished_at = None
    job.progress_done = 0
    job.failure_reason = ""
    job.failure_message = ""
    job.save()
    audit_record(
        actor=actor,
        verb="job.rerun" if not maintainer else "job.retry_by_maintainer",
        target=job,
        before=before,
        after={"status": job.status, "max_attempts": job.max_attempts, "counts_against_quota": False},
    )
    jobs_dispatch_on_commit(job.queue)
    return job


def job_verify(*, job: BenchmarkJob, actor: Any) -> tuple[BenchmarkJob, bool]:
    """Re-run a succeeded job (same revision, benchmark version and config) on another worker where there is
    one. Returns (verification job, created); a verification already under way comes back instead."""
    from .verification import verification_request

    return verification_request(job=job, actor=actor)
