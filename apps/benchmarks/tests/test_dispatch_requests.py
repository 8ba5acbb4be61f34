"""Submissions ask a worker to dispatch after their commit, coalesced (issue 16): the submitting request neither
waits for the fair-share pick nor makes its queries, and a burst of submissions costs a few dispatch runs."""

from __future__ import annotations

import pytest

from apps.benchmarks import dispatch, services
from apps.benchmarks.models import BenchmarkJob

pytestmark = pytest.mark.django_db


class Requests(list[tuple[str | None, float]]):
    """The dispatch requests published, as (queue, countdown), and the clock the coalescing reads."""

    clock = [1000.0]


@pytest.fixture
def requests_made(monkeypatch, settings):  # type: ignore[no-untyped-def]
    """Windows of 10 s; the clock starts at t=1000, a window's start."""
    settings.MC_DISPATCH_COALESCE_S = 10
    made = Requests()
    made.clock = [1000.0]
    monkeypatch.setattr(dispatch, "_clock", lambda: made.clock[0])
    monkeypatch.setattr(dispatch, "send_dispatch_request", lambda queue, countdown=0.0: made.append((queue, countdown)))
    return made


def submit(alice, alice_variant, noop, seed):  # type: ignore[no-untyped-def]
    job, created = services.job_submit(
        actor=alice, revision=alice_variant.current_revision, benchmark=noop, config={"seed": seed}
    )
    assert created
    return job


def test_the_submission_does_not_dispatch_itself(
    alice, alice_variant, noop, sent, requests_made, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = submit(alice, alice_variant, noop, 1)
    assert sent == [] and BenchmarkJob.objects.get(pk=job.pk).dispatched_at is None
    assert list(requests_made) == [("bench.cpu", 0.0)]
    # the worker that receives the request (workers.tasks.jobs_dispatch) dispatches the job
    assert dispatch.jobs_dispatch(queue="bench.cpu") == 1
    assert sent == [(job.pk, "bench.cpu")]


def test_a_burst_asks_twice_per_window_the_second_time_for_its_end(
    alice, alice_variant, noop, requests_made, django_capture_on_commit_callbacks
):
    alice.max_active_jobs = 20
    alice.save()
    for seed in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            submit(alice, alice_variant, noop, seed)
        requests_made.clock[0] += 1  # 1 s apart, all inside the window [1000, 1010)
    assert [q for q, _ in requests_made] == ["bench.cpu", "bench.cpu"]
    assert requests_made[0][1] == 0.0
    # asked at t=1001 for a run just past the window's end (1010), when every job of the window is committed
    assert 9.0 < requests_made[1][1] <= 9.1
    requests_made.clock[0] = 1010.0
    with django_capture_on_commit_callbacks(execute=True):
        submit(alice, alice_variant, noop, 99)
    assert requests_made[2] == ("bench.cpu", 0.0)  # a new window: at once


def test_with_the_broker_down_submissions_stand_and_stop_trying_for_a_while(
    alice, alice_variant, noop, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.MC_DISPATCH_COALESCE_S = 0
    tries: list[str | None] = []

    def broker_down(queue, countdown=0.0):  # type: ignore[no-untyped-def]
        tries.append(queue)
        raise ConnectionError("broker down")

    monkeypatch.setattr(dispatch, "send_dispatch_request", broker_down)
    for seed in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            submit(alice, alice_variant, noop, seed)
    assert tries == ["bench.cpu"]  # the first failure backs the process off; the beat sends the jobs
    assert BenchmarkJob.objects.filter(status="queued", dispatched_at__isnull=True).count() == 3


def test_a_batch_asks_once_per_queue(alice, alice_variant, noop, requests_made, django_capture_on_commit_callbacks):
    alice.max_active_jobs = 20
    alice.save()
    revision = alice_variant.current_revision
    with django_capture_on_commit_callbacks(execute=True):
        services.jobs_submit_batch(actor=alice, items=[(revision, noop, {"seed": i}) for i in range(10)])
    assert list(requests_made) == [("bench.cpu", 0.0)]
