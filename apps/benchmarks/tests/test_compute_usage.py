"""The hourly compute usage behind the daily compute budget (issue 16): the jobs table's triggers keep it equal to
the jobs' own compute seconds through every kind of write, the quota check reads the rolling day from it exactly,
and the recovery beat prunes what no check reads any more."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.choices import JobStatus
from apps.benchmarks.models import BenchmarkJob, ComputeUsage
from apps.benchmarks.selectors import quota_usage, quota_usage_row
from apps.benchmarks.services.recovery import jobs_recover

pytestmark = pytest.mark.django_db


def submit(user, variant, benchmark, **config):  # type: ignore[no-untyped-def]
    return services.job_submit(actor=user, revision=variant.current_revision, benchmark=benchmark, config=config)[0]


def hour_of(moment: datetime) -> int:
    return math.floor(moment.timestamp() / 3600)


def from_jobs() -> dict[tuple[int, int], float]:
    """(namespace, hour) -> compute seconds, summed from the jobs themselves: what the table must hold."""
    totals: dict[tuple[int, int], float] = defaultdict(float)
    rows = BenchmarkJob.objects.filter(
        counts_against_quota=True, charged_to__isnull=False, finished_at__isnull=False
    ).values_list("charged_to_id", "finished_at", "compute_seconds")
    for namespace, finished_at, seconds in rows:
        totals[(namespace, hour_of(finished_at))] += seconds
    return {key: round(value, 6) for key, value in totals.items() if round(value, 6)}


def from_table() -> dict[tuple[int, int], float]:
    totals: dict[tuple[int, int], float] = defaultdict(float)
    for namespace, hour, seconds in ComputeUsage.objects.values_list("namespace_id", "hour", "seconds"):
        totals[(namespace, hour)] += seconds
    return {key: round(value, 6) for key, value in totals.items() if round(value, 6)}


def window_from_jobs(namespace_id: int, since: datetime) -> float:
    return sum(
        BenchmarkJob.objects.filter(
            charged_to_id=namespace_id, counts_against_quota=True, finished_at__gte=since
        ).values_list("compute_seconds", flat=True)
    )


def test_the_hourly_usage_follows_every_kind_of_write_to_the_jobs_table(alice, bob, alice_variant, noop):
    now = timezone.now()
    jobs = [submit(alice, alice_variant, noop, steps=i + 1) for i in range(5)]
    assert from_table() == {}  # queued jobs have used nothing

    def check() -> None:
        assert from_table() == from_jobs()

    # the services' own finish
    claimed = services.job_claim(job_id=jobs[0].pk, worker="w1@h")
    assert claimed is not None
    services.job_cancel(job=BenchmarkJob.objects.get(pk=jobs[1].pk), actor=alice)
    check()
    # bulk updates that bypass the services, one column at a time
    BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
        status=JobStatus.SUCCEEDED, finished_at=now - timedelta(hours=2), compute_seconds=30
    )
    check()
    assert from_table() == {(alice.pk, hour_of(now - timedelta(hours=2))): 150.0}
    BenchmarkJob.objects.filter(pk=jobs[0].pk).update(compute_seconds=12.5)
    check()
    BenchmarkJob.objects.filter(pk=jobs[1].pk).update(finished_at=now - timedelta(hours=5))  # to another hour
    check()
    BenchmarkJob.objects.filter(pk=jobs[2].pk).update(charged_to=bob)  # to another namespace
    check()
    BenchmarkJob.objects.filter(pk=jobs[3].pk).update(counts_against_quota=False)  # exempted
    check()
    BenchmarkJob.objects.filter(pk=jobs[3].pk).update(counts_against_quota=True)  # and back
    check()
    BenchmarkJob.objects.filter(pk=jobs[4].pk).update(charged_to=None)  # charged to nobody
    check()
    BenchmarkJob.objects.filter(pk=jobs[4].pk).update(finished_at=None, charged_to=alice)  # not finished after all
    check()
    BenchmarkJob.objects.filter(pk__in=[j.pk for j in jobs]).update(log_tail="x")  # a column the usage ignores
    check()
    # a row inserted already finished (fixtures, the admin), and one deleted
    BenchmarkJob.objects.bulk_create(
        [
            BenchmarkJob(
                revision=alice_variant.current_revision,
                benchmark=noop,
                benchmark_version=noop.version,
                config={"steps": 99},
                config_hash="h99",
                status=JobStatus.SUCCEEDED,
                submitted_by=alice,
                charged_to=alice,
                finished_at=now - timedelta(minutes=1),
                compute_seconds=7,
            )
        ]
    )
    check()
    BenchmarkJob.objects.filter(pk=jobs[0].pk).delete()
    check()
    assert from_jobs() == {
        (alice.pk, hour_of(now - timedelta(hours=2))): 30.0,
        (alice.pk, hour_of(now - timedelta(hours=5))): 30.0,
        (bob.pk, hour_of(now - timedelta(hours=2))): 30.0,
        (alice.pk, hour_of(now - timedelta(minutes=1))): 7.0,
    }


def test_a_rollback_leaves_the_usage_as_it_was(alice, alice_variant, noop):
    job, finished = submit(alice, alice_variant, noop, steps=1), timezone.now()
    BenchmarkJob.objects.filter(pk=job.pk).update(finished_at=finished, compute_seconds=5)
    assert from_table() == {(alice.pk, hour_of(finished)): 5.0}
    with pytest.raises(RuntimeError), transaction.atomic():
        BenchmarkJob.objects.filter(pk=job.pk).update(compute_seconds=500)
        assert from_table() == {(alice.pk, hour_of(finished)): 500.0}
        raise RuntimeError("rolled back")
    assert from_table() == from_jobs() == {(alice.pk, hour_of(finished)): 5.0}


@pytest.mark.parametrize("minute", [0, 1, 29, 59])
def test_the_rolling_day_is_summed_exactly_across_its_first_hour(alice, alice_variant, noop, minute):
    """The check reads the hours after the one `since` falls in from the table, and that hour from the jobs: jobs a
    second either side of `since`, in its hour, in the next hour and now all land where a plain sum puts them."""
    since = timezone.now().replace(minute=minute, second=30, microsecond=0) - timedelta(days=1)
    offsets = [
        -timedelta(hours=1),
        -timedelta(seconds=1),
        timedelta(0),
        timedelta(seconds=1),
        timedelta(minutes=59 - minute, seconds=29),  # the last second of since's hour
        timedelta(minutes=59 - minute, seconds=30),  # the first of the next
        timedelta(hours=3),
        timedelta(days=1) - timedelta(seconds=5),
    ]
    for i, offset in enumerate(offsets):
        job = submit(alice, alice_variant, noop, steps=i + 1)
        BenchmarkJob.objects.filter(pk=job.pk).update(
            status=JobStatus.SUCCEEDED, finished_at=since + offset, compute_seconds=2**i
        )
    expected = window_from_jobs(alice.pk, since)
    assert expected == sum(2**i for i, offset in enumerate(offsets) if offset >= timedelta(0))
    assert quota_usage_row(alice.pk, since)[1] == pytest.approx(expected)
    for shift in (timedelta(minutes=-61), timedelta(seconds=1), timedelta(minutes=31), timedelta(hours=2)):
        assert quota_usage_row(alice.pk, since + shift)[1] == pytest.approx(window_from_jobs(alice.pk, since + shift))


def test_the_recovery_beat_prunes_hours_no_check_reads(alice, alice_variant, noop):
    now = timezone.now()
    old, recent = submit(alice, alice_variant, noop, steps=1), submit(alice, alice_variant, noop, steps=2)
    BenchmarkJob.objects.filter(pk=old.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=now - timedelta(days=3), compute_seconds=40
    )
    BenchmarkJob.objects.filter(pk=recent.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=now - timedelta(hours=30), compute_seconds=3
    )
    assert len(from_table()) == 2
    jobs_recover(now=now)
    assert from_table() == {(alice.pk, hour_of(now - timedelta(hours=30))): 3.0}
    assert quota_usage(alice) == (0, 0.0)  # neither is in the rolling day
    assert BenchmarkJob.objects.filter(pk=old.pk).exists()  # the jobs themselves stay


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_namespace_never_wait_on_each_others_usage_row(alice, alice_variant, noop):
    """Each PostgreSQL backend adds to rows of its own: a transaction that finished a job and has not committed
    yet does not hold up another one finishing a job of the same namespace in the same hour."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    first, second = submit(alice, alice_variant, noop, steps=1), submit(alice, alice_variant, noop, steps=2)
    now = timezone.now()
    holding, done = threading.Event(), threading.Event()
    outcome: list[str] = []

    def other_writer() -> None:
        try:
            holding.wait(10)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '3s'")
                BenchmarkJob.objects.filter(pk=second.pk).update(finished_at=now, compute_seconds=2)
            outcome.append("committed")
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome.append(f"{type(exc).__name__}: {exc}")
        finally:
            done.set()
            connections.close_all()

    thread = threading.Thread(target=other_writer)
    thread.start()
    with transaction.atomic():
        BenchmarkJob.objects.filter(pk=first.pk).update(finished_at=now, compute_seconds=1)
        holding.set()
        assert done.wait(15), "the second writer is still waiting"
    thread.join(15)
    assert outcome == ["committed"]
    assert from_table() == from_jobs() == {(alice.pk, hour_of(now)): 3.0}
    assert ComputeUsage.objects.filter(namespace_id=alice.pk).count() == 2  # one row per writer
