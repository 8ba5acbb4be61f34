"""Levels and progress, after the OpenSSF Best Practices badge.

- A *required* item is satisfied when it is met, or N/A where N/A is allowed, and verified by a reviewer when
  the item asks for that.
- A *suggested* (not required) item counts toward progress once it has any answer other than unknown.
- passing = every required passing item satisfied; silver = passing and every required silver item; gold =
  silver and every required gold item. A level without items is reached with its predecessor.
- progress[level] = the percentage (rounded down) of that level's items that count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .choices import IN_PROGRESS, LEVEL_ORDER, ItemStatus, Level


class ItemDefinition(Protocol):
    key: str
    title: str
    required: bool
    level: str
    na_allowed: bool
    reviewer_verifies: bool


class Answer(Protocol):
    status: str
    verified_by_id: int | None


def item_satisfied(item: ItemDefinition, answer: Answer) -> bool:
    ok = answer.status == ItemStatus.MET or (answer.status == ItemStatus.NA and item.na_allowed)
    return ok and (not item.reviewer_verifies or answer.verified_by_id is not None)


def item_counts(item: ItemDefinition, answer: Answer) -> bool:
    if item.required:
        return item_satisfied(item, answer)
    return answer.status != ItemStatus.UNKNOWN


@dataclass(frozen=True)
class LevelReport:
    level: str
    progress: dict[str, int]


def level_report(pairs: Iterable[tuple[ItemDefinition, Answer]]) -> LevelReport:
    totals = {level: 0 for level in LEVEL_ORDER}
    counted = {level: 0 for level in LEVEL_ORDER}
    blocked = {level: False for level in LEVEL_ORDER}
    for item, answer in pairs:
        totals[item.level] += 1
        if item_counts(item, answer):
            counted[item.level] += 1
        elif item.required:
            blocked[item.level] = True
    progress = {level: (100 * counted[level] // totals[level]) if totals[level] else 100 for level in LEVEL_ORDER}
    reached = IN_PROGRESS
    for level in LEVEL_ORDER:
        if blocked[level]:
            break
        reached = level
    return LevelReport(level=reached, progress=progress)


def unmet_reason(item: ItemDefinition, answer: Answer) -> str:
    """Why a required item does not hold, in words a contributor understands."""
    name = f"'{item.title}' ({item.key})"
    if answer.status == ItemStatus.UNKNOWN:
        return f"{name} is not answered yet."
    if answer.status == ItemStatus.UNMET:
        return f"{name} is unmet."
    if answer.status == ItemStatus.NA and not item.na_allowed:
        return f"{name} is marked N/A, which this item does not allow."
    return f"{name} is {answer.status} but not yet verified by a reviewer."


__all__ = ["Level", "LevelReport", "item_counts", "item_satisfied", "level_report", "unmet_reason"]
