"""Leaderboard rules: summary rows follow results, publication, verification, suites and contamination."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.benchmarks.choices import JobStatus
from apps.core.errors import NotFound, PreconditionFailed, ValidationFailed
from apps.core.testing import count_queries
from apps.leaderboards import selectors, services
from apps.leaderboards.models import ContaminationMark, LeaderboardEntry, SuiteBenchmark, SuiteScore
from apps.leaderboards.services import entries
from apps.registry.choices import RevisionStatus
from apps.registry.models import Revision
from apps.registry.services import revision_create, revision_transition, variant_update

from .factories import make_benchmark, make_result, make_variant, publish

pytestmark = pytest.mark.django_db


def board(benchmark, version=None):
    return list(
        selectors.board_entries(benchmark=benchmark, version=version or benchmark.version).values_list(
            "variant_name", "score"
        )
    )


@pytest.fixture
def bench(db):
    return make_benchmark("bench")


@pytest.fixture
def base(maintainer):
    return make_variant(maintainer, "base-model", actor=maintainer)


@pytest.fixture
def child(alice, base):
    return make_variant(alice, "base-int8", relation="quantized", parents=(base,), precision="int8", parameters=900)


# --- summary rows follow results -------------------------------------------------------------------------


def test_a_result_writes_one_summary_row_with_the_variants_filter_columns(bench, child):
    job = make_result(child, bench, {"accuracy": 0.91, "latency_ms": 3.0})
    entry = LeaderboardEntry.objects.get()
    assert (entry.variant_id, entry.revision_id, entry.job_id) == (child.pk, child.current_revision_id, job.pk)
    assert (entry.score, entry.score_metric, entry.rank_score) == (0.91, "accuracy", 0.91)
    assert entry.metrics == {"accuracy": 0.91, "latency_ms": 3.0}
    assert (entry.variant_name, entry.relation, entry.precision, entry.license, entry.parameters) == (
        "alice/base-int8",
        "quantized",
        "int8",
        "apache-2.0",
        900,
    )
    assert entry.listed and entry.ranked and entry.is_public and not entry.verified
    assert board(bench) == [("alice/base-int8", 0.91)]


def test_the_hook_is_idempotent_and_ignores_failed_jobs_and_results_without_the_primary_metric(bench, child):
    job = make_result(child, bench, {"accuracy": 0.9})
    services.leaderboard_record_job(job.pk)
    services.leaderboard_record_job(job.pk)
    make_result(child, bench, {}, status=JobStatus.FAILED)
    make_result(child, bench, {"latency_ms": 1.0})  # no primary metric: not rankable
    services.leaderboard_record_job(999_999)  # unknown job: nothing happens
    assert list(LeaderboardEntry.objects.values_list("job_id", "score")) == [(job.pk, 0.9)]


def test_a_revision_shows_its_best_verified_result_or_else_its_latest(bench, child):
    make_result(child, bench, {"accuracy": 0.80})
    make_result(child, bench, {"accuracy": 0.70})
    assert board(bench) == [("alice/base-int8", 0.70)]  # none verified: the latest
    make_result(child, bench, {"accuracy": 0.75}, verified=True)
    make_result(child, bench, {"accuracy": 0.60})  # newer, but unverified
    assert board(bench) == [("alice/base-int8", 0.75)]
    make_result(child, bench, {"accuracy": 0.85}, verified=True)
    make_result(child, bench, {"accuracy": 0.78}, verified=True)
    entry = LeaderboardEntry.objects.get()
    assert (entry.score, entry.verified) == (0.85, True)


def test_a_verification_rerun_marks_the_original_result_verified(bench, child):
    original = make_result(child, bench, {"accuracy": 0.9})
    assert not LeaderboardEntry.objects.get().verified
    rerun = make_result(child, bench, {"accuracy": 0.901}, verifies=original, record=False)
    original.result.verified = True
    original.result.save(update_fields=["verified"])
    services.leaderboard_record_job(rerun.pk)  # the hook may name the re-run; it resolves the original
    entry = LeaderboardEntry.objects.get()
    assert entry.verified and entry.job_id == original.pk and entry.score == 0.9


def test_agreement_recorded_only_on_the_rerun_still_counts(bench, child):
    original = make_result(child, bench, {"accuracy": 0.9})
    make_result(child, bench, {"accuracy": 0.9}, verifies=original, verified=True)
    assert LeaderboardEntry.objects.get().verified


def test_lower_is_better_primary_metric_ranks_ascending(maintainer, alice):
    latency = make_benchmark("latency", metrics=[{"name": "p50_ms", "higher_is_better": False, "primary": True}])
    fast = make_variant(maintainer, "fast", actor=maintainer)
    slow = make_variant(maintainer, "slow", actor=maintainer)
    make_result(slow, latency, {"p50_ms": 9.0})
    make_result(fast, latency, {"p50_ms": 2.5})
    assert board(latency) == [("maintainer/fast", 2.5), ("maintainer/slow", 9.0)]
    # "best verified" also follows the direction: the lowest verified latency wins
    make_result(fast, latency, {"p50_ms": 2.0}, verified=True)
    make_result(fast, latency, {"p50_ms": 3.0}, verified=True)
    assert board(latency)[0] == ("maintainer/fast", 2.0)


def test_results_of_unpublished_variants_and_revisions_are_kept_but_never_ranked(bench, alice, base):
    draft = make_variant(alice, "draft-ft", relation="finetune", parents=(base,), published=False)
    make_result(draft, bench, {"accuracy": 0.99})
    entry = LeaderboardEntry.objects.get(variant=draft)
    assert not entry.listed and not entry.ranked and not entry.is_public
    assert board(bench) == []


def test_publishing_and_unpublishing_update_the_board(
    bench, alice, base, maintainer, django_capture_on_commit_callbacks
):
    draft = make_variant(alice, "later", relation="finetune", parents=(base,), published=False)
    make_result(draft, bench, {"accuracy": 0.9})
    with django_capture_on_commit_callbacks(execute=True):
        publish(draft.current_revision, maintainer)
    assert board(bench) == [("alice/later", 0.9)]
    with django_capture_on_commit_callbacks(execute=True):
        revision_transition(
            revision=draft.current_revision, target=RevisionStatus.UNPUBLISHED, actor=maintainer, reason="test"
        )
    assert board(bench) == []
    assert not LeaderboardEntry.objects.get().listed


def test_a_variant_is_ranked_once_on_its_published_revisions(
    bench, alice, base, maintainer, django_capture_on_commit_callbacks
):
    variant = make_variant(alice, "multi", relation="finetune", parents=(base,))
    first = variant.current_revision
    make_result(variant, bench, {"accuracy": 0.80})
    # Revision n+1 as the registry opens it (a draft that becomes current); built directly so this test
    # is about the board's rule only.
    second = Revision.objects.create(variant=variant, number=2, created_by=alice)
    variant.current_revision = second
    variant.status = second.status
    variant.save(update_fields=["current_revision", "status"])
    make_result(variant, bench, {"accuracy": 0.95}, revision=second)
    assert LeaderboardEntry.objects.count() == 2
    assert list(LeaderboardEntry.objects.filter(ranked=True).values_list("revision_id", flat=True)) == [first.pk]
    with django_capture_on_commit_callbacks(execute=True):
        publish(Revision.objects.get(pk=second.pk), maintainer)
    ranked = LeaderboardEntry.objects.filter(ranked=True)
    assert [(e.revision_number, e.score) for e in ranked] == [(2, 0.95)]
    assert board(bench) == [("alice/multi", 0.95)]


def test_each_benchmark_version_has_its_own_board(bench, child):
    make_result(child, bench, {"accuracy": 0.9}, version="1")
    make_result(child, bench, {"accuracy": 0.7}, version="2")
    assert board(bench, "1") == [("alice/base-int8", 0.9)]
    assert board(bench, "2") == [("alice/base-int8", 0.7)]


def test_variant_changes_are_copied_onto_its_rows_once_published(bench, child, alice, maintainer):
    """Rows show what the variant's last published revision declares: a draft's edits arrive on publication."""
    make_result(child, bench, {"accuracy": 0.9})
    draft = revision_create(variant=child, actor=alice)
    variant_update(variant=child, actor=alice, license="MIT", parameters=123)
    services.leaderboard_refresh_variant(variant_id=child.pk)
    entry = LeaderboardEntry.objects.get()
    assert (entry.license, entry.parameters) == ("apache-2.0", 900)
    publish(draft, maintainer)
    services.leaderboard_refresh_variant(variant_id=child.pk)
    entry.refresh_from_db()
    assert (entry.license, entry.parameters) == ("mit", 123)


# --- deltas ----------------------------------------------------------------------------------------------


def test_delta_against_each_parent_on_the_same_benchmark_version(bench, maintainer, alice):
    a = make_variant(maintainer, "parent-a", actor=maintainer)
    b = make_variant(maintainer, "parent-b", actor=maintainer)
    merged = make_variant(alice, "merged", relation="merge", parents=(a, b))
    make_result(a, bench, {"accuracy": 0.80})
    make_result(b, bench, {"accuracy": 0.90}, version="1")
    make_result(merged, bench, {"accuracy": 0.85})
    make_result(a, bench, {"accuracy": 0.10}, version="2")  # another version never leaks into the delta
    rows = list(selectors.board_entries(benchmark=bench, version="1").values(*selectors.ENTRY_ROW_FIELDS))
    rows = selectors.entry_rows_with_deltas(rows, benchmark=bench, version="1")
    by_name = {r["variant_name"]: r["delta_vs_parents"] for r in rows}
    assert by_name["alice/merged"] == {"maintainer/parent-a": 0.05, "maintainer/parent-b": -0.05}
    assert by_name["maintainer/parent-a"] == {}


def test_delta_is_null_when_the_parent_has_no_public_result(bench, maintainer, alice):
    parent = make_variant(maintainer, "hidden-parent", actor=maintainer)
    kid = make_variant(alice, "kid", relation="finetune", parents=(parent,))
    make_result(kid, bench, {"accuracy": 0.7})
    rows = selectors.entry_rows_with_deltas(
        list(selectors.board_entries(benchmark=bench, version="1").values(*selectors.ENTRY_ROW_FIELDS)),
        benchmark=bench,
        version="1",
    )
    assert rows[0]["delta_vs_parents"] == {"maintainer/hidden-parent": None}


def test_lineage_is_copied_onto_rows_and_follows_changes(bench, maintainer, alice, child, base):
    make_result(child, bench, {"accuracy": 0.9})
    assert LeaderboardEntry.objects.get().parents == [[base.pk, "maintainer/base-model", None]]
    make_result(base, bench, {"accuracy": 0.8})  # the parent's new score reaches the child's row
    assert LeaderboardEntry.objects.get(variant=child).parents == [[base.pk, "maintainer/base-model", 0.8]]
    other = make_variant(maintainer, "another-base", actor=maintainer)
    make_result(other, bench, {"accuracy": 0.7})
    # A lineage change is made in a new revision: public rows keep the published parents until it is published.
    draft = revision_create(variant=child, actor=alice)
    variant_update(variant=child, actor=alice, parents=[other.full_name])
    services.leaderboard_refresh_variant(variant_id=child.pk)
    assert LeaderboardEntry.objects.get(variant=child).parents == [[base.pk, "maintainer/base-model", 0.8]]
    publish(draft, maintainer)
    services.leaderboard_refresh_variant(variant_id=child.pk)
    assert LeaderboardEntry.objects.get(variant=child).parents == [[other.pk, "maintainer/another-base", 0.7]]


def test_a_parent_leaving_the_board_nulls_its_childrens_deltas(
    bench, maintainer, base, child, django_capture_on_commit_callbacks
):
    make_result(base, bench, {"accuracy": 0.8})
    make_result(child, bench, {"accuracy": 0.9})
    assert LeaderboardEntry.objects.get(variant=child).parents[0][2] == 0.8
    with django_capture_on_commit_callbacks(execute=True):
        revision_transition(
            revision=base.current_revision, target=RevisionStatus.UNPUBLISHED, actor=maintainer, reason="test"
        )
    assert LeaderboardEntry.objects.get(variant=child).parents[0][2] is None


# --- normalization and suites ----------------------------------------------------------------------------


def test_normalization_between_baseline_and_best_clipped_and_inverted_for_lower_is_better():
    higher = SuiteBenchmark(baseline=0.25, best=1.0)
    assert higher.normalize(0.25) == 0.0
    assert higher.normalize(1.0) == 100.0
    assert higher.normalize(0.625) == pytest.approx(50.0)
    assert higher.normalize(0.10) == 0.0  # below random: clipped at 0
    lower = SuiteBenchmark(baseline=100.0, best=0.0)  # e.g. latency in ms: 100 is useless, 0 perfect
    assert lower.normalize(20.0) == pytest.approx(80.0)
    assert lower.normalize(150.0) == 0.0
    assert lower.normalize(-1.0) == 100.0


def test_suite_score_is_the_weighted_mean_of_normalized_scores(maintainer, alice, base):
    acc = make_benchmark("acc")
    lat = make_benchmark("lat", metrics=[{"name": "ms", "higher_is_better": False, "primary": True}])
    suite = services.suite_create(
        actor=maintainer,
        slug="core",
        name="Core",
        benchmarks=[
            {"benchmark": "acc", "weight": 3, "baseline": 0.1, "best": 1.0},
            {"benchmark": "lat", "weight": 1, "baseline": 100, "best": 0},
        ],
    )
    make_result(base, acc, {"accuracy": 0.82})  # (0.82-0.1)/0.9 = 80
    make_result(base, lat, {"ms": 40.0})  # (40-100)/(0-100) = 60
    score = SuiteScore.objects.get(suite=suite, variant=base)
    assert score.score == pytest.approx((3 * 80 + 1 * 60) / 4)
    assert score.complete and score.missing == [] and not score.verified
    assert score.components["acc"]["normalized"] == pytest.approx(80.0)
    assert score.components["lat"] == {
        "score": 40.0,
        "normalized": 60.0,
        "weight": 1.0,
        "revision": 1,
        "verified": False,
        "version": "1",
    }


def test_a_missing_benchmark_counts_as_zero_and_is_listed(maintainer, base):
    acc = make_benchmark("acc")
    make_benchmark("other")
    suite = services.suite_create(
        actor=maintainer,
        slug="s",
        name="S",
        benchmarks=[{"benchmark": "acc", "baseline": 0.0, "best": 1.0}, {"benchmark": "other"}],
    )
    make_result(base, acc, {"accuracy": 0.5})
    score = SuiteScore.objects.get(suite=suite)
    assert score.score == pytest.approx(25.0)
    assert not score.complete and score.missing == ["other"] and not score.verified


def test_suite_scores_are_verified_only_when_complete_and_every_component_is(maintainer, base):
    acc = make_benchmark("acc")
    two = make_benchmark("two")
    suite = services.suite_create(
        actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "acc"}, {"benchmark": "two"}]
    )
    make_result(base, acc, {"accuracy": 0.5}, verified=True)
    assert not SuiteScore.objects.get(suite=suite).verified
    make_result(base, two, {"accuracy": 0.5}, verified=True)
    assert SuiteScore.objects.get(suite=suite).verified


def test_creating_a_suite_scores_existing_results_and_updating_bumps_the_version(maintainer, base, child, bench):
    make_result(base, bench, {"accuracy": 0.5, "latency_ms": 10.0})
    make_result(child, bench, {"accuracy": 0.6, "latency_ms": 5.0})
    suite = services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    assert suite.version == 1
    assert dict(SuiteScore.objects.values_list("variant_name", "score")) == {
        "maintainer/base-model": 50.0,
        "alice/base-int8": 60.0,
    }
    suite = services.suite_update(suite=suite, actor=maintainer, name="Renamed")
    assert suite.version == 1  # a name is not a definition change
    suite = services.suite_update(
        suite=suite,
        actor=maintainer,
        benchmarks=[{"benchmark": "bench", "metric": "latency_ms", "baseline": 20, "best": 0}],
    )
    assert suite.version == 2
    assert dict(SuiteScore.objects.values_list("variant_name", "score")) == {
        "maintainer/base-model": 50.0,
        "alice/base-int8": 75.0,
    }
    assert AuditEvent.objects.filter(verb__in=["suite.create", "suite.update"]).count() == 3


def test_suite_update_honours_if_match(maintainer, bench):
    suite = services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    with pytest.raises(PreconditionFailed):
        services.suite_update(suite=suite, actor=maintainer, if_match='"stale"', name="x")
    suite.refresh_from_db()
    assert services.suite_update(suite=suite, actor=maintainer, if_match=suite.etag, name="x").name == "x"


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"benchmark": "nope"}, "benchmarks.0.benchmark", "No benchmark"),
        ({"benchmark": "bench", "metric": "f1"}, "benchmarks.0.metric", "has no metric"),
        ({"benchmark": "bench", "baseline": 1.0, "best": 0.5}, "benchmarks.0.best", "higher-is-better"),
        (
            {"benchmark": "bench", "metric": "latency_ms", "baseline": 0, "best": 10},
            "benchmarks.0.best",
            "lower-is-better",
        ),
        ({"benchmark": "bench", "weight": 0}, "benchmarks.0.weight", "positive"),
    ],
)
def test_suite_definitions_are_validated(maintainer, bench, entry, field, message):
    with pytest.raises(ValidationFailed) as exc:
        services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[entry])
    assert message in " ".join(exc.value.errors[field])


def test_a_benchmark_listed_twice_is_refused(maintainer, bench):
    with pytest.raises(ValidationFailed) as exc:
        services.suite_create(
            actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}, {"benchmark": "bench"}]
        )
    assert "benchmarks.1.benchmark" in exc.value.errors


def test_a_new_benchmark_version_moves_suites_to_its_results(
    maintainer, base, bench, django_capture_on_commit_callbacks
):
    suite = services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    make_result(base, bench, {"accuracy": 0.5})
    assert SuiteScore.objects.filter(suite=suite).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        bench.version = "2"
        bench.save()
    assert SuiteScore.objects.filter(suite=suite).count() == 0  # no v2 results yet
    make_result(base, bench, {"accuracy": 0.7})
    assert SuiteScore.objects.get(suite=suite).components["bench"]["version"] == "2"


def test_flipping_a_metric_direction_rescores_the_board(maintainer, bench, django_capture_on_commit_callbacks):
    a = make_variant(maintainer, "a", actor=maintainer)
    b = make_variant(maintainer, "b", actor=maintainer)
    make_result(a, bench, {"accuracy": 0.2})
    make_result(b, bench, {"accuracy": 0.8})
    assert [n for n, _ in board(bench)] == ["maintainer/b", "maintainer/a"]
    with django_capture_on_commit_callbacks(execute=True):
        bench.metrics = [{"name": "accuracy", "higher_is_better": False, "primary": True}]
        bench.save()
    assert [n for n, _ in board(bench)] == ["maintainer/a", "maintainer/b"]


# --- contamination ---------------------------------------------------------------------------------------


def test_a_confirmed_contamination_flag_marks_the_results_on_one_benchmark(maintainer, bench, child):
    other = make_benchmark("other")
    make_result(child, bench, {"accuracy": 0.9})
    make_result(child, other, {"accuracy": 0.9})
    suite = services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    mark = services.leaderboard_mark_contaminated(
        variant_id=child.pk, flag_id=41, benchmark_slug="bench", actor=maintainer
    )
    assert mark.active
    marked = LeaderboardEntry.objects.get(benchmark=bench)
    assert marked.contaminated and marked.flags == [{"kind": "contamination", "flag": 41, "benchmark": "bench"}]
    assert not LeaderboardEntry.objects.get(benchmark=other).contaminated
    assert SuiteScore.objects.get(suite=suite).contaminated
    assert marked.ranked  # marked, not hidden: readers filter with ?contaminated=false
    # a later result on that benchmark is marked too
    make_result(child, bench, {"accuracy": 0.95})
    assert LeaderboardEntry.objects.get(benchmark=bench).contaminated
    assert AuditEvent.objects.filter(verb="leaderboard.contamination_mark").count() == 1


def test_a_flag_without_benchmark_marks_every_board_and_clearing_lifts_it(maintainer, bench, child):
    other = make_benchmark("other")
    make_result(child, bench, {"accuracy": 0.9})
    make_result(child, other, {"accuracy": 0.9})
    services.leaderboard_mark_contaminated(variant_id=child.pk, flag_id=7, benchmark_slug=None, actor=maintainer)
    services.leaderboard_mark_contaminated(variant_id=child.pk, flag_id=7, benchmark_slug=None, actor=maintainer)
    assert ContaminationMark.objects.count() == 1
    assert set(LeaderboardEntry.objects.values_list("contaminated", flat=True)) == {True}
    assert services.leaderboard_clear_contamination(flag_id=7, actor=maintainer) == 1
    assert set(LeaderboardEntry.objects.values_list("contaminated", flat=True)) == {False}
    assert LeaderboardEntry.objects.filter(flags=[]).count() == 2
    assert services.leaderboard_clear_contamination(flag_id=7, actor=maintainer) == 0
    # confirming the same flag again re-activates its mark
    services.leaderboard_mark_contaminated(variant_id=child.pk, flag_id=7, benchmark_slug=None, actor=maintainer)
    assert ContaminationMark.objects.get().active


def test_contamination_marks_reject_unknown_variants_and_benchmarks(maintainer, child):
    with pytest.raises(NotFound):
        services.leaderboard_mark_contaminated(variant_id=10**9, flag_id=1, benchmark_slug=None, actor=maintainer)
    with pytest.raises(ValidationFailed):
        services.leaderboard_mark_contaminated(variant_id=child.pk, flag_id=1, benchmark_slug="nope", actor=maintainer)


# --- rebuild ---------------------------------------------------------------------------------------------


def test_rebuild_recomputes_everything_from_jobs(maintainer, bench, base, child):
    make_result(base, bench, {"accuracy": 0.5})
    job = make_result(child, bench, {"accuracy": 0.6}, verified=True)
    suite = services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    services.leaderboard_mark_contaminated(variant_id=child.pk, flag_id=3, benchmark_slug=None, actor=maintainer)
    expected = sorted(LeaderboardEntry.objects.values_list("variant_id", "score", "verified", "ranked", "contaminated"))
    LeaderboardEntry.objects.all().delete()
    SuiteScore.objects.all().delete()
    orphan = make_result(base, make_benchmark("other"), {"accuracy": 0.1})
    orphan.result.delete()  # its entry now has no succeeded job behind it
    counts = services.leaderboard_rebuild()
    assert counts == {"removed": 1, "entries": 2, "suites": 1}
    assert (
        sorted(LeaderboardEntry.objects.values_list("variant_id", "score", "verified", "ranked", "contaminated"))
        == expected
    )
    assert SuiteScore.objects.filter(suite=suite).count() == 2
    assert LeaderboardEntry.objects.get(variant=child).job_id == job.pk


def test_leaderboard_rebuild_command(bench, child, capsys):
    from django.core.management import call_command

    make_result(child, bench, {"accuracy": 0.9})
    LeaderboardEntry.objects.all().delete()
    call_command("leaderboard_rebuild")
    assert "leaderboards rebuilt: 1 entries" in capsys.readouterr().out
    assert LeaderboardEntry.objects.get().ranked


# --- the job-finished hook on batches --------------------------------------------------------------------


def _rows() -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Every summary row by its natural key, without the columns that depend on write order or time (the
    pk, updated_at); stored documents decoded (PostgreSQL's jsonb may hand back the same object with its keys
    in another order, and a document rewritten from a row read back carries that order)."""

    def row(values: dict[str, Any]) -> dict[str, Any]:
        return {k: json.loads(v) if k == "document" else v for k, v in values.items() if k not in ("id", "updated_at")}

    entries = {
        (r["revision_id"], r["benchmark_id"], r["benchmark_version"]): row(r) for r in LeaderboardEntry.objects.values()
    }
    scores = {(r["suite_id"], r["variant_id"]): row(r) for r in SuiteScore.objects.values()}
    return entries, scores


