"""Leaderboard writes: keep the summary tables in step with results, variants, suites and contamination marks.

Everything here is derived data: `leaderboard_rebuild()` recomputes it all from jobs and results, and every
incremental update recomputes the affected rows from the source of truth instead of patching them. Writers lock
the variants whose rows they write, all at once (:func:`.locks.lock_variants`).

Which result a board shows (SPEC: "best verified (or latest) result"):
- per revision, among its succeeded jobs on a benchmark version (verification re-runs excluded): the best
  verified result, or, when none is verified, the latest one; that is the revision's `LeaderboardEntry`;
- per variant, among the entries of its published revisions, by the same rule: that entry is `ranked`.

One module per responsibility, imports going one way: :mod:`.contamination` and :mod:`.suites` (suite
definitions) use :mod:`.entries` and :mod:`.suite_scores`; entries use suite scores; all of them use
:mod:`.locks` and :mod:`.scoring` (the pure choice of a representative result and a suite's aggregate). This
module re-exports the public API: ``from apps.leaderboards import services`` keeps working."""

from .contamination import leaderboard_clear_contamination, leaderboard_mark_contaminated
from .entries import (
    leaderboard_rebuild,
    leaderboard_record_job,
    leaderboard_record_jobs,
    leaderboard_refresh_benchmark,
    leaderboard_refresh_variant,
)
from .scoring import choose_representative, suite_aggregate
from .suites import suite_create, suite_definition_changed, suite_update

__all__ = [
    "choose_representative",
    "leaderboard_clear_contamination",
    "leaderboard_mark_contaminated",
    "leaderboard_rebuild",
    "leaderboard_record_job",
    "leaderboard_record_jobs",
    "leaderboard_refresh_benchmark",
    "leaderboard_refresh_variant",
    "suite_aggregate",
    "suite_create",
    "suite_definition_changed",
    "suite_update",
]
