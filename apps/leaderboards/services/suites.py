"""Suite definitions (maintainers): create, edit, and score after the admin changed one in place. A change to
the benchmarks, weights or bounds bumps the suite's version and rescores it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.db import transaction

from apps.audit.services import audit_record
from apps.benchmarks.models import Benchmark
from apps.core.conditional import check_if_match
from apps.core.errors import ValidationFailed

from ..models import Suite, SuiteBenchmark, metric_direction
from .suite_scores import suite_items, suite_rebuild

if TYPE_CHECKING:
    from apps.accounts.types import Actor


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
            for i in suite_items(suite)
        ],
    }


@transaction.atomic
def suite_create(
    *, actor: Actor, slug: str, name: str, benchmarks: list[dict[str, Any]], description: str = ""
) -> Suite:
    """Maintainers: define a suite, then score every variant already on its benchmarks' boards."""
    if Suite.objects.filter(slug__iexact=slug).exists():
        raise ValidationFailed("Slug taken.", errors={"slug": [f"A suite '{slug}' already exists."]})
    items = _validate_suite_benchmarks(benchmarks)
    suite = Suite.objects.create(slug=slug, name=name, description=description, created_by=actor)
    for item in items:
        item.suite = suite
    SuiteBenchmark.objects.bulk_create(items)
    suite_rebuild(suite)
    audit_record(actor=actor, verb="suite.create", target=suite, after=_suite_snapshot(suite))
    return suite


@transaction.atomic
def suite_update(
    *,
    suite: Suite,
    actor: Actor,
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
        old = [(i.benchmark_id, i.metric_name, i.weight, i.baseline, i.best) for i in suite_items(suite)]
        new = [(i.benchmark_id, i.metric_name, i.weight, i.baseline, i.best) for i in items]
        if old != new:
            suite.entries.all().delete()
            for item in items:
                item.suite = suite
            SuiteBenchmark.objects.bulk_create(items)
            suite.version += 1
    suite.save()
    if suite.version != before["version"]:
        suite_rebuild(suite)
    audit_record(actor=actor, verb="suite.update", target=suite, before=before, after=_suite_snapshot(suite))
    return suite


@transaction.atomic
def suite_definition_changed(*, suite: Suite, actor: Actor, created: bool = False) -> Suite:
    """The Django admin created a suite or edited its benchmarks in place: score it (bumping the version of
    an existing suite) and audit."""
    suite = Suite.objects.select_for_update().get(pk=suite.pk)
    if not created:
        suite.version += 1
        suite.save(update_fields=["version", "updated_at"])
    suite_rebuild(suite)
    audit_record(
        actor=actor, verb="suite.create" if created else "suite.update", target=suite, after=_suite_snapshot(suite)
    )
    return suite