def _writes(queries: list[dict[str, Any]]) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


@pytest.fixture
def batch_world(maintainer, alice, base, child, bench):
    """Variants with lineage (a child, a merge of two parents), a suite over two benchmarks, a contamination
    mark, results already on the boards, and a batch of finished jobs not yet recorded: verified and
    unverified results, a verification re-run, a failed job, a result without the primary metric, a job
    on an old benchmark version, and an unknown id."""
    lat = make_benchmark("lat", metrics=[{"name": "ms", "higher_is_better": False, "primary": True}])
    services.suite_create(
        actor=maintainer,
        slug="core",
        name="Core",
        benchmarks=[{"benchmark": "bench", "weight": 2}, {"benchmark": "lat", "baseline": 100, "best": 0}],
    )
    other = make_variant(maintainer, "other-base", actor=maintainer)
    merged = make_variant(alice, "merged", relation="merge", parents=(base, other))
    services.leaderboard_mark_contaminated(variant_id=other.pk, flag_id=5, benchmark_slug="lat", actor=maintainer)
    original = make_result(base, bench, {"accuracy": 0.70})  # already on the board
    make_result(other, lat, {"ms": 30.0})
    jobs = [
        make_result(base, bench, {"accuracy": 0.80}, record=False),
        make_result(base, lat, {"ms": 40.0}, verified=True, record=False),
        make_result(child, bench, {"accuracy": 0.90}, verified=True, record=False),
        make_result(child, bench, {"accuracy": 0.95}, record=False),  # newer, unverified: the verified one stays
        make_result(merged, bench, {"accuracy": 0.85}, record=False),
        make_result(merged, lat, {"ms": 20.0}, record=False),
        make_result(other, bench, {"accuracy": 0.60}, record=False),
        make_result(other, lat, {}, status=JobStatus.FAILED, record=False),
        make_result(other, bench, {"latency_ms": 1.0}, record=False),  # no primary metric
        make_result(merged, bench, {"accuracy": 0.50}, version="0", record=False),
    ]
    # Confirms the original: verified, it beats the newer unverified 0.80 of the batch.
    rerun = make_result(base, bench, {"accuracy": 0.701}, verifies=original, verified=True, record=False)
    return {
        "ids": [j.pk for j in jobs] + [rerun.pk, 999_999],
        "base": base,
        "child": child,
        "merged": merged,
        "other": other,
        "original": original,
        "lat": lat,
    }


