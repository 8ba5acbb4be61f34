"""The checklist's part of the publication gate (called by the review app when a maintainer publishes)."""

from __future__ import annotations

from collections.abc import Iterable

from apps.registry.models import Revision

from .choices import ItemStatus, Level
from .levels import item_satisfied, unmet_reason
from .models import ChecklistItem


def gate_reasons(rows: Iterable[ChecklistItem]) -> list[str]:
    """The gate is the passing level: every required passing-level item met (or N/A where allowed), and
    verified by a reviewer where the item demands it. Silver and gold items never block publication."""
    reasons = []
    for row in rows:
        item = row.item
        if not item.required or item.level != Level.PASSING or item_satisfied(item, row):
            continue
        reason = unmet_reason(item, row)
        if row.status == ItemStatus.UNMET and row.explanation:
            reason = f"{reason[:-1]}: {row.explanation}"
        reasons.append(reason)
    return reasons


def checklist_gate_unmet(revision: Revision) -> list[str]:
    """Human-readable reasons the checklist does not let the revision be published; empty when it does.

    A submitted revision without a checklist yet (submitted before this app was installed) gets one now."""
    from .services import checklist_ensure

    checklist = checklist_ensure(revision=revision)
    if checklist is None:
        return ["The checklist starts when the revision is submitted; submit it first."]
    return gate_reasons(checklist.items.select_related("item").order_by("item__position", "id"))
