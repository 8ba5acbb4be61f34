"""Re-evaluation after a worker's batch of jobs: one hook call for the batch leaves exactly the items, levels,
openness and audit trail that one call per job left, and costs the same few queries for 5 revisions as for 20."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent
from apps.checklists import services
from apps.checklists.models import Checklist, ChecklistItem, RevisionOpenness
from apps.checklists.services import instances
from apps.checklists.subscribers import on_jobs_finished
from apps.core.testing import count_queries

from .factories import finished_job, finished_jobs, make_users, submitted_revisions

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, list[tuple]]:  # type: ignore[type-arg]
    """The evaluation's results, without ids or clocks."""
    return {
        "items": sorted(
            ChecklistItem.objects.values_list(
                "checklist__revision_id",
                "item__key",
                "status",
                "source",
                "answered_by_id",
                "confidence",
                "explanation",
                "detective_status",
                "verified_by_id",
            )
        ),
        "answered": sorted(
            ChecklistItem.objects.filter(answered_at__isnull=False).values_list("checklist__revision_id", "item__key")
        ),
        "levels": sorted((c.revision_id, c.level, repr(sorted(c.progress.items()))) for c in Checklist.objects.all()),
        "openness": sorted(
            (o.revision_id, o.mof_class, o.rank, o.conditional, repr(o.report)) for o in RevisionOpenness.objects.all()
        ),
        "audit": sorted(
            (e.verb, e.target_id, repr(e.before), repr(e.after))
            for e in AuditEvent.objects.filter(verb="checklist.evaluate")
        ),
    }


def _same_as_one_by_one(one: object, batch: object) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """Run `one` (per job or per revision) and `batch` from the same state; return both snapshots."""
    point = transaction.savepoint()
    one()  # type: ignore[operator]
    one_by_one = _snapshot()
    transaction.savepoint_rollback(point)
    batch()  # type: ignore[operator]
    return one_by_one, _snapshot()


@pytest.fixture
def mixed_batch(digits_world, int8_submitted):  # type: ignore[no-untyped-def]
    """Job ids as the engine hands them over: first successes, failures, a job still running, two jobs on one
    revision, a verification re-run, a job on a draft (no checklist) and an id nobody knows."""
    benchmark = digits_world["benchmark"]
    owners = make_users(3)
    revisions = submitted_revisions(4, owners=owners)
    ok = finished_job(revisions[0], benchmark, owners[0])
    jobs = [
        ok,
        finished_job(revisions[0], benchmark, owners[0], status="failed"),
        finished_job(revisions[0], benchmark, owners[1], verifies=ok, verified=True),
        finished_job(revisions[1], benchmark, owners[1], status="failed"),
        finished_job(revisions[2], benchmark, owners[2], status="running"),
        finished_job(revisions[3], benchmark, owners[0], verified=True),
        finished_job(int8_submitted, benchmark, int8_submitted.variant.owner),
        finished_job(digits_world["pruned"].current_revision, benchmark, digits_world["pruned"].owner),
    ]
    return [job.pk for job in jobs] + [max(job.pk for job in jobs) + 1000]


def test_a_batch_leaves_what_one_call_per_job_left(mixed_batch):
    evaluated = AuditEvent.objects.filter(verb="checklist.evaluate").count()  # at submission
    one_by_one, batched = _same_as_one_by_one(
        lambda: [on_jobs_finished([pk]) for pk in mixed_batch], lambda: on_jobs_finished(list(reversed(mixed_batch)))
    )
    assert batched == one_by_one
    items = {(rev, key): status for rev, key, status, *_ in batched["items"]}
    revisions = sorted({rev for rev, _ in items})
    # alice's int8 revision, then the four new ones; the draft has no checklist.
    assert [items[(rev, "benchmark-succeeded")] for rev in revisions] == ["met", "met", "unmet", "unknown", "met"]
    assert [items[(rev, "result-verified")] for rev in revisions] == ["unmet", "unmet", "unknown", "unknown", "met"]
    assert len(batched["audit"]) == evaluated + 4  # each checklist whose items changed (not the running job's)


def test_the_batch_is_idempotent(mixed_batch):
    on_jobs_finished(mixed_batch)
    first = _snapshot()
    events = AuditEvent.objects.count()
    on_jobs_finished(mixed_batch)
    assert _snapshot() == first and AuditEvent.objects.count() == events  # nothing changed, nothing audited


def test_a_full_reevaluation_of_several_revisions_matches_one_per_revision(mixed_batch):
    """All inputs (the openness class too), as after a resubmission: the batch service is the single one's
    generalisation."""
    from apps.benchmarks.models import BenchmarkJob

    revision_ids = sorted(set(BenchmarkJob.objects.filter(pk__in=mixed_batch).values_list("revision_id", flat=True)))
    RevisionOpenness.objects.all().delete()
    one_by_one, batched = _same_as_one_by_one(
        lambda: [services.checklist_reevaluate(revision_id=pk) for pk in revision_ids],
        lambda: services.checklists_reevaluate(revision_ids=revision_ids),
    )
    assert batched == one_by_one and len(batched["openness"]) == len(revision_ids)


def test_unknown_ids_cost_one_query(digits_world, django_assert_num_queries):
    with django_assert_num_queries(1):
        on_jobs_finished([10_000_001])


def test_when_the_batch_fails_each_revision_is_tried_alone(mixed_batch, monkeypatch):
    real = services.checklists_reevaluate
    calls: list[list[int]] = []

    def fragile(*, revision_ids, inputs=None):  # type: ignore[no-untyped-def]
        calls.append(list(revision_ids))
        if len(calls[-1]) > 1:
            raise RuntimeError("a batch problem")
        return real(revision_ids=revision_ids, inputs=inputs)

    one_by_one, batched = _same_as_one_by_one(lambda: [on_jobs_finished([pk]) for pk in mixed_batch], lambda: None)
    # The subscriber calls the package's name, and the one-by-one fallback the module's.
    monkeypatch.setattr(services, "checklists_reevaluate", fragile)
    monkeypatch.setattr(instances, "checklists_reevaluate", fragile)
    calls.clear()
    on_jobs_finished(mixed_batch)
    assert len(calls[0]) == 6 and all(len(c) == 1 for c in calls[1:]) and len(calls) == 7
    assert _snapshot() == one_by_one


@pytest.mark.parametrize("first_finish", [True, False], ids=["items flip", "nothing changes"])
def test_a_batch_costs_the_same_queries_for_5_and_20_revisions(digits_world, first_finish):
    owners = make_users(20)
    cost = {}
    for n in (5, 20):
        jobs = finished_jobs(n, benchmark=digits_world["benchmark"], owners=owners, prefix=f"q{n}")
        ids = [job.pk for job in jobs]
        if not first_finish:
            on_jobs_finished(ids)
        with count_queries() as queries:
            on_jobs_finished(ids)
        assert (
            Checklist.objects.filter(
                revision__jobs__in=ids, items__item__key="benchmark-succeeded", items__status="met"
            ).count()
            == n
        )
        cost[n] = len(queries)
    # The revisions, the checklists (locked, with their revisions), their items, their jobs, the items' update,
    # the levels' update (and the savepoint); when items flipped, the audit append's (PostgreSQL: the seqs and the
    # insert; SQLite: the head row's three).
    audit = 2 if connection.vendor == "postgresql" else 3
    assert cost[5] == cost[20] == (8 + audit if first_finish else 8), cost