def test_a_batch_gives_the_same_rows_as_one_call_per_job(batch_world, bench, django_assert_max_num_queries):
    ids = batch_world["ids"]
    before = _rows()
    savepoint = transaction.savepoint()
    for job_id in ids:
        services.leaderboard_record_job(job_id)
    one_by_one = _rows()
    transaction.savepoint_rollback(savepoint)
    assert _rows() == before

    with django_assert_max_num_queries(25):
        services.leaderboard_record_jobs(list(reversed(ids)))
    assert _rows() == one_by_one
    assert _rows() != before
    # ...and the same as recomputing everything from jobs and results.
    batched = _rows()
    services.leaderboard_rebuild()
    assert _rows() == batched

    child, merged, base, other = (batch_world[k] for k in ("child", "merged", "base", "other"))
    entry = LeaderboardEntry.objects.get(variant=child, benchmark=bench)
    assert (entry.score, entry.verified) == (0.9, True)
    assert entry.parents == [[base.pk, "maintainer/base-model", 0.7]]
    confirmed = LeaderboardEntry.objects.get(variant=base, benchmark=bench)
    assert (confirmed.job_id, confirmed.verified) == (batch_world["original"].pk, True)
    assert sorted(LeaderboardEntry.objects.get(variant=merged, benchmark=batch_world["lat"]).parents) == sorted(
        [[base.pk, "maintainer/base-model", 40.0], [other.pk, "maintainer/other-base", 30.0]]
    )
    assert LeaderboardEntry.objects.filter(variant=merged, benchmark_version="0").exists()
    assert SuiteScore.objects.get(variant=other).contaminated
    assert SuiteScore.objects.count() == 4


