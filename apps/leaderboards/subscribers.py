"""Keep the leaderboard read model in step with the engine, the registry and the benchmark definitions.

The registry and the engine sit below the leaderboards and must not import them, so the leaderboards
subscribe to their extension points instead. Subscribers hold no business logic: they call the service that
re-derives the affected summary rows from the source of truth (after commit: the extension points run then).

- benchmarks: `JOB_FINISHED_HOOKS`, when a result is written or its verification changes: the summary table
  (LeaderboardEntry) is brought up to date so that reads never aggregate over jobs. The hook takes a batch of job
  ids and works on the set (a constant number of queries per batch);
- registry: `REVISION_TRANSITIONED_HOOKS` (publish, unpublish...) and `VARIANT_UPDATED_HOOKS` (license,
  precision, parameters... are board filters);
- benchmarks: the engine has no hook for definition edits, so a `post_save` on Benchmark notices a new
  version or new metric directions (which change what suites aggregate and how boards order).

Anything that bypasses these (queryset `.update()`, a renamed user) is fixed by `manage.py leaderboard_rebuild`."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save, pre_save

from apps.benchmarks.models import Benchmark
from apps.registry.models import Revision

from .models import LeaderboardEntry


def refresh_variant_if_ranked(*, variant_id: int, **_: Any) -> None:
    from .services import leaderboard_refresh_variant

    # Most variants have no results: one cheap probe instead of a locked refresh.
    if LeaderboardEntry.objects.filter(variant_id=variant_id).exists():
        leaderboard_refresh_variant(variant_id=variant_id)


def on_revision_transitioned(*, revision_id: int, **_: Any) -> None:
    variant_id = Revision.objects.filter(pk=revision_id).values_list("variant_id", flat=True).first()
    if variant_id is not None:
        refresh_variant_if_ranked(variant_id=variant_id)


def _benchmark_definition(benchmark: Benchmark) -> tuple[Any, ...]:
    return (
        benchmark.version,
        benchmark.primary_metric,
        [(m.get("name"), bool(m.get("higher_is_better", True))) for m in benchmark.metrics or []],
    )


def _benchmark_before_save(sender: Any, instance: Benchmark, raw: bool = False, **kw: Any) -> None:
    if raw or instance.pk is None:
        return
    previous = Benchmark.objects.filter(pk=instance.pk).first()
    instance._lb_previous = _benchmark_definition(previous) if previous else None  # type: ignore[attr-defined]


def _benchmark_saved(sender: Any, instance: Benchmark, created: bool, raw: bool = False, **kw: Any) -> None:
    if created or raw or getattr(instance, "_lb_previous", None) == _benchmark_definition(instance):
        return
    benchmark_id = instance.pk

    def run() -> None:
        from .services import leaderboard_refresh_benchmark

        leaderboard_refresh_benchmark(benchmark_id=benchmark_id)

    transaction.on_commit(run, robust=True)


def register() -> None:
    """Called once from LeaderboardsConfig.ready(); idempotent (a hook is appended once, signals have a uid)."""
    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
    from apps.registry import hooks as registry_hooks

    from .services import leaderboard_record_jobs

    if leaderboard_record_jobs not in JOB_FINISHED_HOOKS:
        JOB_FINISHED_HOOKS.append(leaderboard_record_jobs)
    if on_revision_transitioned not in registry_hooks.REVISION_TRANSITIONED_HOOKS:
        registry_hooks.REVISION_TRANSITIONED_HOOKS.append(on_revision_transitioned)
    if refresh_variant_if_ranked not in registry_hooks.VARIANT_UPDATED_HOOKS:
        registry_hooks.VARIANT_UPDATED_HOOKS.append(refresh_variant_if_ranked)
    pre_save.connect(_benchmark_before_save, sender=Benchmark, dispatch_uid="leaderboards.benchmark_before")
    post_save.connect(_benchmark_saved, sender=Benchmark, dispatch_uid="leaderboards.benchmark_saved")
