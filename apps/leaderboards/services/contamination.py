"""Contamination marks: a confirmed contamination flag marks a variant's results on every board and suite;
reversing the flag lifts its marks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.benchmarks.models import Benchmark
from apps.core.errors import NotFound, ValidationFailed

from ..models import ContaminationMark
from .entries import refresh_variant, refresh_variants
from .locks import lock_variant, lock_variants

if TYPE_CHECKING:
    from apps.accounts.types import Actor, Viewer


@transaction.atomic
def leaderboard_mark_contaminated(
    *, variant_id: int, flag_id: int, benchmark_slug: str | None, actor: Actor | None
) -> ContaminationMark:
    """A contamination flag was confirmed: mark the variant's results on `benchmark_slug` (or, when None,
    on every benchmark) on every board and suite. Idempotent per (flag, variant, benchmark)."""
    variant = lock_variant(variant_id)
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
    refresh_variant(variant)
    audit_record(
        actor=actor,
        verb="leaderboard.contamination_mark",
        target=mark,
        after={"flag": flag_id, "variant": variant.full_name, "benchmark": benchmark_slug},
    )
    return mark


@transaction.atomic
def leaderboard_clear_contamination(*, flag_id: int, actor: Actor | None) -> int:
    """A confirmed contamination flag was reversed: lift its marks. Returns how many marks were cleared."""
    marks = list(
        ContaminationMark.objects.select_for_update(of=("self",))
        .filter(flag_id=flag_id, cleared_at__isnull=True)
        .select_related("benchmark")
    )
    now = timezone.now()
    # All the variants (and their children) at once, in one statement: see `lock_variants`.
    variants = lock_variants(m.variant_id for m in marks)
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
    refresh_variants(variants.values())
    return len(marks)


def actor_or_none(actor: Viewer | None) -> Actor | None:
    return actor if actor is not None and actor.is_authenticated else None