def test_recording_a_batch_twice_changes_nothing(batch_world):
    services.leaderboard_record_jobs(batch_world["ids"])
    entries = list(LeaderboardEntry.objects.order_by("pk").values())
    scores = list(SuiteScore.objects.order_by("pk").values())
    with count_queries() as again:
        services.leaderboard_record_jobs(batch_world["ids"])
    assert _writes(again.captured_queries) == []
    assert list(LeaderboardEntry.objects.order_by("pk").values()) == entries  # updated_at included
    assert list(SuiteScore.objects.order_by("pk").values()) == scores


def _job_reads(queries: list[dict[str, Any]]) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "benchmarks_benchmarkjob"' in q["sql"]]


def test_a_finished_job_is_recorded_from_the_entry_without_reading_its_keys_history(bench, child):
    for score in (0.5, 0.6, 0.7, 0.65):
        make_result(child, bench, {"accuracy": score})
    job = make_result(child, bench, {"accuracy": 0.4}, record=False)
    with count_queries() as recorded:
        services.leaderboard_record_job(job.pk)
    # one read of jobs: the finished job itself (with its result), not the four before it
    assert len(_job_reads(recorded.captured_queries)) == 1
    entry = LeaderboardEntry.objects.get()
    assert (entry.job_id, entry.score, entry.verified) == (job.pk, 0.4, False)  # none verified: the latest


