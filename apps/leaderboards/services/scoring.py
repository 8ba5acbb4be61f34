"""Choosing what a board shows, without the database: the representative result among candidates (SPEC: "best
verified (or latest) result") and a suite's weighted aggregate of normalized scores."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..models import SuiteBenchmark


@dataclass
class Candidate:
    rank_score: float
    verified: bool
    at: datetime
    pk: int
    obj: Any = field(default=None, repr=False)


def choose_representative(candidates: Iterable[Candidate]) -> Candidate | None:
    """The best verified candidate (ties: the earliest), or else the latest one."""
    items = list(candidates)
    if not items:
        return None
    verified = [c for c in items if c.verified]
    if verified:
        return min(verified, key=lambda c: (-c.rank_score, c.at, c.pk))
    return max(items, key=lambda c: (c.at, c.pk))


def as_score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class SuiteComponent:
    score: float
    metrics: dict[str, Any]
    verified: bool
    contaminated: bool
    flags: list[dict[str, Any]]
    revision_number: int
    score_metric: str


def suite_aggregate(
    items: list[SuiteBenchmark],
    lookup: Callable[[SuiteBenchmark], SuiteComponent | None],
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
            value = comp.score if metric == comp.score_metric else as_score(comp.metrics.get(metric))
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
