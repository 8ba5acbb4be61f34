"""What may be run: benchmark definitions, their frozen versions, and the maintainers' blocklist of variants.

A change to what a result means (runner, dataset, metrics, config schema or defaults) starts a new version, and
each version's spec is frozen in a :class:`~apps.benchmarks.models.BenchmarkVersion` that jobs run."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import jsonschema
from django.db import transaction

from apps.accounts.roles import is_maintainer
from apps.audit.services import audit_record
from apps.core.conditional import check_if_match
from apps.core.errors import Conflict, PermissionDenied, ValidationFailed
from apps.registry.models import Variant
from workers.runners.base import SHA256_RE

from ..choices import VERSIONED_BENCHMARK_FIELDS, ResourceClass
from ..models import Benchmark, BenchmarkVersion, BlockedVariant
from ..runner_registry import registered_runners, runner_class

if TYPE_CHECKING:
    from apps.accounts.types import Actor

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


def _require_maintainer(actor: Actor, what: str) -> None:
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
    elif schema_ok and isinstance(schema, dict):
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


def _snapshot(benchmark: Benchmark, actor: Actor) -> BenchmarkVersion:
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
    if cached is None:
        # read with the benchmark, when it was (apps.benchmarks.selectors.benchmark_with_current_spec)
        cached = getattr(benchmark, "current_spec", None)
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
    actor: Actor,
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
def benchmark_update(
    *, benchmark: Benchmark, actor: Actor, changes: dict[str, Any], if_match: str | None = None
) -> Benchmark:
    """Change a benchmark (maintainers). A change to what a result means (runner, dataset, metrics, config
    schema or defaults) starts a new version: results belong to one version, so old results stay with the old
    one. Numeric versions are bumped automatically; others need an explicit new `version`. With `if_match` (the
    request's If-Match), only if the benchmark is still the version read (412 otherwise)."""
    _require_maintainer(actor, "change benchmarks")
    benchmark = Benchmark.objects.select_for_update(no_key=True).get(pk=benchmark.pk)
    check_if_match(if_match, benchmark.etag, what="The benchmark")
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
def blocklist_add(*, variant: Variant, reason: str, actor: Actor) -> BlockedVariant:
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
def blocklist_remove(*, entry: BlockedVariant, actor: Actor) -> None:
    """Take a variant off the blocklist."""
    _require_maintainer(actor, "edit the blocklist")
    variant = entry.variant
    audit_record(actor=actor, verb="benchmark.blocklist.remove", target=variant, before={"reason": entry.reason})
    entry.delete()