@pytest.mark.parametrize(
    "why",
    ["first result", "verified at once", "verification changed", "a re-run verified it", "metric renamed"],
)
def test_keys_a_finish_cannot_simply_add_to_read_their_whole_history(bench, child, why):
    earlier = make_result(child, bench, {"accuracy": 0.8}, record=why != "first result")
    job = earlier
    if why == "verified at once":
        job = make_result(child, bench, {"accuracy": 0.7}, verified=True, record=False)
    elif why == "verification changed":
        earlier.result.verified = True
        earlier.result.save(update_fields=["verified"])
    elif why == "a re-run verified it":
        job = make_result(child, bench, {"accuracy": 0.8}, verifies=earlier, verified=True, record=False)
    elif why == "metric renamed":
        LeaderboardEntry.objects.update(score_metric="old-name")
        job = make_result(child, bench, {"accuracy": 0.7}, record=False)
    with count_queries() as recorded:
        services.leaderboard_record_job(job.pk)
    assert len(_job_reads(recorded.captured_queries)) == 2  # the finished jobs, then every job of the key
    entry = LeaderboardEntry.objects.get()
    assert entry.score_metric == "accuracy"
    assert entry.verified == (why != "first result" and why != "metric renamed")


def test_recording_finishes_one_by_one_agrees_with_recomputing_from_every_job(maintainer, alice, base, child):
    """Entries kept up to date finish by finish (from the entry and the new job) are exactly what a rebuild from
    all jobs gives, through verified and unverified results, failures, a lower-is-better board, replays of old
    finishes and verifications changing afterwards."""
    import random

    rng = random.Random(16)
    higher = make_benchmark("acc-board")
    lower = make_benchmark("loss-board", metrics=[{"name": "loss", "higher_is_better": False, "primary": True}])
    finished: list[Any] = []
    for step in range(60):
        variant = rng.choice([base, child])
        benchmark = rng.choice([higher, lower])
        metric = benchmark.primary_metric
        roll = rng.random()
        if roll < 0.1:
            make_result(variant, benchmark, {}, status=JobStatus.FAILED)
        elif roll < 0.15 and finished:
            services.leaderboard_record_job(rng.choice(finished).pk)  # a hook replayed for an old finish
        elif roll < 0.2 and finished:
            old = rng.choice(finished)  # a verification decided afterwards
            old.result.verified = True
            old.result.save(update_fields=["verified"])
            services.leaderboard_record_job(old.pk)
        else:
            score = rng.choice([0.1, 0.2, 0.3, 0.4, 0.5])  # ties on purpose
            finished.append(make_result(variant, benchmark, {metric: score}, verified=rng.random() < 0.2))
        kept = _rows()
        savepoint = transaction.savepoint()
        services.leaderboard_rebuild()
        assert _rows() == kept, f"step {step}"
        transaction.savepoint_rollback(savepoint)
    assert LeaderboardEntry.objects.filter(verified=True).exists()


