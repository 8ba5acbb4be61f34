"""The job state machine (apps.benchmarks.choices.JOB_TRANSITIONS), parametrised over the table.

Every move the table allows works through the service that makes it; every other is refused and leaves the job as
it was: a people's action (cancel, retry) with an InvalidTransition that quotes the table, a worker's action (claim,
complete, fail) as a fenced no-op that returns None (a late or duplicate message is normal for workers)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from apps.benchmarks import services
from apps.benchmarks.choices import (
    ACTIVE_JOB_STATUSES,
    JOB_TRANSITIONS,
    TERMINAL_JOB_STATUSES,
    FailureReason,
    JobEvent,
    JobStatus,
    job_event_target,
    job_statuses_allowing,
    job_transition_allowed,
)
from apps.benchmarks.models import BenchmarkJob
from apps.core.errors import InvalidTransition
from workers.runners.base import RunResult

PAIRS = list(itertools.product(JobStatus.values, JobStatus.values))
EVENT_SOURCES = list(itertools.product(JobEvent.values, JobStatus.values))
PEOPLE_EVENTS = {JobEvent.CANCEL, JobEvent.RETRY}


def allowed(source: str, event: str) -> bool:
    return JOB_TRANSITIONS[source].get(job_event_target(event)) == event


def run_result() -> RunResult:
    return RunResult(
        metrics={"ok": 1.0},
        stderr={},
        samples=1,
        duration_s=0.01,
        runner="noop",
        runner_version="1",
        environment={"python": "3.11"},
    )


# --- the table itself ---------------------------------------------------------------------------------------


class TestTable:
    def test_every_status_has_a_row_and_every_event_one_target(self):
        assert set(JOB_TRANSITIONS) == set(JobStatus.values)
        targets: dict[str, set[str]] = {}
        for moves in JOB_TRANSITIONS.values():
            for target, event in moves.items():
                targets.setdefault(event, set()).add(target)
        assert set(targets) == set(JobEvent.values)
        assert all(len(t) == 1 for t in targets.values()), targets

    def test_active_and_terminal_statuses_come_from_the_table(self):
        # Active: a job that can still be cancelled. The rest are terminal.
        assert ACTIVE_JOB_STATUSES == job_statuses_allowing(JobEvent.CANCEL) == ("queued", "running")
        assert TERMINAL_JOB_STATUSES == ("succeeded", "failed", "cancelled", "timed_out")

    @pytest.mark.parametrize(("source", "target"), PAIRS)
    def test_the_model_asks_the_table(self, source, target):
        job = BenchmarkJob(status=source)
        event = JOB_TRANSITIONS[source].get(target)
        assert job.can_transition_to(target) is (event is not None)
        assert job.allowed_transitions() == tuple(JOB_TRANSITIONS[source])
        if event is not None:
            job.check_transition(target, by=event)
            job.check_transition(target)
            return
        with pytest.raises(InvalidTransition) as refused:
            job.check_transition(target)
        assert refused.value.extra["allowed"] == list(JOB_TRANSITIONS[source])
        assert f"Cannot go from '{source}' to '{target}'" in refused.value.detail

    @pytest.mark.parametrize(("event", "source"), EVENT_SOURCES)
    def test_an_event_applies_only_where_the_table_puts_it(self, event, source):
        job = BenchmarkJob(status=source)
        target = job_event_target(event)
        assert job.can_transition_to(target, by=event) is allowed(source, event)
        assert (source in job_statuses_allowing(event)) is allowed(source, event)
        assert job_transition_allowed(source, target, by=event) is allowed(source, event)
        if allowed(source, event):
            return
        with pytest.raises(InvalidTransition) as refused:
            job.check_transition(target, by=event)
        assert refused.value.extra["allowed"] == list(JOB_TRANSITIONS[source])
        assert refused.value.extra["event"] == event
        assert source in refused.value.detail

    def test_a_refused_event_says_where_it_applies(self):
        # running -> queued exists (a requeue after a lost worker), but a retry is not how a running job gets there.
        with pytest.raises(InvalidTransition) as refused:
            BenchmarkJob(status=JobStatus.RUNNING).check_transition(JobStatus.QUEUED, by=JobEvent.RETRY)
        assert refused.value.detail == (
            "Cannot retry a job that is running: retry takes a job from failed or timed_out to queued."
        )


# --- the services that make each move -----------------------------------------------------------------------


@pytest.fixture
def job_in(alice, alice_variant, noop) -> Callable[[str], BenchmarkJob]:  # type: ignore[no-untyped-def]
    """A job brought to a status through the services, as it gets there in production."""

    def reach(status: str) -> BenchmarkJob:
        job, _ = services.job_submit(actor=alice, revision=alice_variant.current_revision, benchmark=noop)
        if status == JobStatus.CANCELLED:
            services.job_cancel(job=job, actor=alice)
        elif status != JobStatus.QUEUED:
            claimed = services.job_claim(job_id=job.pk, worker="w1@h")
            assert claimed is not None
            if status == JobStatus.SUCCEEDED:
                services.job_complete(job_id=job.pk, attempt=claimed.attempts, result=run_result())
            elif status == JobStatus.FAILED:
                services.job_fail(
                    job_id=job.pk, attempt=claimed.attempts, reason=FailureReason.INVALID_CONFIG, message="Bad."
                )
            elif status == JobStatus.TIMED_OUT:
                services.job_fail(
                    job_id=job.pk, attempt=claimed.attempts, reason=FailureReason.TIMEOUT, message="Slow."
                )
        job.refresh_from_db()
        assert job.status == status
        return job

    return reach


def act(event: str, job: BenchmarkJob, alice: Any, maintainer: Any) -> BenchmarkJob | None:
    """Do what makes `event` happen, through the service that makes it."""
    attempt = job.attempts
    if event == JobEvent.CLAIM:
        return services.job_claim(job_id=job.pk, worker="w2@h")
    if event == JobEvent.SUCCEED:
        return services.job_complete(job_id=job.pk, attempt=attempt, result=run_result())
    if event == JobEvent.FAIL:
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=FailureReason.INVALID_CONFIG, message="Bad.")
    if event == JobEvent.TIME_OUT:
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=FailureReason.TIMEOUT, message="Slow.")
    if event == JobEvent.REQUEUE:  # attempts are left: a lost worker puts the job back in the queue
        return services.job_fail(job_id=job.pk, attempt=attempt, reason=FailureReason.WORKER_LOST, message="Lost.")
    if event == JobEvent.CANCEL:
        cancelled = services.job_cancel(job=job, actor=alice)
        if cancelled.status == JobStatus.RUNNING:  # the worker stops at its next checkpoint
            assert services.job_progress(job_id=job.pk, attempt=attempt, done=1, total=2) is True
            return services.job_fail(
                job_id=job.pk, attempt=attempt, reason=FailureReason.CANCELLED, message="Stopped between batches."
            )
        return cancelled
    assert event == JobEvent.RETRY
    return services.job_retry(job=job, actor=maintainer)


@pytest.mark.parametrize(("event", "source"), EVENT_SOURCES)
def test_every_move_of_the_table_works_and_every_other_is_refused(event, source, job_in, alice, maintainer):
    job = job_in(source)
    target = job_event_target(event)
    if allowed(source, event):
        act(event, job, alice, maintainer)
        job.refresh_from_db()
        assert job.status == target
        return
    before = (job.status, job.attempts, job.finished_at)
    if event in PEOPLE_EVENTS:
        with pytest.raises(InvalidTransition) as refused:
            act(event, job, alice, maintainer)
        assert refused.value.extra["allowed"] == list(JOB_TRANSITIONS[source])
        assert refused.value.extra["current"] == source and refused.value.extra["target"] == target
    else:
        assert act(event, job, alice, maintainer) is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at) == before


def test_a_second_cancel_of_a_running_job_is_refused(job_in, alice):
    job = job_in(JobStatus.RUNNING)
    services.job_cancel(job=job, actor=alice)
    with pytest.raises(InvalidTransition) as refused:
        services.job_cancel(job=job, actor=alice)
    assert refused.value.extra["allowed"] == [] and "being cancelled already" in refused.value.detail


def test_a_requeue_with_no_attempts_left_ends_the_job(job_in, alice, maintainer):
    job = job_in(JobStatus.RUNNING)
    BenchmarkJob.objects.filter(pk=job.pk).update(max_attempts=job.attempts)
    job.refresh_from_db()
    ended = act(JobEvent.REQUEUE, job, alice, maintainer)
    assert ended is not None and ended.status == JobStatus.FAILED
    assert ended.failure_reason == FailureReason.WORKER_LOST