def _finished_jobs(owner, bench, names, **kw):
    return [
        make_result(make_variant(owner, name, actor=owner), bench, {"accuracy": 0.5}, record=False, **kw).pk
        for name in names
    ]


def test_a_batch_costs_the_same_queries_for_5_and_25_jobs_on_distinct_variants(maintainer, bench):
    cost = {}
    for n in (5, 25):
        ids = _finished_jobs(maintainer, bench, [f"m{n}-{i}" for i in range(n)])
        with count_queries() as queries:
            services.leaderboard_record_jobs(ids)
        cost[n] = len(queries)
        assert LeaderboardEntry.objects.filter(job_id__in=ids, ranked=True).count() == n
    # The jobs (re-runs resolved), the savepoint, the locks, the benchmarks, succeeded jobs with results,
    # confirmations, existing entries, one insert; then links, entries, statuses, marks, one update, suites.
    # One call per job cost 22 queries per job (110 and 550).
    assert cost[5] == cost[25] <= 15, cost


def test_a_batch_with_lineage_and_suites_costs_the_same_queries_for_5_and_25_variants(maintainer, alice, bench):
    services.suite_create(actor=maintainer, slug="s", name="S", benchmarks=[{"benchmark": "bench"}])
    cost = {}
    for n in (5, 25):
        bases = [make_variant(maintainer, f"b{n}-{i}", actor=maintainer) for i in range(n)]
        kids = [make_variant(alice, f"k{n}-{i}", relation="finetune", parents=(b,)) for i, b in enumerate(bases)]
        for kid in kids:
            make_result(kid, bench, {"accuracy": 0.6})  # on the boards; the batch gives them new parent scores
        ids = [make_result(b, bench, {"accuracy": 0.5}, record=False).pk for b in bases]
        with count_queries() as queries:
            services.leaderboard_record_jobs(ids)
        cost[n] = len(queries)
        assert {tuple(e.parents[0][1:]) for e in LeaderboardEntry.objects.filter(variant__in=kids)} == {
            (f"maintainer/b{n}-{i}", 0.5) for i in range(n)
        }
        assert {tuple(s.parents[0][1:]) for s in SuiteScore.objects.filter(variant__in=kids)} == {
            (f"maintainer/b{n}-{i}", 50.0) for i in range(n)
        }
    # The flat case plus the suites (2), suite scores (2), and the children: lock, entries, suite scores, and
    # one update of each.
    assert cost[5] == cost[25] <= 23, cost


def test_the_engine_calls_the_batch_hook():
    from apps.benchmarks.hooks import JOB_FINISHED_HOOKS

    assert services.leaderboard_record_jobs in JOB_FINISHED_HOOKS
    assert services.leaderboard_record_job not in JOB_FINISHED_HOOKS


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent transactions (PostgreSQL)")
@pytest.mark.django_db(transaction=True)
def test_two_batches_crossing_a_lineage_wait_for_each_other_instead_of_deadlocking(
    maintainer, alice, bench, monkeypatch
):
    """top -> middle -> bottom, and an unrelated variant. Batch one names {middle, unrelated}, batch two
    {bottom, top}: had each locked its own variants first and their children afterwards, one would hold
    middle and wait for bottom while the other held bottom and waited for middle. Both take their variants
    and the children in one statement ordered by pk, so the second simply waits for the first."""
    top = make_variant(maintainer, "top", actor=maintainer)
    middle = make_variant(alice, "middle", relation="finetune", parents=(top,))
    bottom = make_variant(alice, "bottom", relation="finetune", parents=(middle,))
    unrelated = make_variant(maintainer, "unrelated", actor=maintainer)
    one = [make_result(v, bench, {"accuracy": 0.5}, record=False).pk for v in (middle, unrelated)]
    two = [make_result(v, bench, {"accuracy": s}, record=False).pk for v, s in ((bottom, 0.7), (top, 0.3))]
    first_locked, second_started = threading.Event(), threading.Event()
    real = entries._entries_recompute

    def slow_recompute(*args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "first":
            first_locked.set()
            second_started.wait(5)
            threading.Event().wait(0.5)  # the second batch is now waiting for our locks
        return real(*args, **kwargs)

    monkeypatch.setattr(entries, "_entries_recompute", slow_recompute)
    errors: list[BaseException] = []

    def run(ids: list[int], wait_for: threading.Event | None) -> None:
        try:
            if wait_for is not None:
                wait_for.wait(5)
                second_started.set()
            services.leaderboard_record_jobs(ids)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(one, None), name="first"),
        threading.Thread(target=run, args=(two, first_locked), name="second"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    parents = dict(LeaderboardEntry.objects.values_list("variant_id", "parents"))
    assert parents[middle.pk] == [[top.pk, "maintainer/top", 0.3]]
    assert parents[bottom.pk] == [[middle.pk, "alice/middle", 0.5]]


def test_a_transfer_renames_the_variant_and_its_parent_on_the_boards(
    bench, base, child, alice, maintainer, django_capture_on_commit_callbacks
):
    """Rows hold names as text: a transfer (of a ranked variant, or of a parent) rewrites them."""
    from apps.orgs.services import org_create
    from apps.registry.services import variant_transfer

    make_result(child, bench, {"accuracy": 0.91})
    org_create(name="tide-lab", actor=alice)
    org_create(name="reef-lab", actor=maintainer)
    with django_capture_on_commit_callbacks(execute=True):
        variant_transfer(variant=child, to="tide-lab", actor=alice)
    assert board(bench) == [("tide-lab/base-int8", 0.91)]
    with django_capture_on_commit_callbacks(execute=True):
        variant_transfer(variant=base, to="reef-lab", actor=maintainer)
    entry = LeaderboardEntry.objects.get(variant=child)
    assert [name for _, name, *_ in entry.parents] == ["reef-lab/base-model"]
